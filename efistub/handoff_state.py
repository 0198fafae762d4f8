"""The frozen hand-off: the machine state a kernel is entered with, saved so that it can boot elsewhere.

``save`` writes a folder: ``manifest.json`` (documented in docs/handoff-state.md) and one
raw file per memory segment. A segment is a stretch of RAM that the memory map at the
hand-off gives to something (every type but EfiConventionalMemory), without its
all-zero pages (RAM of a freshly started machine is zero); segments closer than
MERGE_GAP are written as one. ``load`` reads a folder back and refuses one that is
incomplete, from another format version or changed since (sizes and SHA-256 of every
segment are in the manifest).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .layouts.efi import PAGE_SIZE
from .memory import FREE, HOLE, MemoryType

FORMAT = "efistub-handoff"
VERSION = 1
MANIFEST = "manifest.json"
MERGE_GAP = 64 << 10  # zero stretches shorter than this stay inside a segment
SCAN_CHUNK = 256 << 10  # RAM is read in pieces of this size (small enough to reuse the same memory)
ZERO_PAGE = bytes(PAGE_SIZE)
WRITE_CHUNK = 256 << 10  # a segment is written and hashed in pieces of this size (no copy of all of it)
ZERO_GAP = memoryview(bytes(MERGE_GAP))  # the zeros between two runs of RAM in a segment (each gap is shorter)
CHECK_CHUNK = 1 << 20  # a segment file is read back into a buffer of this size to check its SHA-256


@dataclass
class Segment:
    start: int
    size: int
    types: list[str]  # the memory types of the map runs it covers
    runs: list[tuple[int, int]]  # the [lo, hi) stretches of RAM it holds; the rest of it is zero

    @property
    def file(self) -> str:
        return f"segment-{self.start:016x}.bin"

    def chunks(self, mem):
        """The segment's bytes in pieces of at most WRITE_CHUNK: RAM read run by run, zeros between runs."""
        at = self.start
        for lo, hi in self.runs:
            if at < lo:
                yield ZERO_GAP[:lo - at]
                at = lo
            while at < hi:
                step = min(hi - at, WRITE_CHUNK)
                yield mem.read(at, step)
                at += step


@dataclass
class HandoffState:
    folder: Path
    manifest: dict

    @property
    def arch(self) -> str:
        return self.manifest["arch"]

    def segments(self):
        """(start, path) of every segment, low to high."""
        for seg in self.manifest["segments"]:
            yield seg["start"], self.folder / seg["file"]


def nonzero_runs(mem, start: int, end: int) -> list[tuple[int, int]]:
    """The [start, end) stretches of whole pages in [start, end) that are not all zero."""
    runs: list[tuple[int, int]] = []
    address = start
    while address < end:
        chunk = mem.read(address, min(SCAN_CHUNK, end - address))
        for offset in range(0, len(chunk), PAGE_SIZE):
            if chunk[offset:offset + PAGE_SIZE] != ZERO_PAGE:
                page = address + offset
                if runs and page - runs[-1][1] < MERGE_GAP:
                    runs[-1] = (runs[-1][0], page + PAGE_SIZE)
                else:
                    runs.append((page, page + PAGE_SIZE))
        address += len(chunk)
    return runs


def segments_of(fw) -> list[Segment]:
    """The RAM the hand-off needs, as the memory map at the hand-off gives it out (where its bytes are:
    nothing is read yet)."""
    out: list[Segment] = []
    for start, end, memory_type in fw.pages.runs():
        if memory_type in (FREE, HOLE):
            continue
        name = MemoryType.name_of(memory_type)
        for lo, hi in (r for ram_lo, ram_hi in fw.mem.ram  # page 0 is not served RAM: never saved
                       if max(start, ram_lo) < min(end, ram_hi)
                       for r in nonzero_runs(fw.mem, max(start, ram_lo), min(end, ram_hi))):
            if out and lo - (out[-1].start + out[-1].size) < MERGE_GAP:
                last = out[-1]
                last.runs.append((lo, hi))
                last.size = hi - last.start
                if name not in last.types:
                    last.types.append(name)
            else:
                out.append(Segment(lo, hi - lo, [name], [(lo, hi)]))
    return out


def write_segment(mem, segment: Segment, path: Path) -> str:
    """Write the segment's bytes into the new file ``path`` piece by piece, hashing each piece as it
    goes out; its SHA-256 (hex)."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for piece in segment.chunks(mem):
            digest.update(piece)
            f.write(piece)
    return digest.hexdigest()


def save(platform, report, folder: str | os.PathLike) -> dict:
    """Write the hand-off of a run that handed off into ``folder`` (created, or empty); return the manifest."""
    from . import __version__

    if report.outcome != "handoff":
        raise ValueError(f"the run did not hand off (outcome {report.outcome})")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(str(folder), "is not an empty folder: the hand-off is saved into a new or empty one")
    folder.mkdir(parents=True, exist_ok=True)
    fw, arch, handoff = platform.fw, platform.arch, report.handoff
    segments = segments_of(fw)
    entries = []
    for seg in segments:
        sha256 = write_segment(fw.mem, seg, folder / seg.file)
        entries.append({"file": seg.file, "start": seg.start, "size": seg.size, "types": seg.types, "sha256": sha256})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "efistub": __version__,
        "arch": arch.name,
        "platform": report.platform,
        "memory": report.options["memory"],
        "entry": handoff["entry"],
        "cpu": arch.cpu_state(platform.uc),
        "boot": boot_arguments(handoff),
        "memory_map": handoff.get("memory_map"),
        "image": {"path": report.image, "sha256": next((i["sha256"] for i in report.images), None)},
        "segments": entries,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def boot_arguments(handoff: dict) -> dict:
    """Where the kernel's boot arguments are: boot_params on x86, the FDT elsewhere; the command
    line and the initrd as the kernel will find them."""
    out: dict = {}
    if "boot_params" in handoff:
        bp = handoff["boot_params"]
        out.update(kind="linux-x86-boot-params", boot_params=handoff["registers"].get("rsi"),
                   cmdline=bp.get("cmdline"), initrd={"start": bp.get("ramdisk_image"), "size": bp.get("ramdisk_size")})
    elif "fdt_address" in handoff:
        chosen = handoff.get("fdt", {}).get("chosen", {})
        out.update(kind="fdt", fdt=handoff["fdt_address"], fdt_size=handoff.get("fdt", {}).get("size"),
                   cmdline=chosen.get("bootargs"))
        media = next((t["initrd"] for t in handoff.get("configuration_tables", []) if "initrd" in t), None)
        if media:
            out["initrd"] = {"start": media["base"], "size": media["size"]}
    return out


def file_matches(path: Path, size: int, sha256: str) -> bool:
    """Whether the file holds ``size`` bytes whose SHA-256 is ``sha256`` (hex): the size first (a file of
    another size is not read), then the bytes, read once into one reused buffer and hashed as they come."""
    digest = hashlib.sha256()
    buffer = bytearray(CHECK_CHUNK)
    view = memoryview(buffer)
    read = 0
    with open(path, "rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size != size:
            return False
        while count := f.readinto(buffer):
            digest.update(view[:count])
            read += count
    return read == size and digest.hexdigest() == sha256


def load(folder: str | os.PathLike) -> HandoffState:
    """A saved hand-off, checked: InputError (one line) for anything missing, foreign or changed."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(str(folder), f"no {MANIFEST}: not a saved hand-off (efistub run --save-handoff)") from None
    except (OSError, ValueError) as e:
        raise InputError(str(path), f"cannot read the manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(str(path), f"is not an {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise InputError(str(path), f"is version {manifest.get('version')!r} of the format; this efistub reads "
                                    f"version {VERSION}")
    for key in ("arch", "entry", "cpu", "segments", "platform", "memory"):
        if key not in manifest:
            raise InputError(str(path), f"has no {key!r}")
    for seg in manifest["segments"]:
        file = folder / seg["file"]
        if Path(seg["file"]).name != seg["file"]:
            raise InputError(str(path), f"segment file {seg['file']!r} is not a plain name in the folder")
        try:
            matches = file_matches(file, seg["size"], seg["sha256"])
        except OSError as e:
            raise InputError(str(file), f"missing or unreadable segment: {e.strerror or e}") from None
        if not matches:
            raise InputError(str(file), "does not match its size and SHA-256 in the manifest: changed since it "
                                        "was saved")
    return HandoffState(folder, manifest)
