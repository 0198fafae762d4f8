"""efistub: a minimal EFI firmware-services emulator for running EFI images headless.

The public API (docs/api.md)::

    import efistub
    machine = efistub.Machine("vmlinuz", cmdline="console=ttyS0")
    machine.inject("ExitBootServices", "EFI_INVALID_PARAMETER")
    report = machine.run()
    assert report.outcome == "handoff"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import engine as _engine

__version__ = "0.1.0"

# Point the unicorn binding at the fast engine when one is built (EFISTUB_ENGINE or
# --engine may override this before unicorn is first imported). See docs/engine.md.
_engine.activate()

# Public names, imported on first use: importing them here would import unicorn
# before the command line has chosen its engine.
_EXPORTS = {
    "Machine": "machine",
    "Report": "report",
    "Call": "dispatch",
    "Context": "context",
    "Status": "status",
    "Guid": "guids",
    "Variable": "variables",
    "VariableStore": "variables",
    "InputError": "errors",
    "GuestMemoryError": "errors",
}
_MODULES = ("varstore",)  # public modules: efistub.varstore.load(path), save(store, path)
__all__ = sorted(_EXPORTS) + list(_MODULES) + ["__version__"]

if TYPE_CHECKING:
    from .context import Context
    from .dispatch import Call
    from .errors import GuestMemoryError, InputError
    from .guids import Guid
    from .machine import Machine
    from .report import Report
    from .status import Status
    from .variables import Variable, VariableStore


def __getattr__(name: str):
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'efistub' has no attribute {name!r}")
