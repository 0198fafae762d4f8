"""What efistub sees of shim (rhboot/shim): the SHIM_LOCK protocol it installs and the verifications
others ask it for.

shim verifies its second stage (grubx64.efi) and starts it itself, with its own PE loader and its own
OpenSSL, against db, dbx, its built-in vendor certificate, MokList and MokListX, and checks SBAT
(the SbatLevel variable against the image's .sbat section). The firmware sees only what that costs in
services: the files shim reads, the variables (MokList, SbatLevel, ...), its TPM measurements, and its
console, where shim says why it refused an image. GRUB then verifies the kernel by calling
SHIM_LOCK.Verify(buffer, size): a call from one guest to another, which efistub watches with a probe
(efistub.probe) once a guest installs SHIM_LOCK, and lists in the report's ``shim``:

    {"installed": [{"interface": ..., "verify": ...}],
     "verify": [{"buffer": ..., "size": ..., "sha256": ..., "authenticode_sha256": ..., "status": "EFI_SUCCESS"}]}

``sha256`` is the buffer's, as the report's images and a host's sha256sum give it for a file;
``authenticode_sha256`` its PE image hash (what a signature or a db hash covers), or None when the
buffer is no PE image.
"""

from __future__ import annotations

import hashlib

from . import guids, pehash
from .errors import GuestMemoryError
from .layouts.shim import shim_lock
from .probe import c_convention
from .status import Status, from_guest

STATE = "shim"  # fw.protocol_state key
VERIFY_ARGUMENTS = 2  # buffer, size


def installed(fw, guid, interface: int) -> None:
    """A guest installed ``guid`` at ``interface``: watch SHIM_LOCK.Verify when it is SHIM_LOCK."""
    if guid != guids.SHIM_LOCK or fw.probes is None or not interface:
        return
    layout = shim_lock(fw.width)
    try:
        members = layout.parse(fw.mem.read(interface, layout.sizeof()))
    except GuestMemoryError:
        return
    state = fw.protocol_state.setdefault(STATE, {"installed": [], "verify": [], "image_hashes": {}})
    state["installed"].append({"interface": interface, "verify": members.Verify})
    if members.Verify:
        fw.probes.watch(members.Verify, c_convention(fw.probes.arch), VERIFY_ARGUMENTS,
                        lambda arguments, result: _verified(fw, arguments, result))


def _verified(fw, arguments: list[int], result: int) -> None:
    buffer, size = arguments[0], arguments[1] & 0xFFFFFFFF  # UINT32 size
    entry = {"buffer": buffer, "size": size, "sha256": None, "authenticode_sha256": None,
             "status": Status.name_of(from_guest(result, fw.width))}
    try:
        data = fw.mem.read(buffer, size)
    except GuestMemoryError:
        data = None
    state = fw.protocol_state[STATE]
    if data is not None:
        entry["sha256"] = digest = hashlib.sha256(data).hexdigest()
        if digest not in state["image_hashes"]:  # GRUB verifies the same kernel twice: hash it once
            try:
                state["image_hashes"][digest] = pehash.image_hash(data, ["sha256"])["sha256"].hex()
            except (pehash.NotPeImage, pehash.BadPeImage):
                state["image_hashes"][digest] = None
        entry["authenticode_sha256"] = state["image_hashes"][digest]
    state["verify"].append(entry)


def describe(fw) -> dict | None:
    """The report's ``shim``: None when no guest installed SHIM_LOCK."""
    state = fw.protocol_state.get(STATE)
    return None if state is None else {"installed": list(state["installed"]), "verify": list(state["verify"])}
