"""ELF64 little-endian (System V gABI): the file header and a program header, enough to write an
executable of loadable segments (efistub resume's RISC-V trampoline file); section headers and
symbols, enough to read where an ELF file's sections and symbols lie (efistub run --symbols).
"""

from __future__ import annotations

from construct import Const, Int8ul, Int16ul, Int32ul, Int64ul, Padding, Struct

ELFMAG = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EV_CURRENT = 1
ET_EXEC = 2
EM_RISCV = 243
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
EI_NIDENT = 16

Elf64Header = Struct(
    "magic" / Const(ELFMAG),
    "ei_class" / Int8ul,
    "ei_data" / Int8ul,
    "ei_version" / Int8ul,
    "ei_osabi" / Int8ul,
    "ei_abiversion" / Int8ul,
    Padding(EI_NIDENT - 9),
    "e_type" / Int16ul,
    "e_machine" / Int16ul,
    "e_version" / Int32ul,
    "e_entry" / Int64ul,
    "e_phoff" / Int64ul,
    "e_shoff" / Int64ul,
    "e_flags" / Int32ul,
    "e_ehsize" / Int16ul,
    "e_phentsize" / Int16ul,
    "e_phnum" / Int16ul,
    "e_shentsize" / Int16ul,
    "e_shnum" / Int16ul,
    "e_shstrndx" / Int16ul,
)

Elf64ProgramHeader = Struct(
    "p_type" / Int32ul,
    "p_flags" / Int32ul,
    "p_offset" / Int64ul,
    "p_vaddr" / Int64ul,
    "p_paddr" / Int64ul,
    "p_filesz" / Int64ul,
    "p_memsz" / Int64ul,
    "p_align" / Int64ul,
)

# Reading an ELF file's sections and symbols (efistub run --symbols: where gdb finds them)
ELFCLASS32 = 1
EM_386, EM_X86_64, EM_AARCH64 = 3, 62, 183
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 0, 1, 2, 3, 8
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
SHN_UNDEF = 0
STB_GLOBAL, STT_FUNC = 1, 2
ST_BIND_SHIFT = 4  # st_info: the binding in the high nibble, the type in the low one

Elf64SectionHeader = Struct(
    "sh_name" / Int32ul,
    "sh_type" / Int32ul,
    "sh_flags" / Int64ul,
    "sh_addr" / Int64ul,
    "sh_offset" / Int64ul,
    "sh_size" / Int64ul,
    "sh_link" / Int32ul,
    "sh_info" / Int32ul,
    "sh_addralign" / Int64ul,
    "sh_entsize" / Int64ul,
)

Elf64Symbol = Struct(
    "st_name" / Int32ul,
    "st_info" / Int8ul,
    "st_other" / Int8ul,
    "st_shndx" / Int16ul,
    "st_value" / Int64ul,
    "st_size" / Int64ul,
)
