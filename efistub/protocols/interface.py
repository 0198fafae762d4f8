"""A protocol's structure in guest memory, every function member pointing at its service's stub."""

from __future__ import annotations

from ..memory import MemoryType


def make_interface(fw, prefix: str, members, layout, **data) -> int:
    """Write ``layout`` with function members ``prefix.member`` into firmware memory."""
    value = {name: fw.stub_address[f"{prefix}.{name}"] for name in members}
    value.update(data)
    address = fw.allocate_pool(MemoryType.EfiBootServicesData, layout.sizeof())
    fw.mem.write_struct(layout, address, value)
    return address
