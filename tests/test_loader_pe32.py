"""PE32 (IA32) images: the 32-bit optional header, HIGHLOW relocations, format and machine checks."""

import struct

import pytest

from conftest import corpus_file
from efistub.errors import InputError
from efistub.layouts import pe
from efistub.loader import parse_image, read_image
from pe_builder import CODE, DATA, build_pe, build_pe32, code_image, code_image32

IA32 = {pe.MACHINE_I386: "ia32"}
BASE = 0x400000


def problem(data: bytes, supported=IA32) -> str:
    with pytest.raises(InputError) as e:
        parse_image("t.efi", data, supported)
    assert "\n" not in str(e.value)
    return e.value.problem


def placed(image, load_address: int) -> bytearray:
    """Zeroed memory of SizeOfImage with ``pieces(load_address)`` written into it."""
    buf = bytearray(image.size_of_image)
    for rva, data in image.pieces(load_address):
        buf[rva:rva + len(data)] = data
    return buf


def test_pe32_image_loads_with_width_sections_and_entry():
    code, data = b"\x90" * 5 + b"\xc3", b"DATA" * 3
    image = parse_image("t.efi", build_pe32([(".text", code, CODE), (".data", data, DATA)], entry_offset=5), IA32)
    assert image.width == 4 and image.magic == pe.PE32_MAGIC
    assert image.machine == pe.MACHINE_I386 and image.arch == "ia32"
    assert image.image_base == BASE and image.size_of_image == 0x3000 and image.size_of_headers == 0x200
    assert image.section_alignment == 0x1000 and image.file_alignment == 0x200
    assert [(s.name, s.virtual_address, s.virtual_size, s.executable) for s in image.sections] == [
        (".text", 0x1000, len(code), True), (".data", 0x2000, len(data), False)]
    assert image.entry_rva == 0x1005
    assert not image.has_relocations
    buf = placed(image, BASE)
    assert buf[0x1000:0x1000 + len(code)] == code and buf[0x2000:0x2000 + len(data)] == data
    assert buf == image.layout(BASE)


def test_pe32_data_directories_follow_the_shorter_optional_header():
    # the relocation directory is found 0x60 bytes after the optional header's start, not 0x70
    image = parse_image("t.efi", code_image32(b"\xc3", relocations=[(0x1000, pe.REL_BASED_HIGHLOW)]), IA32)
    assert image.has_relocations and image.reloc_rva == 0x2000 and image.reloc_size == 12


@pytest.mark.parametrize("load", [0x1234000, 0x100000])  # above and below ImageBase
def test_highlow_relocations_are_applied_away_from_image_base(load):
    values = [BASE + 0x1000, BASE + 0x2004, 0xDEADBEEF]
    data = struct.pack("<3I", *values)
    image = parse_image("t.efi", build_pe32(
        [(".text", b"\xc3", CODE), (".data", data, DATA)],
        relocations=[(0x2000, pe.REL_BASED_HIGHLOW), (0x2004, pe.REL_BASED_HIGHLOW)]), IA32)
    assert struct.unpack_from("<3I", placed(image, BASE), 0x2000) == tuple(values)
    got = struct.unpack_from("<3I", placed(image, load), 0x2000)
    assert got == (load + 0x1000, load + 0x2004, 0xDEADBEEF)  # the field without a relocation is untouched


def test_highlow_value_wraps_at_4gib():
    data = struct.pack("<I", 0xFFFFF000)
    image = parse_image("t.efi", build_pe32([(".text", b"\xc3", CODE), (".data", data, DATA)],
                                            relocations=[(0x2000, pe.REL_BASED_HIGHLOW)]), IA32)
    assert struct.unpack_from("<I", placed(image, BASE + 0x2000), 0x2000) == (0x1000,)


def test_dir64_relocation_in_a_pe32_image_is_applied_too():
    data = struct.pack("<Q", BASE + 0x10)
    image = parse_image("t.efi", build_pe32([(".text", b"\xc3", CODE), (".data", data, DATA)],
                                            relocations=[(0x2000, pe.REL_BASED_DIR64)]), IA32)
    assert struct.unpack_from("<Q", placed(image, 0x800000), 0x2000) == (0x800010,)


def test_unknown_relocation_type_in_a_pe32_image_is_an_input_error():
    image = parse_image("t.efi", build_pe32([(".text", b"\xc3", CODE), (".data", bytes(16), DATA)],
                                            relocations=[(0x2000, 5)]), IA32)
    with pytest.raises(InputError, match=r"^t\.efi: unsupported base relocation type 5 at RVA 0x2000$"):
        image.pieces(0x800000)


@pytest.mark.parametrize("machine, name", [(pe.MACHINE_AMD64, "x86_64"), (pe.MACHINE_ARM64, "aarch64"),
                                           (pe.MACHINE_RISCV64, "riscv64")])
def test_pe32_with_a_64bit_machine_is_refused(machine, name):
    supported = {machine: name, **IA32}
    text = problem(code_image32(b"\xc3", machine=machine), supported)
    assert text == f"PE32 (32-bit) image for {name}, a 64-bit machine whose images are PE32+"


def test_pe32plus_with_the_ia32_machine_is_refused():
    text = problem(code_image(b"\xc3", machine=pe.MACHINE_I386))
    assert text == "PE32+ (64-bit) image for ia32, a 32-bit machine whose images are PE32"


def test_ia32_is_refused_when_the_caller_does_not_support_it():
    text = problem(code_image32(b"\xc3"), {pe.MACHINE_AMD64: "x86_64"})
    assert text == "machine ia32 is not supported (supported: x86_64)"
    assert parse_image("t.efi", code_image32(b"\xc3")).width == 4  # no map: every machine


def test_truncated_pe32_optional_header_is_refused():
    data = code_image32(b"\xc3")
    opt = 0x40 + pe.CoffHeader.sizeof()
    text = problem(data[:opt + 0x40])
    assert text == f"truncated: the PE32 optional header needs bytes {opt}..{opt + 0x60}, the file has {opt + 0x40}"


def test_size_of_optional_header_too_small_for_pe32_is_refused():
    # 0x70 would fit the PE32 header and two directories, not the 16 it declares
    text = problem(code_image32(b"\xc3", size_of_optional_header=0x70))
    assert text == "SizeOfOptionalHeader 0x70 is too small for the PE32 optional header and its 16 data directories"


def test_existing_checks_hold_for_pe32():
    assert "not a power of two" in problem(code_image32(b"\xc3", section_align=0x3000))
    assert "SizeOfImage" in problem(code_image32(b"\xc3", size_of_image=0xF0000000))
    assert "lies outside the image" in problem(code_image32(b"\xc3", size_of_image=0x1000))
    assert "not an EFI subsystem" in problem(code_image32(b"\xc3", subsystem=3))
    assert "truncated" in problem(code_image32(b"\x90" * 0x300)[:-0x200])


def test_unknown_magic_is_refused():
    data = build_pe([(".text", b"\xc3", CODE)], magic=0x107, machine=pe.MACHINE_I386)
    assert problem(data) == "unknown optional header magic 0x107"


@pytest.mark.parametrize("builder", [code_image32, code_image])
def test_parse_image_from_bytes_matches_read_image(tmp_path, builder):
    data = builder(b"\x90\xc3", data=b"\x11" * 8, relocations=[(0x2000, pe.REL_BASED_HIGHLOW)])
    path = tmp_path / "t.efi"
    path.write_bytes(data)
    supported = {pe.MACHINE_AMD64: "x86_64", **IA32}
    from_file = read_image(str(path), supported)
    from_bytes = parse_image(str(path), bytes(data), supported)
    assert from_bytes == from_file
    assert from_bytes.pieces(0x800000) == from_file.pieces(0x800000)
    assert all(not memoryview(piece).readonly for _, piece in from_bytes.pieces(from_bytes.image_base))


def test_corpus_memtest86plus_ia32(corpus):
    path = corpus_file(corpus, "ia32/7.20-1_memtest86+ia32.efi")
    image = read_image(str(path), IA32)
    assert (image.machine, image.arch, image.width) == (pe.MACHINE_I386, "ia32", 4)
    assert image.image_base == 0x200000 and image.size_of_image == 0x71000 and image.entry_rva == 0x11E0
    assert image.section_alignment == 0x1000 and image.file_alignment == 0x200
    assert image.sections[0].name == ".text" and image.sections[0].executable
    # its .reloc holds one block of padding only: nothing moves when it is loaded elsewhere
    assert image.layout(0x1000000) == image.layout(image.image_base)
    assert parse_image(str(path), path.read_bytes(), IA32) == image
