"""Builds small synthetic PE32+ and PE32 images for tests of the loader and of fault handling, and UKIs
from a real stub and its sections (objcopy)."""

from __future__ import annotations

import struct
from pathlib import Path

from efistub.layouts import efi, pe
from efistub.layouts.efi import offset_of

FILE_ALIGN = 0x200
SECTION_ALIGN = 0x1000
LFANEW = 0x40  # where build_pe puts the PE signature and the COFF header
NUMBER_OF_SECTIONS = LFANEW + 6  # the file offset of the COFF header's NumberOfSections
CODE = pe.SCN_CNT_CODE | pe.SCN_MEM_EXECUTE | 0x40000000  # code, execute, read
DATA = 0x00000040 | 0x40000000 | 0x80000000  # initialized data, read, write


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def build_pe(sections: list[tuple[str, bytes, int]], *, entry_section: int = 0, entry_offset: int = 0,
             machine: int = pe.MACHINE_AMD64, subsystem: int = pe.SUBSYSTEM_EFI_APPLICATION,
             image_base: int = 0x10000000, relocations: list[tuple[int, int]] | None = None,
             magic: int = pe.PE32PLUS_MAGIC, file_align: int = FILE_ALIGN, section_align: int = SECTION_ALIGN,
             size_of_image: int | None = None, size_of_optional_header: int | None = None,
             reloc_data: bytes | None = None, certificate: bytes | None = None) -> bytes:
    """A PE image with ``sections`` = [(name, data, characteristics)].

    ``magic`` picks the optional header's layout: PE32 (pe.PE32_MAGIC) or PE32+ (any
    other value, so that a wrong magic can be tested); it does not change ``machine``.
    ``relocations`` = [(rva, type)] are emitted as a .reloc section. Section RVAs
    follow one another from ``section_align``. ``size_of_optional_header`` overrides
    the header's SizeOfOptionalHeader (the section table still follows 16 directories).
    ``reloc_data`` is a .reloc section's content as given (instead of ``relocations``).
    ``certificate`` is appended after the sections, 8-byte aligned, as the certificate
    table (data directory 4: its file offset and size).
    """
    optional = pe.OPTIONAL_HEADERS.get(magic, pe.OptionalHeader64)
    sections = list(sections)
    if relocations:
        reloc_data = reloc_blocks(relocations)
    if reloc_data is not None:
        sections.append((".reloc", reloc_data, DATA))
    n = len(sections)
    lfanew = LFANEW
    opt_size = optional.sizeof() + 16 * pe.DataDirectory.sizeof()
    headers_size = _align(lfanew + pe.CoffHeader.sizeof() + opt_size + n * pe.SectionHeader.sizeof(), file_align)
    rva = _align(headers_size, section_align)
    raw = headers_size
    table, body, layout = [], b"", []
    for name, data, flags in sections:
        raw_size = _align(len(data), file_align)
        table.append(pe.SectionHeader.build(dict(
            Name=name.encode().ljust(8, b"\0")[:8], VirtualSize=len(data), VirtualAddress=rva,
            SizeOfRawData=raw_size, PointerToRawData=raw, PointerToRelocations=0, PointerToLinenumbers=0,
            NumberOfRelocations=0, NumberOfLinenumbers=0, Characteristics=flags)))
        body += data.ljust(raw_size, b"\0")
        layout.append((rva, len(data)))
        rva = _align(rva + max(len(data), 1), section_align)
        raw += raw_size
    directories = [dict(VirtualAddress=0, Size=0) for _ in range(16)]
    if reloc_data is not None:
        directories[pe.DIRECTORY_BASERELOC] = dict(VirtualAddress=layout[-1][0], Size=layout[-1][1])
    if certificate is not None:
        body = body.ljust(_align(raw, 8) - headers_size, b"\0")
        directories[pe.DIRECTORY_SECURITY] = dict(VirtualAddress=headers_size + len(body), Size=len(certificate))
        body += certificate
    opt = optional.build(dict(
        Magic=magic, MajorLinkerVersion=0, MinorLinkerVersion=0, SizeOfCode=0, SizeOfInitializedData=0,
        SizeOfUninitializedData=0, AddressOfEntryPoint=layout[entry_section][0] + entry_offset, BaseOfCode=0,
        BaseOfData=0, ImageBase=image_base, SectionAlignment=section_align, FileAlignment=file_align,
        MajorOperatingSystemVersion=0, MinorOperatingSystemVersion=0, MajorImageVersion=0, MinorImageVersion=0,
        MajorSubsystemVersion=0, MinorSubsystemVersion=0, Win32VersionValue=0,
        SizeOfImage=size_of_image if size_of_image is not None else rva, SizeOfHeaders=headers_size,
        CheckSum=0, Subsystem=subsystem, DllCharacteristics=0, SizeOfStackReserve=0, SizeOfStackCommit=0,
        SizeOfHeapReserve=0, SizeOfHeapCommit=0, LoaderFlags=0, NumberOfRvaAndSizes=16,
    )) + b"".join(pe.DataDirectory.build(d) for d in directories)
    coff = pe.CoffHeader.build(dict(Signature=pe.PE_SIGNATURE, Machine=machine, NumberOfSections=n,
                                    TimeDateStamp=0, PointerToSymbolTable=0, NumberOfSymbols=0,
                                    SizeOfOptionalHeader=opt_size if size_of_optional_header is None
                                    else size_of_optional_header, Characteristics=0x22))
    dos = b"MZ".ljust(0x3C, b"\0") + struct.pack("<I", lfanew)
    headers = (dos + coff + opt + b"".join(table)).ljust(headers_size, b"\0")
    return headers + body


def with_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``data`` with the field at ``offset`` (a struct format, e.g. "<H") set to ``value``."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def directory_offset(data: bytes, index: int) -> int:
    """The file offset of data directory ``index`` in an image from build_pe."""
    optional = pe.OPTIONAL_HEADERS.get(int.from_bytes(data[LFANEW + 24:LFANEW + 26], "little"), pe.OptionalHeader64)
    return LFANEW + pe.CoffHeader.sizeof() + optional.sizeof() + index * pe.DataDirectory.sizeof()


def with_directory(data: bytes, index: int, address: int, size: int) -> bytes:
    """``data`` with data directory ``index`` set to (``address``, ``size``)."""
    out = bytearray(data)
    struct.pack_into("<II", out, directory_offset(data, index), address, size)
    return bytes(out)


def section_header_offset(data: bytes, index: int) -> int:
    """The file offset of section header ``index`` in an image from build_pe (16 directories)."""
    return directory_offset(data, 16) + index * pe.SectionHeader.sizeof()


def reloc_blocks(relocations: list[tuple[int, int]]) -> bytes:
    blocks = {}
    for rva, kind in relocations:
        blocks.setdefault(rva & ~0xFFF, []).append(kind << 12 | (rva & 0xFFF))
    out = b""
    for page, entries in sorted(blocks.items()):
        if len(entries) % 2:
            entries.append(pe.REL_BASED_ABSOLUTE << 12)  # padding, as linkers emit it
        out += struct.pack("<II", page, 8 + 2 * len(entries)) + struct.pack(f"<{len(entries)}H", *entries)
    return out


def code_image(code: bytes, data: bytes = b"", **kwargs) -> bytes:
    """An image whose entry point is the first byte of ``code``."""
    sections = [(".text", code, CODE)]
    if data:
        sections.append((".data", data, DATA))
    return build_pe(sections, **kwargs)


def printing_image(text: str) -> bytes:
    """An x86_64 image that prints ``text`` on ConOut and returns EFI_SUCCESS."""
    x64 = efi.layouts(8)
    code = (bytes.fromhex("4883ec28")  # sub rsp, 0x28
            + bytes.fromhex("488b4a") + bytes([offset_of(x64.SystemTable, "ConOut")])  # mov rcx, [rdx+ConOut]
            + bytes.fromhex("488d150a000000")  # lea rdx, [rip+10]: the string after the code
            + bytes.fromhex("ff51") + bytes([offset_of(x64.SimpleTextOutput, "OutputString")])  # call [rcx+..]
            + bytes.fromhex("31c04883c428c3")  # xor eax, eax; add rsp, 0x28; ret
            + (text + "\0").encode("utf-16-le"))
    return code_image(code)


def objcopy() -> str:
    """binutils' objcopy (the test skips without it)."""
    import shutil

    import pytest

    tool = shutil.which("objcopy")
    if tool is None:
        pytest.skip("objcopy (binutils) is not installed: cannot build a UKI")
    return tool


def ukify(stub: Path, sections: dict[str, Path], out: Path) -> Path:
    """A UKI at ``out``: ``stub`` (systemd-stub) with ``sections`` (name -> file) added after its own, at its
    section alignment, as ukify lays them out (objcopy)."""
    import os
    import subprocess

    from efistub.loader import read_image

    image = read_image(str(stub))
    align = image.section_alignment
    rva = -(-image.size_of_image // align) * align
    args = [objcopy()]
    for name, path in sections.items():
        args += ["--add-section", f"{name}={path}", "--change-section-vma", f"{name}={image.image_base + rva:#x}",
                 "--set-section-flags", f"{name}=data,readonly"]
        rva += -(-os.path.getsize(path) // align) * align
    subprocess.run(args + [str(stub), str(out)], check=True, capture_output=True)
    return out


def build_pe32(sections: list[tuple[str, bytes, int]], **kwargs) -> bytes:
    """A PE32 image for IA32 (machine 0x14c) at ImageBase 0x400000; relocations are usually HIGHLOW."""
    kwargs.setdefault("machine", pe.MACHINE_I386)
    kwargs.setdefault("image_base", 0x400000)
    kwargs.setdefault("magic", pe.PE32_MAGIC)
    return build_pe(sections, **kwargs)


def code_image32(code: bytes, data: bytes = b"", **kwargs) -> bytes:
    """A PE32 IA32 image whose entry point is the first byte of ``code``."""
    sections = [(".text", code, CODE)]
    if data:
        sections.append((".data", data, DATA))
    return build_pe32(sections, **kwargs)
