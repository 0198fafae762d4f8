"""The device tree a run is given (--dtb), installed as the EFI_DTB_TABLE configuration table."""

from __future__ import annotations

from .. import guids
from ..memory import MemoryType


def install(fw) -> int | None:
    """Install the run's device tree, if it has one; return its address."""
    if fw.options.dtb is None:
        return None
    table = fw.store(MemoryType.EfiACPIReclaimMemory, fw.options.dtb)
    fw.set_configuration_table(guids.DEVICE_TREE_TABLE, table)
    return table
