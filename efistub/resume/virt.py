"""What the AArch64 and RISC-V resumes share: QEMU's virt board, the saved RAM staged around
the device tree QEMU writes into RAM, and the trampoline's state block.

QEMU's virt machines write their own device tree into guest RAM at reset (AArch64: at the
base of RAM, where firmware looks for it; RISC-V: near the top, where OpenSBI finds it).
A saved segment loaded there would overwrite it or be overwritten by it (QEMU 7.2 does
not refuse the overlap: the order of its images at reset decides), and on RISC-V
OpenSBI reads that tree before the trampoline runs. So efistub resume loads nothing
there: the saved RAM of such a window (every byte the saved memory map does not give
out as free, zeros included where no segment has data) goes to a staging address in RAM
the saved map gives out as free, and the trampoline moves it into place before it
restores the CPU. The kernel may reuse the staging copy like any free RAM. A hand-off
that passed no memory map (a payload that is not Linux) has only its segments: the RAM
outside them counts as free.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from construct import ConstructError

from ..errors import InputError
from ..handoff_state import MANIFEST
from ..layouts import resume_fdt as block
from ..layouts.efi import PAGE_SIZE
from ..memory import MemoryType

MiB = 1 << 20
QEMU_FDT_MAX_SIZE = 1 * MiB  # the device tree buffer of QEMU's virt boards (FDT_MAX_SIZE): what it writes
FREE_TYPE = MemoryType.EfiConventionalMemory.name  # the map entries the kernel may use at once
STAGED_FILE = "staged-{start:016x}.bin"
PIECE_FILE = "segment-{start:016x}-piece-{piece:016x}.bin"
FDT_BOOT_KIND = "fdt"
EFI_OPTION, NO_RUNTIME, NO_EFI = "efi=", "noruntime", "noefi"  # the kernel parameters that keep it off runtime services


@dataclass
class Plan:
    loads: list[tuple[int, Path]]  # (guest address, file): what QEMU's generic loader devices put in RAM
    moves: list[tuple[int, int, int]]  # (destination, source, size): what the trampoline copies first


def check_board(state, board) -> int:
    """The RAM size, once the saved board is ``board`` as QEMU's ``-m SIZE`` gives it."""
    manifest = state.manifest
    memory, platform = manifest["memory"], manifest["platform"]
    if not isinstance(memory, int) or memory <= 0 or memory % MiB:
        raise InputError(where(state), f"memory {memory!r} is not a whole number of MiB, as QEMU's -m needs")
    name = platform.get("name") if isinstance(platform, dict) else platform
    if name != board.name:
        raise InputError(where(state), f"the board is {name!r}: efistub resume boots {state.arch} hand-offs "
                                          f"saved on {board.name}")
    qemu_ram = board.ram(memory)
    saved_ram = [(r.get("start"), r.get("end")) for r in platform.get("ram", []) if isinstance(r, dict)]
    if saved_ram != qemu_ram:
        raise InputError(where(state), f"the saved RAM ranges {ranges(saved_ram)} are not those QEMU's virt "
                                          f"gives {memory // MiB} MiB: {ranges(qemu_ram)}")
    for seg in manifest["segments"]:
        start, end = seg["start"], seg["start"] + seg["size"]
        if not any(lo <= start and end <= hi for lo, hi in qemu_ram):
            raise InputError(where(state), f"segment {seg['file']} (0x{start:x}-0x{end:x}) is not in the "
                                              "board's RAM")
    return memory


def registers(state, names) -> dict[str, int]:
    manifest = state.manifest
    saved = manifest["cpu"]
    regs = {}
    for name in names:
        value = saved.get(name) if isinstance(saved, dict) else None
        if not isinstance(value, int) or not 0 <= value < 1 << 64:
            raise InputError(where(state), f"the saved {manifest['arch']} CPU state has no valid {name!r}")
        regs[name] = value
    return regs


def check_runtime_services(state) -> None:
    """The kernel must not call the EFI runtime services: they stay in efistub, and the QEMU machine
    has no firmware that could answer. Its command line (the FDT's /chosen bootargs) says so. A
    hand-off without an FDT (not a Linux kernel) is not checked."""
    if not fdt_handoff(state):
        return
    words = str(state.manifest["boot"].get("cmdline") or "").split()
    if NO_EFI in words or any(w.startswith(EFI_OPTION) and NO_RUNTIME in w[len(EFI_OPTION):].split(",")
                              for w in words):
        return
    raise InputError(where(state), "the saved kernel command line has no efi=noruntime: the kernel would call EFI "
                                   "runtime services, which stay in efistub; save the hand-off again with "
                                   "efi=noruntime in --cmdline (docs/handoff-state.md)")


def fdt_handoff(state) -> bool:
    """Whether the kernel was entered with a device tree (a Linux kernel's hand-off)."""
    boot = state.manifest.get("boot") or {}
    return boot.get("kind") == FDT_BOOT_KIND and isinstance(boot.get("fdt_size"), int)


def where(state) -> str:
    return str(state.folder / MANIFEST)


def check_clear(state, start: int, end: int, what: str) -> None:
    """No saved segment may lie in [start, end), which QEMU or the trampoline takes."""
    for seg in state.manifest["segments"]:
        if seg["start"] < end and start < seg["start"] + seg["size"]:
            raise InputError(where(state), f"segment {seg['file']} (0x{seg['start']:x}-"
                                              f"0x{seg['start'] + seg['size']:x}) lies in 0x{start:x}-0x{end:x}, "
                                              f"{what}")


def plan(state, ram: list[tuple[int, int]], windows: list[tuple[int, int]], taken: list[tuple[int, int]],
         workdir: str) -> Plan:
    """Where each saved byte goes: ``ram`` is the board's, ``windows`` QEMU's own data in it, ``taken``
    what else staging must avoid (the trampoline)."""
    manifest = state.manifest
    segments = [(seg["start"], seg["size"], state.folder / seg["file"]) for seg in manifest["segments"]]
    entries = _memory_map(state)
    if entries is None:  # a payload that was handed no map (not Linux): what is not saved counts as free
        busy = _merge((s, s + n) for s, n, _ in segments)
        free = _subtract(ram, busy)
    else:
        busy = _merge((e["start"], e["start"] + e["pages"] * PAGE_SIZE) for e in entries if e["type"] != FREE_TYPE)
        free = _merge((e["start"], e["start"] + e["pages"] * PAGE_SIZE) for e in entries if e["type"] == FREE_TYPE)
    windows = _merge(windows)
    staged = _merge([(max(lo, w_lo), min(hi, w_hi)) for w_lo, w_hi in windows
                     for lo, hi in busy + [(s, s + n) for s, n, _ in segments] if lo < w_hi and w_lo < hi])
    work = Path(workdir)
    loads: list[tuple[int, Path]] = []
    for start, size, path in segments:
        pieces = _subtract([(start, start + size)], windows)
        if pieces == [(start, start + size)]:
            loads.append((start, path))
            continue
        data = path.read_bytes()
        for lo, hi in pieces:
            piece = work / PIECE_FILE.format(start=start, piece=lo)
            piece.write_bytes(data[lo - start:hi - start])
            loads.append((lo, piece))
    moves: list[tuple[int, int, int]] = []
    if staged:
        if len(staged) > block.MAX_MOVES:
            raise InputError(where(state), f"{len(staged)} stretches of saved RAM lie where QEMU puts its own "
                                              f"data; the trampoline moves at most {block.MAX_MOVES}")
        total = sum(hi - lo for lo, hi in staged)
        base = _first_fit(_subtract(free, windows + taken), total)
        if base is None:
            raise InputError(where(state), f"no free RAM of {total:#x} bytes to stage the saved RAM that lies "
                                              f"where QEMU puts its own data ({ranges(staged)})")
        image = bytearray()
        for lo, hi in staged:
            moves.append((lo, base + len(image), hi - lo))
            image += read_ram(segments, lo, hi)
        path = work / STAGED_FILE.format(start=base)
        path.write_bytes(image)
        loads.append((base, path))
    return Plan(loads, moves)


def read_ram(segments, start: int, end: int) -> bytes:
    """[start, end) of the saved RAM: the segments' bytes, zero elsewhere."""
    out = bytearray(end - start)
    for seg_start, size, path in segments:
        lo, hi = max(start, seg_start), min(end, seg_start + size)
        if lo < hi:
            with open(path, "rb") as f:
                f.seek(lo - seg_start)
                out[lo - start:hi - start] = f.read(hi - lo)
    return bytes(out)


def trampoline_image(name: str, layout, fields, regs: dict[str, int], moves) -> bytes:
    """The packaged trampoline ``name`` with ``regs`` and ``moves`` in its state block."""
    image = bytearray(resources.files(__package__).joinpath("trampolines", name).read_bytes())
    size = layout.sizeof()
    offset = block.STATE_OFFSET
    try:
        state = layout.parse(image[offset:offset + size])
    except ConstructError:  # too short, no magic
        state = None
    if state is None or state.version != block.VERSION or state.size != size or any(
            state[field] != block.PLACEHOLDER + n for n, field in enumerate(fields)):
        raise InputError(name, "the packaged trampoline does not match efistub's state block: rebuild it with "
                               "efistub/resume/trampolines/build.sh")
    for field in fields:
        state[field] = regs[field]
    state.move_count = len(moves)
    for entry, (destination, source, length) in zip(state.moves, moves):
        entry.destination, entry.source, entry.size = destination, source, length
    image[offset:offset + size] = layout.build(state)
    return bytes(image)


def loader_arguments(loads) -> list[str]:
    argv: list[str] = []
    for address, path in loads:
        argv += ["-device", f"loader,file={option_value(str(path))},addr=0x{address:x},force-raw=on"]
    return argv


def option_value(text: str) -> str:
    """A value inside a QEMU option list: commas doubled."""
    return text.replace(",", ",,")


def ranges(spans) -> str:
    return ", ".join(f"0x{lo:x}-0x{hi:x}" for lo, hi in spans) if spans else "none"


def _memory_map(state) -> list[dict] | None:
    """The memory map the kernel was handed (None when the hand-off gave none)."""
    entries = state.manifest.get("memory_map")
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("start"), int)
            and isinstance(e.get("pages"), int) for e in entries):
        raise InputError(where(state), "has a memory_map that is not a list of memory descriptors (type, start, "
                                       "pages)")
    return entries


def _merge(spans) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(s for s in spans if s[0] < s[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _subtract(spans, holes) -> list[tuple[int, int]]:
    out = []
    for lo, hi in spans:
        pieces = [(lo, hi)]
        for h_lo, h_hi in holes:
            pieces = [p for a, b in pieces for p in ((a, min(b, h_lo)), (max(a, h_hi), b)) if p[0] < p[1]]
        out += pieces
    return out


def _first_fit(spans, size: int) -> int | None:
    for lo, hi in spans:
        start = -(-lo // PAGE_SIZE) * PAGE_SIZE
        if start + size <= hi:
            return start
    return None
