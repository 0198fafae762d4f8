"""PE/COFF loader: validates a PE32 or PE32+ EFI image and lays it out in memory.

Headers and sections are placed from the raw header values (PointerToRawData,
VirtualAddress, SizeOfRawData), as EDK2's loader does; the rest of each section
and the BSS are zero. Base relocations are applied when the image is loaded away
from its ImageBase: HIGHLOW (32-bit) and DIR64 (64-bit) fields, in either format.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from construct import ConstructError

from .errors import InputError
from .layouts import pe

MAX_SECTIONS = 96  # the PE specification's limit
MAX_IMAGE_SIZE = 1 << 31


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

    def executable_ranges(self) -> list[tuple[int, int]]:
        """(rva, size) of the sections that hold code."""
        return [(s.virtual_address, s.span) for s in self.sections if s.executable]

    def pieces(self, load_address: int) -> list[tuple[int, memoryview | bytearray]]:
        """(rva, data) to write into zeroed memory at ``load_address``: the image, relocated.

        Without relocations to apply, these are slices of the file (no copy of a large
        kernel); otherwise the whole relocated layout.
        """
        if load_address != self.image_base and self.has_relocations:
            return [(0, self.layout(load_address))]
        view = memoryview(self.data)
        out = [(0, view[: self.size_of_headers])]
        for s in self.sections:
            size = min(s.raw_size, s.span)
            if size:
                out.append((s.virtual_address, view[s.raw_pointer : s.raw_pointer + size]))
        return out

    def layout(self, load_address: int) -> bytearray:
        """The image as it lies in memory at ``load_address``, relocated."""
        buf = bytearray(self.size_of_image)
        buf[: self.size_of_headers] = self.data[: self.size_of_headers]
        for s in self.sections:
            size = min(s.raw_size, s.span)
            buf[s.virtual_address : s.virtual_address + size] = self.data[s.raw_pointer : s.raw_pointer + size]
        delta = (load_address - self.image_base) & 0xFFFFFFFFFFFFFFFF
        if delta and self.has_relocations:
            self._relocate(buf, delta)
        return buf

    def _relocate(self, buf: bytearray, delta: int) -> None:
        pos, end = self.reloc_rva, self.reloc_rva + self.reloc_size
        header = pe.BaseRelocationBlockHeader
        while pos + header.sizeof() <= end:
            block = header.parse(buf[pos : pos + header.sizeof()])
            if block.SizeOfBlock < header.sizeof() or pos + block.SizeOfBlock > end:
                raise InputError(self.path, f"corrupt base relocation block at RVA 0x{pos:x}")
            count = (block.SizeOfBlock - header.sizeof()) // 2
            entries = struct.unpack_from(f"<{count}H", buf, pos + header.sizeof())
            for entry in entries:
                kind, offset = entry >> 12, entry & 0xFFF
                target = block.VirtualAddress + offset
                if kind == pe.REL_BASED_ABSOLUTE:
                    continue
                if kind == pe.REL_BASED_DIR64:
                    width, fmt, mask = 8, "<Q", 0xFFFFFFFFFFFFFFFF
                elif kind == pe.REL_BASED_HIGHLOW:
                    width, fmt, mask = 4, "<I", 0xFFFFFFFF
                else:
                    raise InputError(self.path, f"unsupported base relocation type {kind} at RVA 0x{target:x}")
                if target + width > len(buf):
                    raise InputError(self.path, f"base relocation at RVA 0x{target:x} lies outside the image")
                (value,) = struct.unpack_from(fmt, buf, target)
                struct.pack_into(fmt, buf, target, (value + delta) & mask)
            pos += block.SizeOfBlock


def read_image(path: str, supported_machines: dict[int, str] | None = None) -> PeImage:
    """Read and validate an EFI image file; raise InputError naming the problem."""
    try:
        with open(path, "rb") as f:
            data = bytearray(os.fstat(f.fileno()).st_size)
            f.readinto(data)  # a writable buffer: sections go to guest memory without copies
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    return parse_image(path, data, supported_machines)


def _parse(path: str, layout, data: bytes, offset: int, what: str):
    size = layout.sizeof()
    if offset + size > len(data):
        raise InputError(path, f"truncated: the {what} needs bytes {offset}..{offset + size}, the file has {len(data)}")
    try:
        return layout.parse(data[offset : offset + size])
    except ConstructError as e:  # pragma: no cover - fixed-size layouts parse any bytes
        raise InputError(path, f"cannot parse the {what}: {e}") from None


def _machine_name(machine: int) -> str:
    return pe.MACHINE_NAMES.get(machine, f"0x{machine:04x}")


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
    dos = _parse(path, pe.DosHeader, data, 0, "DOS header")
    coff = _parse(path, pe.CoffHeader, data, dos.e_lfanew, "PE header")
    if coff.Signature != pe.PE_SIGNATURE:
        raise InputError(path, f"not a PE image (no PE signature at offset 0x{dos.e_lfanew:x})")
    opt_offset = dos.e_lfanew + pe.CoffHeader.sizeof()
    magic = _parse(path, pe.OptionalHeaderMagic, data, opt_offset, "optional header").Magic
    if magic not in pe.OPTIONAL_HEADERS:
        raise InputError(path, f"unknown optional header magic 0x{magic:x}")
    fmt, width, machine = pe.FORMAT_NAMES[magic], pe.POINTER_WIDTHS[magic], coff.Machine
    if pe.MACHINE_WIDTHS.get(machine, width) != width:
        other = next(m for m, w in pe.POINTER_WIDTHS.items() if w != width)
        raise InputError(path, f"{fmt} ({8 * width}-bit) image for {_machine_name(machine)}, a "
                               f"{8 * pe.MACHINE_WIDTHS[machine]}-bit machine whose images are {pe.FORMAT_NAMES[other]}")
    layout = pe.OPTIONAL_HEADERS[magic]
    opt = _parse(path, layout, data, opt_offset, f"{fmt} optional header")
    directories = opt_offset + layout.sizeof()  # the data directories follow the optional header
    if coff.SizeOfOptionalHeader < layout.sizeof() + opt.NumberOfRvaAndSizes * pe.DataDirectory.sizeof():
        raise InputError(path, f"SizeOfOptionalHeader 0x{coff.SizeOfOptionalHeader:x} is too small for the {fmt} "
                               f"optional header and its {opt.NumberOfRvaAndSizes} data directories")
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
    if not 0 < opt.AddressOfEntryPoint < opt.SizeOfImage:
        raise InputError(path, f"entry point RVA 0x{opt.AddressOfEntryPoint:x} lies outside the image")

    sections = []
    table = opt_offset + coff.SizeOfOptionalHeader
    for i in range(coff.NumberOfSections):
        raw = _parse(path, pe.SectionHeader, data, table + i * pe.SectionHeader.sizeof(), f"section header {i}")
        s = Section(
            name=raw.Name.rstrip(b"\0").decode("latin-1"),
            virtual_address=raw.VirtualAddress,
            virtual_size=raw.VirtualSize,
            raw_pointer=raw.PointerToRawData,
            raw_size=raw.SizeOfRawData,
            characteristics=raw.Characteristics,
        )
        if s.virtual_address + s.span > opt.SizeOfImage or s.virtual_address < opt.SizeOfHeaders and s.span:
            raise InputError(path, f"section {s.name or i} (RVA 0x{s.virtual_address:x}, 0x{s.span:x} bytes) lies outside the image")
        if s.raw_size and s.raw_pointer + s.raw_size > len(data):
            raise InputError(path, f"truncated: section {s.name or i} needs file bytes up to "
                                   f"0x{s.raw_pointer + s.raw_size:x}, the file has 0x{len(data):x}")
        sections.append(s)

    reloc_rva = reloc_size = 0
    if opt.NumberOfRvaAndSizes > pe.DIRECTORY_BASERELOC:
        d = _parse(path, pe.DataDirectory, data, directories + pe.DIRECTORY_BASERELOC * pe.DataDirectory.sizeof(), "relocation directory")
        if d.Size:
            if d.VirtualAddress + d.Size > opt.SizeOfImage:
                raise InputError(path, "base relocation directory lies outside the image")
            reloc_rva, reloc_size = d.VirtualAddress, d.Size

    return PeImage(
        path=os.fspath(path), data=data, machine=machine, subsystem=opt.Subsystem,
        image_base=opt.ImageBase, size_of_image=opt.SizeOfImage, size_of_headers=opt.SizeOfHeaders,
        entry_rva=opt.AddressOfEntryPoint, section_alignment=align, file_alignment=opt.FileAlignment,
        characteristics=coff.Characteristics, sections=sections, reloc_rva=reloc_rva, reloc_size=reloc_size,
        magic=magic,
    )
