"""Protocols the firmware provides, one module each.

A protocol's functions are services like any other (registered as
``"<Protocol>.<Member>"``); interface.make_interface lays out the protocol
structure in guest memory with every member pointing at its stub.
"""

from __future__ import annotations

from . import console, dtb, initrd, loaded_image, riscv_boot, rng  # noqa: F401 - register the protocol services

# What the firmware installs after its tables and the image, in order; each decides from the
# run's options whether this run has it. An architecture adds its own (Architecture.PROTOCOLS).
INSTALLERS = (initrd.install, rng.install, dtb.install)
