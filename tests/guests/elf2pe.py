#!/usr/bin/env python3
"""Wraps a RISC-V 64 position-independent ELF executable in a PE32+ EFI application.

    python3 elf2pe.py IN.elf OUT.efi

clang has no Windows target for RISC-V and Debian 12's binutils writes no RISC-V
PE, so build.sh compiles the guest programs with riscv64-linux-gnu-gcc
(-fpie -mcmodel=medany), links them with `ld -pie --no-dynamic-linker`, and this
script lays the two LOAD segments out as .text and .data, one page above the PE
headers, and turns every R_RISCV_RELATIVE dynamic relocation into a DIR64 base
relocation. Any other relocation type is an error.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/pe_builder.py

from pe_builder import reloc_blocks  # noqa: E402

from efistub.layouts import pe  # noqa: E402

PT_LOAD, PT_DYNAMIC = 1, 2
PF_X = 1
DT_NULL, DT_RELA, DT_RELASZ, DT_RELAENT = 0, 7, 8, 9
R_RISCV_NONE, R_RISCV_RELATIVE = 0, 3
SHIFT = 0x1000  # ELF address 0 becomes RVA 0x1000: the PE headers take the first page
FILE_ALIGN = 0x200
CODE = pe.SCN_CNT_CODE | pe.SCN_MEM_EXECUTE | 0x40000000
DATA = 0x00000040 | 0x40000000 | 0x80000000


def align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def convert(elf: bytes) -> bytes:
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or struct.unpack_from("<H", elf, 0x12)[0] != 243:
        raise SystemExit("not a 64-bit RISC-V ELF file")
    entry, phoff = struct.unpack_from("<QQ", elf, 0x18)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    segments = [struct.unpack_from("<IIQQQQQQ", elf, phoff + i * phentsize) for i in range(phnum)]
    loads = [s for s in segments if s[0] == PT_LOAD]
    if len(loads) != 2 or not loads[0][1] & PF_X or loads[1][1] & PF_X:
        raise SystemExit("expected two LOAD segments: code, then data")
    image = bytearray(SHIFT + align(loads[1][3] + loads[1][6], 0x1000))
    for _, _, offset, vaddr, _, filesz, _, _ in loads:
        image[SHIFT + vaddr:SHIFT + vaddr + filesz] = elf[offset:offset + filesz]

    def read(vaddr: int, fmt: str):
        return struct.unpack_from(fmt, image, SHIFT + vaddr)

    dynamic = {}
    for seg in segments:
        if seg[0] == PT_DYNAMIC:
            for i in range(0, seg[5], 16):
                tag, value = read(seg[3] + i, "<qQ")
                if tag == DT_NULL:
                    break
                dynamic[tag] = value
    fixups = []
    for i in range(0, dynamic.get(DT_RELASZ, 0), dynamic.get(DT_RELAENT, 24)):
        offset, info, addend = read(dynamic[DT_RELA] + i, "<QQq")
        kind = info & 0xFFFFFFFF
        if kind == R_RISCV_NONE:
            continue
        if kind != R_RISCV_RELATIVE:
            raise SystemExit(f"relocation type {kind} at 0x{offset:x} cannot be expressed in PE")
        struct.pack_into("<Q", image, SHIFT + offset, addend + SHIFT)  # the value at ImageBase 0
        fixups.append((SHIFT + offset, pe.REL_BASED_DIR64))
    return build(image, loads, entry + SHIFT, reloc_blocks(fixups))


def build(image: bytearray, loads, entry_rva: int, relocs: bytes) -> bytes:
    code, data = loads
    sections = [
        (".text", SHIFT + code[3], code[6], image[SHIFT + code[3]:SHIFT + code[3] + code[5]], CODE),
        (".data", SHIFT + data[3], data[6], image[SHIFT + data[3]:SHIFT + data[3] + data[5]], DATA),
    ]
    reloc_rva = align(SHIFT + data[3] + data[6], 0x1000)
    sections.append((".reloc", reloc_rva, len(relocs), relocs, DATA))
    size_of_image = align(reloc_rva + len(relocs), 0x1000)
    opt_size = pe.OptionalHeader64.sizeof() + 16 * pe.DataDirectory.sizeof()
    headers_size = align(0x40 + pe.CoffHeader.sizeof() + opt_size + len(sections) * pe.SectionHeader.sizeof(),
                         FILE_ALIGN)
    table, body, raw = b"", b"", headers_size
    for name, rva, vsize, content, flags in sections:
        raw_size = align(len(content), FILE_ALIGN)
        table += pe.SectionHeader.build(dict(
            Name=name.encode().ljust(8, b"\0"), VirtualSize=vsize, VirtualAddress=rva, SizeOfRawData=raw_size,
            PointerToRawData=raw, PointerToRelocations=0, PointerToLinenumbers=0, NumberOfRelocations=0,
            NumberOfLinenumbers=0, Characteristics=flags))
        body += bytes(content).ljust(raw_size, b"\0")
        raw += raw_size
    directories = [dict(VirtualAddress=0, Size=0) for _ in range(16)]
    directories[pe.DIRECTORY_BASERELOC] = dict(VirtualAddress=reloc_rva, Size=len(relocs))
    opt = pe.OptionalHeader64.build(dict(
        Magic=pe.PE32PLUS_MAGIC, MajorLinkerVersion=0, MinorLinkerVersion=0, SizeOfCode=code[6],
        SizeOfInitializedData=data[5], SizeOfUninitializedData=data[6] - data[5], AddressOfEntryPoint=entry_rva,
        BaseOfCode=SHIFT, ImageBase=0, SectionAlignment=0x1000, FileAlignment=FILE_ALIGN,
        MajorOperatingSystemVersion=0, MinorOperatingSystemVersion=0, MajorImageVersion=0, MinorImageVersion=0,
        MajorSubsystemVersion=0, MinorSubsystemVersion=0, Win32VersionValue=0, SizeOfImage=size_of_image,
        SizeOfHeaders=headers_size, CheckSum=0, Subsystem=pe.SUBSYSTEM_EFI_APPLICATION, DllCharacteristics=0x40,
        SizeOfStackReserve=0, SizeOfStackCommit=0, SizeOfHeapReserve=0, SizeOfHeapCommit=0, LoaderFlags=0,
        NumberOfRvaAndSizes=16)) + b"".join(pe.DataDirectory.build(d) for d in directories)
    coff = pe.CoffHeader.build(dict(Signature=pe.PE_SIGNATURE, Machine=pe.MACHINE_RISCV64,
                                    NumberOfSections=len(sections), TimeDateStamp=0, PointerToSymbolTable=0,
                                    NumberOfSymbols=0, SizeOfOptionalHeader=opt_size, Characteristics=0x22))
    headers = (b"MZ".ljust(0x3C, b"\0") + struct.pack("<I", 0x40) + coff + opt + table).ljust(headers_size, b"\0")
    return headers + body


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    Path(sys.argv[2]).write_bytes(convert(Path(sys.argv[1]).read_bytes()))
