"""Protocols the firmware provides, one module each.

A protocol's functions are services like any other (registered as
``"<Protocol>.<Member>"``); interface.make_interface lays out the protocol
structure in guest memory with every member pointing at its stub.
"""

from __future__ import annotations

from . import (block_io, console, device_path_from_text, device_path_to_text, device_path_utilities,  # noqa: F401
               dtb, hii, initrd, loaded_image, riscv_boot, rng, simple_file_system, tcg2,
               unicode_collation)

# What the firmware installs after its tables and before the image, in order; each decides from
# the run's options whether this run has it. An architecture adds its own (Architecture.PROTOCOLS).
INSTALLERS = (simple_file_system.install, block_io.install, initrd.install, rng.install, dtb.install, hii.install,
              unicode_collation.install, device_path_utilities.install, device_path_to_text.install,
              device_path_from_text.install, tcg2.install)
