"""PE/COFF loader: validates a PE32 or PE32+ EFI image and lays it out in memory.

pefile parses the headers, the section table, the data directories and the base
relocation blocks (``fast_load``: no other directory is parsed, so a 37 MB kernel
parses in about a millisecond). efistub then validates what an EFI loader needs, and
places sections from the raw header values (PointerToRawData, VirtualAddress,
SizeOfRawData), as EDK2's loader does; the rest of each section and the BSS are zero.
pefile rounds PointerToRawData down to 0x200 and VirtualAddress to SectionAlignment
when it maps an RVA to a file offset; efistub pins that mapping to the raw values, so
that pefile reads the relocation blocks where EDK2 would (the UEFI Shell's
FileAlignment is 0x40).

Base relocations are applied when the image is loaded away from its ImageBase: HIGHLOW
(32-bit) and DIR64 (64-bit) fields, in either format. As in EDK2, they are read and
checked only then: an image with a corrupt relocation directory still loads at its
ImageBase. Likewise the certificate table is checked when it is asked for.

Every problem is an InputError naming the file and the problem, on one line.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field

import pefile

from .errors import InputError
from .layouts import pe

MAX_SECTIONS = 96  # the PE specification's limit
MAX_IMAGE_SIZE = 1 << 31
# The sections of a Unified Kernel Image (UAPI.5); .profile may appear more than once
UKI_SECTIONS = (".linux", ".initrd", ".cmdline", ".osrel", ".uname", ".dtb", ".ucode", ".profile")
RELOC_BLOCK_HEADER = 8  # IMAGE_BASE_RELOCATION: VirtualAddress, SizeOfBlock
# The relocation types efistub applies: the field each changes (width, struct format, mask)
RELOCATION_FIELDS = {
    pe.REL_BASED_HIGHLOW: (4, "<I", 0xFFFFFFFF),
    pe.REL_BASED_DIR64: (8, "<Q", 0xFFFFFFFFFFFFFFFF),
}


@dataclass(frozen=True)
class Section:
    name: str
    virtual_address: int
    virtual_size: int
    raw_pointer: int
    raw_size: int
    characteristics: int

    @property
    def executable(self) -> bool:
        return bool(self.characteristics & (pe.SCN_MEM_EXECUTE | pe.SCN_CNT_CODE))

    @property
    def span(self) -> int:
        """Bytes the section occupies in memory."""
        return self.virtual_size or self.raw_size

    @property
    def file_size(self) -> int:
        """Bytes of the section that come from the file (the rest of its span is zero)."""
        return min(self.raw_size, self.span)


@dataclass
class PeImage:
    """A validated PE32 or PE32+ image, not yet placed in guest memory."""

    path: str
    data: bytearray = field(repr=False)
    machine: int
    subsystem: int
    image_base: int
    size_of_image: int
    size_of_headers: int
    entry_rva: int
    section_alignment: int
    file_alignment: int
    characteristics: int
    sections: list[Section] = field(default_factory=list)
    reloc_rva: int = 0
    reloc_size: int = 0
    magic: int = pe.PE32PLUS_MAGIC  # of the optional header: PE32 or PE32+
    certificate_offset: int = 0  # data directory 4 as stored: a file offset, not an RVA
    certificate_size: int = 0
    digests: dict = field(default_factory=dict, repr=False, compare=False)  # its image hashes (pehash.digests)
    # pefile's parse, kept to walk the relocation blocks when they are first needed; those blocks
    parsed: pefile.PE | None = field(default=None, repr=False, compare=False)
    _relocations: list[tuple[int, tuple[int, ...]]] | None = field(default=None, repr=False, compare=False)

    @property
    def width(self) -> int:
        """The image's pointer width in bytes: 4 for PE32, 8 for PE32+."""
        return pe.POINTER_WIDTHS[self.magic]

    @property
    def arch(self) -> str:
        return pe.MACHINE_NAMES.get(self.machine, f"machine 0x{self.machine:04x}")

    @property
    def has_relocations(self) -> bool:
        return self.reloc_size > 0

    @property
    def alignment(self) -> int:
        return max(self.section_alignment, 0x1000)

    @property
    def section_names(self) -> list[str]:
        """The names of the sections, in section-table order (a name may repeat)."""
        return [s.name for s in self.sections]

    def section(self, name: str) -> bytes | None:
        """The data of the first section called ``name`` as the file holds it (without the
        file-alignment padding past its VirtualSize), or None when there is no such section."""
        for s in self.sections:
            if s.name == name:
                return bytes(self.data[s.raw_pointer : s.raw_pointer + s.file_size])
        return None

    @property
    def uki_sections(self) -> dict[str, bytes | list[bytes]]:
        """The Unified Kernel Image sections present (.linux, .initrd, .cmdline, .osrel,
        .uname, .dtb, .ucode: the first of each name; .profile: a list of all of them)."""
        out: dict[str, bytes | list[bytes]] = {}
        for s in self.sections:
            if s.name not in UKI_SECTIONS:
                continue
            data = bytes(self.data[s.raw_pointer : s.raw_pointer + s.file_size])
            if s.name == ".profile":
                out.setdefault(s.name, []).append(data)
            else:
                out.setdefault(s.name, data)
        return out

    @property
    def sbat(self) -> str | None:
        """The .sbat section's text (CSV, up to its first NUL), or None without one."""
        data = self.section(".sbat")
        return None if data is None else data.split(b"\0", 1)[0].decode("utf-8", errors="replace")

    @property
    def certificate_table(self) -> tuple[int, int] | None:
        """(file offset, size) of the certificate table (data directory 4, WIN_CERTIFICATE
        entries), or None when the image is not signed. InputError when it lies outside the file."""
        if not self.certificate_size:
            return None
        end = self.certificate_offset + self.certificate_size
        if end > len(self.data):
            raise InputError(self.path, f"the certificate table (file offset 0x{self.certificate_offset:x}, "
                                        f"0x{self.certificate_size:x} bytes) lies outside the file "
                                        f"(0x{len(self.data):x} bytes)")
        return self.certificate_offset, self.certificate_size

    def executable_ranges(self) -> list[tuple[int, int]]:
        """(rva, size) of the sections that hold code."""
        return [(s.virtual_address, s.span) for s in self.sections if s.executable]

    def pieces(self, load_address: int) -> list[tuple[int, memoryview | bytearray]]:
        """(rva, data) to write into zeroed memory at ``load_address``: the image, relocated.

        Without relocations to apply, these are slices of the file (no copy of a large
        kernel). Otherwise they are copies of the same spans (the headers, each section's
        file data) and of the relocated fields that lie in the zero-filled rest, merged
        where they touch, and relocated: never a buffer of the whole SizeOfImage, so that
        a hostile SizeOfImage (up to MAX_IMAGE_SIZE) costs the host nothing. The copies
        are at most the bytes the image writes into guest memory anyway.
        """
        if load_address == self.image_base or not self.has_relocations:
            view = memoryview(self.data)
            out = [(0, view[: self.size_of_headers])]
            for s in self.sections:
                if s.file_size:
                    out.append((s.virtual_address, view[s.raw_pointer : s.raw_pointer + s.file_size]))
            return out
        delta = (load_address - self.image_base) & 0xFFFFFFFFFFFFFFFF
        fields = self._relocation_fields()
        sources = [(0, 0, self.size_of_headers)] + [(s.virtual_address, s.raw_pointer, s.file_size)
                                                     for s in self.sections if s.file_size]
        spans = _merge([(rva, rva + size) for rva, _, size in sources] + [(t, t + w) for t, w, _, _ in fields])
        starts = [start for start, _ in spans]
        buffers = [bytearray(end - start) for start, end in spans]

        def locate(rva: int) -> tuple[bytearray, int]:  # every source and field lies in one span
            index = bisect.bisect_right(starts, rva) - 1
            return buffers[index], rva - starts[index]

        for rva, raw, size in sources:  # in the order layout() writes them: a later section wins
            buf, at = locate(rva)
            buf[at : at + size] = self.data[raw : raw + size]
        for target, _, fmt, mask in fields:
            buf, at = locate(target)
            (value,) = struct.unpack_from(fmt, buf, at)
            struct.pack_into(fmt, buf, at, (value + delta) & mask)
        return list(zip(starts, buffers))

    def layout(self, load_address: int) -> bytearray:
        """The image as it lies in memory at ``load_address``, relocated (SizeOfImage bytes)."""
        buf = bytearray(self.size_of_image)
        for rva, data in self.pieces(load_address):
            buf[rva : rva + len(data)] = data
        return buf

    def relocations(self) -> list[tuple[int, tuple[int, ...]]]:
        """The base relocation blocks: (page RVA, entries), each entry type << 12 | offset.

        pefile walks the blocks (on first use; InputError for a corrupt one), and efistub
        reads each block's entries in one piece (see _PeFile).
        """
        if self._relocations is None:
            self._relocations = _relocation_blocks(self)
        return self._relocations

    def _relocation_fields(self) -> list[tuple[int, int, str, int]]:
        """The fields the relocations change, in order: (RVA, width, struct format, mask);
        InputError for an unsupported type or a field outside the image."""
        out = []
        for page, entries in self.relocations():
            for entry in entries:
                kind, target = entry >> 12, page + (entry & 0xFFF)
                if kind == pe.REL_BASED_ABSOLUTE:
                    continue
                field = RELOCATION_FIELDS.get(kind)
                if field is None:
                    raise InputError(self.path, f"unsupported base relocation type {kind} at RVA 0x{target:x}")
                width, fmt, mask = field
                if target + width > self.size_of_image:
                    raise InputError(self.path, f"base relocation at RVA 0x{target:x} lies outside the image")
                out.append((target, width, fmt, mask))
        return out


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint (start, end) spans covering the intervals; touching ones are joined."""
    out: list[list[int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(start, end) for start, end in out]


class _PeFile(pefile.PE):
    """pefile's PE, walking the base relocation blocks without their entries.

    pefile makes an object of each 2-byte entry (some 10 µs each: 50 ms for an iPXE
    image), and stops a block at an entry it has seen, while EDK2 and GRUB images repeat
    their ABSOLUTE padding; efistub reads a block's entries in one piece instead.
    """

    def parse_relocations(self, data_rva, rva, size):
        return []


def _relocation_blocks(image: PeImage) -> list[tuple[int, tuple[int, ...]]]:
    start, end = image.reloc_rva, image.reloc_rva + image.reloc_size
    if not any(s.virtual_address <= start and end <= s.virtual_address + s.file_size for s in image.sections):
        raise InputError(image.path, f"the base relocation directory (RVA 0x{start:x}, 0x{image.reloc_size:x} bytes) "
                                     "does not lie in the file data of a section")
    warnings = image.parsed.get_warnings()
    seen = len(warnings)
    blocks = image.parsed.parse_relocations_directory(start, image.reloc_size)  # its errors become warnings
    out, rva = [], start
    for block in blocks:
        if rva + RELOC_BLOCK_HEADER > end:
            break  # pefile read a block header past the directory's last few bytes: too few for one
        size = block.struct.SizeOfBlock
        if size < RELOC_BLOCK_HEADER or rva + size > end:
            raise InputError(image.path, f"corrupt base relocation block at RVA 0x{rva:x}: SizeOfBlock 0x{size:x} "
                                         f"(the directory ends at RVA 0x{end:x})")
        count = (size - RELOC_BLOCK_HEADER) // 2
        offset = block.struct.get_file_offset() + RELOC_BLOCK_HEADER
        out.append((block.struct.VirtualAddress, struct.unpack_from(f"<{count}H", image.data, offset)))
        rva += size
    if rva + RELOC_BLOCK_HEADER <= end:  # pefile stopped early: a block for a page outside the image, or unreadable
        reason = warnings[seen].rstrip(".") if len(warnings) > seen else "pefile stopped reading the blocks"
        raise InputError(image.path, f"corrupt base relocation block at RVA 0x{rva:x}: {reason}")
    return out


def read_image(path: str, supported_machines: dict[int, str] | None = None) -> PeImage:
    """Read and validate an EFI image file; raise InputError naming the problem."""
    try:
        with open(path, "rb") as f:
            data = bytearray(os.fstat(f.fileno()).st_size)
            f.readinto(data)  # a writable buffer: sections go to guest memory without copies
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    return parse_image(path, data, supported_machines)


def _machine_name(machine: int) -> str:
    return pe.MACHINE_NAMES.get(machine, f"0x{machine:04x}")


def _truncated(what: str, start: int, size: int, data: bytes) -> str:
    return f"truncated: the {what} needs bytes {start}..{start + size}, the file has {len(data)}"


def _pefile_error(error: pefile.PEFormatError, data: bytearray) -> str:
    """The problem behind one of the PEFormatErrors pefile raises on headers (fast_load)."""
    text = str(error.value)
    lfanew = int.from_bytes(data[pe.E_LFANEW : pe.E_LFANEW + 4], "little")
    coff = pe.CoffHeader.sizeof()
    if text.startswith("Unable to read the DOS Header"):
        return f"truncated: the DOS header needs 64 bytes, the file has {len(data)}"
    if text.startswith("Invalid e_lfanew"):
        return f"e_lfanew 0x{lfanew:x} points past the end of the file (0x{len(data):x} bytes)"
    if text.startswith(("NT Headers not found", "File Header missing")) and lfanew + coff > len(data):
        return _truncated("PE header", lfanew, coff, data)
    if text.startswith(("NT Headers not found", "Invalid NT Headers signature")):
        return f"not a PE image (no PE signature at offset 0x{lfanew:x})"
    if text.startswith("No Optional Header found"):
        offset = lfanew + coff
        magic = int.from_bytes(data[offset : offset + 2], "little")
        layout = pe.OPTIONAL_HEADERS.get(magic)
        if layout is None:
            return f"unknown optional header magic 0x{magic:x}"
        return _truncated(f"{pe.FORMAT_NAMES[magic]} optional header", offset, layout.sizeof(), data)
    if text.startswith("Data length less than expected"):  # the only header pefile does not pad: a section's
        return f"truncated: the section table runs past the end of the file ({len(data)} bytes)"
    return f"not a valid PE image ({text.rstrip('.')})"


def parse_image(path: str, data: bytes | bytearray, supported_machines: dict[int, str] | None = None) -> PeImage:
    """Validate the PE32 or PE32+ EFI image in ``data``; raise InputError(path, problem).

    ``path`` only names the image in errors and in PeImage.path (a file name, or e.g.
    the name of a LoadImage SourceBuffer). Bytes other than a bytearray are copied
    once into one, so that pieces() hands out writable buffers.
    """
    if not isinstance(data, bytearray):
        data = bytearray(data)
    if len(data) < 2 or data[:2] != b"MZ":
        raise InputError(path, "not a PE image (no MZ signature)")
    try:
        parsed = _PeFile(data=data, fast_load=True)
    except pefile.PEFormatError as e:
        raise InputError(path, _pefile_error(e, data)) from None
    coff, opt = parsed.FILE_HEADER, parsed.OPTIONAL_HEADER
    magic, machine = opt.Magic, coff.Machine
    if magic not in pe.FORMAT_NAMES:
        raise InputError(path, f"unknown optional header magic 0x{magic:x}")
    fmt, width = pe.FORMAT_NAMES[magic], pe.POINTER_WIDTHS[magic]
    if pe.MACHINE_WIDTHS.get(machine, width) != width:
        other = next(m for m, w in pe.POINTER_WIDTHS.items() if w != width)
        raise InputError(path, f"{fmt} ({8 * width}-bit) image for {_machine_name(machine)}, a "
                               f"{8 * pe.MACHINE_WIDTHS[machine]}-bit machine whose images are {pe.FORMAT_NAMES[other]}")
    opt_offset, opt_size = opt.get_file_offset(), opt.sizeof()
    if opt_offset + opt_size > len(data):  # pefile pads a short optional header with zeros
        raise InputError(path, _truncated(f"{fmt} optional header", opt_offset, opt_size, data))
    directories = opt.NumberOfRvaAndSizes * 8
    if coff.SizeOfOptionalHeader < opt_size + directories:
        raise InputError(path, f"SizeOfOptionalHeader 0x{coff.SizeOfOptionalHeader:x} is too small for the {fmt} "
                               f"optional header and its {opt.NumberOfRvaAndSizes} data directories")
    if opt_offset + opt_size + directories > len(data):
        raise InputError(path, _truncated("data directory table", opt_offset + opt_size, directories, data))
    if supported_machines is not None and machine not in supported_machines:
        raise InputError(path, f"machine {_machine_name(machine)} is not supported "
                               f"(supported: {', '.join(supported_machines.values())})")
    if opt.Subsystem not in (pe.SUBSYSTEM_EFI_APPLICATION, pe.SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER, pe.SUBSYSTEM_EFI_RUNTIME_DRIVER):
        name = pe.SUBSYSTEM_NAMES.get(opt.Subsystem, str(opt.Subsystem))
        raise InputError(path, f"subsystem {name} is not an EFI subsystem")
    align = opt.SectionAlignment
    if align == 0 or align & (align - 1):
        raise InputError(path, f"SectionAlignment 0x{align:x} is not a power of two")
    if not 0 < opt.SizeOfImage <= MAX_IMAGE_SIZE:
        raise InputError(path, f"SizeOfImage 0x{opt.SizeOfImage:x} is out of range")
    if not 0 < opt.SizeOfHeaders <= min(opt.SizeOfImage, len(data)):
        raise InputError(path, f"SizeOfHeaders 0x{opt.SizeOfHeaders:x} exceeds the image or the file")
    if coff.NumberOfSections > MAX_SECTIONS:
        raise InputError(path, f"{coff.NumberOfSections} sections (at most {MAX_SECTIONS})")
    if coff.NumberOfSections == 0:
        raise InputError(path, "no sections (NumberOfSections is 0)")
    if len(parsed.sections) < coff.NumberOfSections:  # pefile stops at a section header it cannot read
        i = len(parsed.sections)
        reasons = [w.rstrip(".") for w in parsed.get_warnings() if f"section {i}." in w or "section. Aborting" in w]
        raise InputError(path, f"pefile cannot read section header {i} of {coff.NumberOfSections}"
                               + (f" ({'; '.join(reasons)})" if reasons else ""))
    if not 0 < opt.AddressOfEntryPoint < opt.SizeOfImage:
        raise InputError(path, f"entry point RVA 0x{opt.AddressOfEntryPoint:x} lies outside the image")

    sections = []
    for i, raw in enumerate(sorted(parsed.sections, key=lambda s: s.get_file_offset())):  # pefile sorts by RVA
        s = Section(
            name=raw.Name.rstrip(b"\0").decode("latin-1"),
            virtual_address=raw.VirtualAddress,  # as stored: pefile's _adj values are rounded
            virtual_size=raw.Misc_VirtualSize,
            raw_pointer=raw.PointerToRawData,
            raw_size=raw.SizeOfRawData,
            characteristics=raw.Characteristics,
        )
        label = (s.name if s.name.isprintable() else repr(s.name)[1:-1]) or i  # for a one-line error
        if s.virtual_address + s.span > opt.SizeOfImage or s.virtual_address < opt.SizeOfHeaders and s.span:
            raise InputError(path, f"section {label} (RVA 0x{s.virtual_address:x}, 0x{s.span:x} bytes) lies outside the image")
        if s.raw_size and s.raw_pointer + s.raw_size > len(data):
            raise InputError(path, f"truncated: section {label} needs file bytes up to "
                                   f"0x{s.raw_pointer + s.raw_size:x}, the file has 0x{len(data):x}")
        sections.append(s)
        # EDK2's placement for pefile's RVA-to-offset mapping too (the relocation blocks)
        raw.PointerToRawData_adj, raw.VirtualAddress_adj = raw.PointerToRawData, raw.VirtualAddress
        raw.section_min_addr = raw.section_max_addr = None  # pefile's cached bounds, from rounded values

    def directory(index: int) -> tuple[int, int]:
        entries = opt.DATA_DIRECTORY
        return (entries[index].VirtualAddress, entries[index].Size) if index < len(entries) else (0, 0)

    reloc_rva, reloc_size = directory(pe.DIRECTORY_BASERELOC)
    if not reloc_size:
        reloc_rva = 0
    elif reloc_rva + reloc_size > opt.SizeOfImage:
        raise InputError(path, "base relocation directory lies outside the image")
    cert_offset, cert_size = directory(pe.DIRECTORY_SECURITY)

    return PeImage(
        path=os.fspath(path), data=data, machine=machine, subsystem=opt.Subsystem,
        image_base=opt.ImageBase, size_of_image=opt.SizeOfImage, size_of_headers=opt.SizeOfHeaders,
        entry_rva=opt.AddressOfEntryPoint, section_alignment=align, file_alignment=opt.FileAlignment,
        characteristics=coff.Characteristics, sections=sections, reloc_rva=reloc_rva, reloc_size=reloc_size,
        magic=magic, certificate_offset=cert_offset, certificate_size=cert_size, parsed=parsed,
    )
