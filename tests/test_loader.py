import struct

import pytest

from efistub.errors import InputError
from efistub.layouts import pe
from efistub.loader import parse_image
from pe_builder import CODE, DATA, build_pe, code_image


def parse(data: bytes):
    return parse_image("t.efi", data, {pe.MACHINE_AMD64: "x86_64"})


def problem(data: bytes) -> str:
    with pytest.raises(InputError) as e:
        parse(data)
    return e.value.problem


def test_sections_are_placed_at_their_rva_and_zero_filled():
    code, data = b"\x90" * 10 + b"\xc3", b"DATA" * 3
    image = parse(build_pe([(".text", code, CODE), (".data", data, DATA)]))
    buf = image.layout(image.image_base)
    text, dat = image.sections
    assert buf[text.virtual_address:text.virtual_address + len(code)] == code
    assert buf[dat.virtual_address:dat.virtual_address + len(data)] == data
    assert buf[dat.virtual_address + len(data):dat.virtual_address + 0x1000] == bytes(0x1000 - len(data))
    assert len(buf) == image.size_of_image
    assert [s.executable for s in image.sections] == [True, False]


def test_small_file_alignment_reads_raw_values_exactly():
    # FileAlignment 0x40 (as the UEFI Shell): libraries that round PointerToRawData to 0x200 misread it
    payload = bytes(range(64)) * 4
    data = build_pe([(".text", b"\x90" * 0x48, CODE), (".data", payload, DATA)], file_align=0x40, section_align=0x40)
    image = parse(data)
    s = image.sections[1]
    assert s.raw_pointer % 0x200 != 0
    buf = image.layout(image.image_base)
    assert buf[s.virtual_address:s.virtual_address + len(payload)] == payload


def test_relocations_dir64_highlow_and_padding_are_applied():
    base = 0x10000000
    data = struct.pack("<QI", base + 0x2000, (base + 0x2010) & 0xFFFFFFFF) + bytes(4)
    image = parse(build_pe([(".text", b"\xc3", CODE), (".data", data, DATA)], image_base=base,
                           relocations=[(0x2000, pe.REL_BASED_DIR64), (0x2008, pe.REL_BASED_HIGHLOW),
                                        (0x2008, pe.REL_BASED_ABSOLUTE)]))
    assert image.has_relocations
    new = 0x345000
    buf = image.layout(new)
    q, d = struct.unpack_from("<QI", buf, 0x2000)
    assert q == new + 0x2000
    assert d == new + 0x2010
    assert image.layout(base)[0x2000:0x2008] == struct.pack("<Q", base + 0x2000)


def test_unknown_relocation_type_is_an_input_error():
    image = parse(build_pe([(".text", b"\xc3", CODE), (".data", bytes(16), DATA)],
                           relocations=[(0x2000, 7)]))
    with pytest.raises(InputError, match="unsupported base relocation type 7"):
        image.layout(0x500000)


@pytest.mark.parametrize("data, expected", [
    (b"", "not a PE image (no MZ signature)"),
    (b"hello world", "not a PE image (no MZ signature)"),
    (b"MZ" + bytes(10), "truncated"),
    (b"MZ".ljust(0x3C, b"\0") + struct.pack("<I", 0x40) + b"XX\0\0" + bytes(40), "no PE signature"),
])
def test_not_a_pe(data, expected):
    assert expected in problem(data)


def test_wrong_machine_names_it():
    assert "machine loongarch64 is not supported" in problem(code_image(b"\xc3", machine=0x6264))


def test_pe32_for_a_64bit_machine_is_rejected():
    assert "PE32 (32-bit) image for x86_64, a 64-bit machine" in problem(code_image(b"\xc3", magic=pe.PE32_MAGIC))


def test_pe32plus_is_8_bytes_wide():
    assert parse(code_image(b"\xc3")).width == 8


def test_not_an_efi_subsystem():
    assert "subsystem Windows console is not an EFI subsystem" in problem(code_image(b"\xc3", subsystem=3))


def test_absurd_size_of_image():
    assert "SizeOfImage" in problem(code_image(b"\xc3", size_of_image=0xF0000000))


def test_section_outside_image():
    assert "lies outside the image" in problem(code_image(b"\xc3", size_of_image=0x1000))


def test_truncated_section_data():
    data = code_image(b"\x90" * 0x300)
    assert "truncated" in problem(data[:-0x200])


def test_bad_section_alignment():
    assert "not a power of two" in problem(code_image(b"\xc3", section_align=0x3000))
