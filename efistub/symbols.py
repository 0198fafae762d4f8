"""Where an image's symbols lie once it is loaded: the ``add-symbol-file`` command gdb needs.

The image's symbols come from one of two places:

- the image itself, when it carries DWARF (``.debug_*`` sections) or a COFF symbol table: each
  of its sections then lies at the load address plus the section's RVA;
- an ELF file (``--symbols FILE``): a vmlinux, the ELF file a PE image was made from, or a
  ``.debug`` file of ``objcopy --only-keep-debug``. Its sections move by one offset, found by
  pairing an address of the ELF file with one of the image: the image's entry point with the
  ELF file's ``efi_pe_entry`` symbol (a Linux EFI stub; ``__efistub_efi_pe_entry`` in arm64 and
  riscv64 vmlinux files) or with the ELF entry point, the image's first byte with ``_text``, or a
  section with the one of the same name. A pair counts when the bytes at both places agree. A
  ``.debug`` file holds no code to compare; the first pair that names the entry point is taken.

The firmware's own code, the service stubs, gets symbols too: a small ELF file efistub writes
for the run (``firmware_stubs``), one function per stub named after its service. With it gdb
knows where a stub starts and ends, so it finds the caller of a stub (the return address in the
link register, or on the stack) and steps over a service call (``next``, ``nexti``, ``finish``);
backtraces name the service.
"""

from __future__ import annotations

import mmap
import os
import shlex
from dataclasses import dataclass

from .errors import InputError
from .layouts import elf, pe
from .loader import PeImage

ENTRY_SYMBOLS = ("efi_pe_entry", "__efistub_efi_pe_entry")  # a Linux EFI stub's PE entry point
START_SYMBOLS = ("_text",)  # a vmlinux's first byte, the Image's first byte (arm64, riscv64)
COMPARE_BYTES = 32  # bytes of code compared at a candidate pair of addresses
ELF_MACHINES = {"x86_64": elf.EM_X86_64, "aarch64": elf.EM_AARCH64, "riscv64": elf.EM_RISCV, "ia32": elf.EM_386}
ELF64_WIDTH = 8  # the pointer width of the guests whose stubs get an ELF64 symbol file
DEBUG_SECTION = ".debug"  # the prefix of DWARF sections
TEXT = ".text"


@dataclass
class SymbolFile:
    """A file of symbols and where its sections lie in the guest."""

    path: str
    sections: list[tuple[str, int]]  # (name, address); the text section first
    how: str  # how the addresses were found, for the user

    def gdb_command(self) -> str:
        """``add-symbol-file FILE TEXT_ADDRESS -s NAME ADDRESS ...`` (a gdb command; its one address
        without -s is that of .text)."""
        words = ["add-symbol-file", _gdb_quote(self.path)]
        others = self.sections
        if self.sections[0][0] == TEXT:
            words.append(f"0x{self.sections[0][1]:x}")
            others = self.sections[1:]
        for name, address in others:
            words += ["-s", name, f"0x{address:x}"]
        return " ".join(words)


def _gdb_quote(path: str) -> str:
    return f'"{path}"' if any(c.isspace() or c in "'\"" for c in path) else path


def of_image(image: PeImage, load_address: int) -> SymbolFile | None:
    """The image's own symbols at ``load_address``, or None when it carries none (or is no file)."""
    if not os.path.isfile(image.path):  # an image read from a disk or a buffer: nothing for gdb to open
        return None
    names = _section_names(image)
    header = image.parsed.FILE_HEADER if image.parsed is not None else None
    # (an x86 Linux image says NumberOfSymbols 1 with no table: PointerToSymbolTable 0)
    coff_symbols = header is not None and header.NumberOfSymbols > 0 \
        and 0 < header.PointerToSymbolTable < len(image.data)
    if not coff_symbols and not any(n.startswith(DEBUG_SECTION) for n in names):
        return None
    sections = [(name, load_address + s.virtual_address) for name, s in zip(names, image.sections)
                if s.span and not name.startswith(DEBUG_SECTION)]
    sections.sort(key=lambda item: item[0] != TEXT)  # .text first (stable: the others keep their order)
    return SymbolFile(os.path.abspath(image.path), sections, "the image's own symbols")


def _section_names(image: PeImage) -> list[str]:
    """The image's section names, long ones ("/N") looked up in the COFF string table."""
    header = image.parsed.FILE_HEADER if image.parsed is not None else None
    strings = header.PointerToSymbolTable + header.NumberOfSymbols * pe.COFF_SYMBOL_SIZE if header else 0
    names = []
    for s in image.sections:
        name = s.name
        if name.startswith(pe.COFF_LONG_NAME) and name[1:].isdigit() and header and header.PointerToSymbolTable:
            start = strings + int(name[1:])
            end = image.data.find(b"\0", start)
            if start < len(image.data) and end > start:
                name = image.data[start:end].decode("latin-1")
        names.append(name)
    return names


class ElfFile:
    """An ELF64 file's sections and symbols, read in place (a vmlinux with DWARF is large)."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:  # ValueError: an empty file
            raise InputError(path, getattr(e, "strerror", None) or "cannot read it (empty?)") from None
        if self.data[:4] != elf.ELFMAG:
            raise InputError(path, "not an ELF file (--symbols takes an ELF file with symbols, such as a vmlinux)")
        header = elf.Elf64Header.parse(self.data[:elf.Elf64Header.sizeof()])
        if header.ei_class != elf.ELFCLASS64 or header.ei_data != elf.ELFDATA2LSB:
            raise InputError(path, "not a 64-bit little-endian ELF file")
        self.machine, self.entry = header.e_machine, header.e_entry
        size = elf.Elf64SectionHeader.sizeof()
        self.sections = [elf.Elf64SectionHeader.parse(self.data[header.e_shoff + i * size:][:size])
                         for i in range(header.e_shnum)]
        if not self.sections or header.e_shstrndx >= len(self.sections):
            raise InputError(path, "has no section headers")
        names = self.sections[header.e_shstrndx]
        self.names = [self._string(names, s.sh_name) for s in self.sections]

    def _string(self, table, offset: int) -> str:
        start = table.sh_offset + offset
        return self.data[start:self.data.find(b"\0", start)].decode("latin-1")

    def allocated(self) -> list[tuple[str, int, object]]:
        """(name, address, header) of the sections that occupy guest memory."""
        return [(n, s.sh_addr, s) for n, s in zip(self.names, self.sections)
                if s.sh_flags & elf.SHF_ALLOC and s.sh_size]

    def symbol(self, name: str) -> int | None:
        """The value of symbol ``name`` in the symbol table (None when it is not there)."""
        for table in (s for s in self.sections if s.sh_type == elf.SHT_SYMTAB):
            strings = self.sections[table.sh_link]
            start = self.data.find(b"\0" + name.encode() + b"\0", strings.sh_offset,
                                   strings.sh_offset + strings.sh_size)
            if start < 0:
                continue
            offset = start + 1 - strings.sh_offset
            size = elf.Elf64Symbol.sizeof()
            for at in range(table.sh_offset, table.sh_offset + table.sh_size, size):
                if int.from_bytes(self.data[at:at + 4], "little") == offset:  # st_name comes first
                    symbol = elf.Elf64Symbol.parse(self.data[at:at + size])
                    if symbol.st_shndx != elf.SHN_UNDEF:
                        return symbol.st_value
        return None

    def code(self, address: int, size: int) -> bytes | None:
        """The file's bytes at ``address`` (None in a section without them: a .debug file's)."""
        for _, start, s in self.allocated():
            if start <= address < start + s.sh_size:
                if s.sh_type == elf.SHT_NOBITS:
                    return None
                offset = s.sh_offset + address - start
                return bytes(self.data[offset:offset + min(size, start + s.sh_size - address)])
        return None


def _image_bytes(image: PeImage, rva: int, size: int) -> bytes:
    """The image's bytes at ``rva`` as the file holds them (its headers, or a section's data)."""
    if rva < image.size_of_headers:
        return bytes(image.data[rva:min(rva + size, image.size_of_headers)])
    for s in image.sections:
        if s.virtual_address <= rva < s.virtual_address + s.file_size:
            offset = s.raw_pointer + rva - s.virtual_address
            return bytes(image.data[offset:offset + min(size, s.virtual_address + s.file_size - rva)])
    return b""


def from_elf(path: str, image: PeImage, load_address: int) -> SymbolFile:
    """The sections of ELF file ``path`` where they lie with ``image`` loaded at ``load_address``."""
    f = ElfFile(path)
    if f.machine != ELF_MACHINES.get(image.arch):
        raise InputError(path, f"is an ELF file for machine {f.machine}, not for the {image.arch} image")
    candidates = [(f.symbol(name), image.entry_rva, f"its symbol {name} at the entry point") for name in ENTRY_SYMBOLS]
    candidates.append((f.entry, image.entry_rva, "its entry point at the image's"))
    candidates += [(f.symbol(name), 0, f"its symbol {name} at the image's first byte") for name in START_SYMBOLS]
    named = dict(zip(_section_names(image), image.sections))
    candidates += [(address, named[name].virtual_address, f"its section {name} at the image's")
                   for name, address, _ in f.allocated() if name in named]
    unchecked = None
    for address, rva, how in candidates:
        if address is None:
            continue
        ours = f.code(address, COMPARE_BYTES)
        if ours is None:
            if unchecked is None and rva == image.entry_rva and address:
                unchecked = (address, rva, f"{how} (not checked: the file holds no code)")
            continue
        theirs = _image_bytes(image, rva, len(ours))
        if ours and theirs == ours:
            return _placed(f, address, rva, how, load_address)
    if unchecked is not None:
        return _placed(f, *unchecked, load_address)
    raise InputError(path, f"does not match {os.path.basename(image.path)}: none of its entry point, "
                           f"{', '.join(ENTRY_SYMBOLS + START_SYMBOLS)} or same-named sections holds the image's "
                           "code at the image's address")


def _placed(f: ElfFile, address: int, rva: int, how: str, load_address: int) -> SymbolFile:
    offset = load_address + rva - address
    sections = [(name, start + offset) for name, start, s in f.allocated()]
    code = [item for item, (_, _, s) in zip(sections, f.allocated()) if s.sh_flags & elf.SHF_EXECINSTR]
    text = next((item for item in sections if item[0] == TEXT), code[0] if code else None)
    if text is None:
        raise InputError(f.path, "has no code section")
    return SymbolFile(os.path.abspath(f.path), [text] + [item for item in sections if item != text],
                      f"placed by {how}")


FIRMWARE_RETURN = "firmware_return"  # the stub guest functions the firmware calls return to


def firmware_stubs(path: str, arch: str, stubs: dict[str, int], return_address: int, stride: int) -> SymbolFile:
    """Write the ELF symbol file of the firmware's service stubs (``stubs``: service -> address) to
    ``path``: a code section without contents where the stubs lie, one function symbol per stub."""
    functions = sorted((address, name, stride) for name, address in stubs.items())
    start, end = functions[0][0], return_address + stride
    # gdb names a caller's function after the byte before the return address, and guest functions
    # the firmware calls return to the return stub: that byte (the end of the stub before it,
    # never run as an instruction of its own) counts to firmware_return
    functions = [(a, n, size - 1 if a + size == return_address else size) for a, n, size in functions]
    functions.append((return_address - 1, FIRMWARE_RETURN, stride + 1))
    write_elf(path, arch, [(TEXT, start, end - start)], functions=[(n, a, size) for a, n, size in functions])
    return SymbolFile(path, [(TEXT, start)], "the firmware's service stubs")


def write_elf(path: str, arch: str, sections: list[tuple[str, int, bytes | int]], entry: int = 0,
              functions: list[tuple[str, int, int]] = ()) -> None:
    """An ELF64 symbol file: code sections (name, address, their bytes or, without contents, their
    size) and function symbols (name, address, size) in the first one."""
    functions = list(functions)
    strings = bytearray(b"\0")
    symbols = [elf.Elf64Symbol.build(dict(st_name=0, st_info=0, st_other=0, st_shndx=0, st_value=0, st_size=0))]
    for name, address, size in functions:
        symbols.append(elf.Elf64Symbol.build(dict(
            st_name=len(strings), st_info=elf.STB_GLOBAL << elf.ST_BIND_SHIFT | elf.STT_FUNC, st_other=0,
            st_shndx=1, st_value=address, st_size=size)))
        strings += name.encode() + b"\0"
    names = bytearray(b"\0")
    offsets = {}
    for name in [n for n, _, _ in sections] + [".symtab", ".strtab", ".shstrtab"]:
        offsets[name] = len(names)
        names += name.encode() + b"\0"
    header_size, section_size = elf.Elf64Header.sizeof(), elf.Elf64SectionHeader.sizeof()
    blobs, headers, at = [], [dict(sh_name=0, sh_type=elf.SHT_NULL)], header_size
    for name, address, contents in sections:
        data = contents if isinstance(contents, (bytes, bytearray)) else b""
        headers.append(dict(sh_name=offsets[name], sh_type=elf.SHT_PROGBITS if data else elf.SHT_NOBITS,
                            sh_flags=elf.SHF_ALLOC | elf.SHF_EXECINSTR, sh_addr=address, sh_offset=at,
                            sh_size=len(data) if data else contents))
        blobs.append(bytes(data))
        at += len(data)
    strtab_index = len(headers) + 1
    for name, blob, extra in ((".symtab", b"".join(symbols), dict(sh_type=elf.SHT_SYMTAB, sh_link=strtab_index,
                                                                      sh_info=1, sh_entsize=elf.Elf64Symbol.sizeof())),
                              (".strtab", bytes(strings), dict(sh_type=elf.SHT_STRTAB)),
                              (".shstrtab", bytes(names), dict(sh_type=elf.SHT_STRTAB))):
        headers.append(dict(sh_name=offsets[name], sh_offset=at, sh_size=len(blob), **extra))
        blobs.append(blob)
        at += len(blob)
    fields = dict(sh_name=0, sh_type=0, sh_flags=0, sh_addr=0, sh_offset=0, sh_size=0, sh_link=0, sh_info=0,
                  sh_addralign=1, sh_entsize=0)
    header = elf.Elf64Header.build(dict(
        ei_class=elf.ELFCLASS64, ei_data=elf.ELFDATA2LSB, ei_version=elf.EV_CURRENT, ei_osabi=0, ei_abiversion=0,
        e_type=elf.ET_EXEC, e_machine=ELF_MACHINES[arch], e_version=elf.EV_CURRENT, e_entry=entry, e_phoff=0,
        e_shoff=at, e_flags=0, e_ehsize=header_size, e_phentsize=0, e_phnum=0,
        e_shentsize=section_size, e_shnum=len(headers), e_shstrndx=len(headers) - 1))
    with open(path, "wb") as f:
        f.write(header + b"".join(blobs) + b"".join(elf.Elf64SectionHeader.build({**fields, **h}) for h in headers))


def gdb_command_line(address: str, files: list[SymbolFile]) -> str:
    """The shell command that starts gdb-multiarch on the run: load the symbols, then connect."""
    words = ["gdb-multiarch"]
    if files:  # add-symbol-file asks for confirmation in an interactive gdb
        words += ["-ex", "set confirm off"]
        for f in files:
            words += ["-ex", f.gdb_command()]
        words += ["-ex", "set confirm on"]
    return shlex.join(words + ["-ex", f"target remote {address}"])
