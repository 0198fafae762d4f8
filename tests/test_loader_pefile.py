"""The loader on pefile: malformed headers, relocation blocks, raw section placement, the
certificate table and the Unified Kernel Image accessors."""

import random
import struct

import pytest

from conftest import corpus_file
from efistub.errors import InputError
from efistub.layouts import pe
from efistub.loader import parse_image, read_image
from pe_builder import (CODE, DATA, NUMBER_OF_SECTIONS, build_pe, code_image, section_header_offset, with_directory,
                        with_field)

X64 = {pe.MACHINE_AMD64: "x86_64"}
ARCH_FOLDERS = ("x86_64", "aarch64", "riscv64", "ia32")


def parse(data: bytes):
    return parse_image("t.efi", data, X64)


def problem(data: bytes) -> str:
    with pytest.raises(InputError) as e:
        parse(data)
    assert str(e.value) == f"t.efi: {e.value.problem}" and "\n" not in str(e.value)
    return e.value.problem


def relocation_problem(image) -> str:
    with pytest.raises(InputError) as e:
        image.layout(image.image_base + 0x100000)
    assert "\n" not in str(e.value)
    return e.value.problem


IMAGE = code_image(b"\xc3", data=b"D" * 16)  # .text at 0x1000, .data at 0x2000; 0x600 bytes


# --- headers -------------------------------------------------------------------------

def test_e_lfanew_past_the_end_of_the_file():
    data = with_field(IMAGE, 0x3C, "<I", len(IMAGE) + 0x100)
    assert problem(data) == "e_lfanew 0x700 points past the end of the file (0x600 bytes)"


@pytest.mark.parametrize("lfanew", [0x600 - 10, 0x600])  # the PE header would end past the file
def test_e_lfanew_leaving_no_room_for_the_pe_header(lfanew):
    assert problem(with_field(IMAGE, 0x3C, "<I", lfanew)) == (
        f"truncated: the PE header needs bytes {lfanew}..{lfanew + 24}, the file has 1536")


def test_ne_signature_is_not_a_pe_signature():
    assert problem(IMAGE[:0x40] + b"NE\0\0" + IMAGE[0x44:]) == "not a PE image (no PE signature at offset 0x40)"


def test_number_of_sections_0():
    assert problem(with_field(IMAGE, NUMBER_OF_SECTIONS, "<H", 0)) == "no sections (NumberOfSections is 0)"


def test_number_of_sections_97():
    # pefile reads up to 2048 section headers; the PE specification allows 96
    assert problem(build_pe([(f".s{i}", b"x", DATA) for i in range(97)])) == "97 sections (at most 96)"
    assert problem(with_field(IMAGE, NUMBER_OF_SECTIONS, "<H", 97)) == "97 sections (at most 96)"
    assert len(parse(build_pe([(f".s{i}", b"x", DATA) for i in range(96)])).sections) == 96


def test_a_section_header_pefile_stops_at():
    # the header after the last one is zeros: pefile stops there, so the image cannot be loaded
    assert problem(with_field(IMAGE, NUMBER_OF_SECTIONS, "<H", 3)) == (
        "pefile cannot read section header 2 of 3 (Invalid section 2. Contents are null-bytes)")


def test_section_table_cut_short():
    assert problem(IMAGE[:section_header_offset(IMAGE, 0) + 20]) == (
        "truncated: the section table runs past the end of the file (348 bytes)")


@pytest.mark.parametrize("size", [0x70, 0x10])  # too small for the directories, and for the header itself
def test_size_of_optional_header_too_small(size):
    assert problem(code_image(b"\xc3", size_of_optional_header=size)) == (
        f"SizeOfOptionalHeader 0x{size:x} is too small for the PE32+ optional header and its 16 data directories")


def test_truncated_pe32plus_optional_header():
    # pefile pads a short optional header with zeros; the loader does not
    opt = 0x40 + 24
    assert problem(IMAGE[:opt + 0x50]) == (
        f"truncated: the PE32+ optional header needs bytes {opt}..{opt + 0x70}, the file has {opt + 0x50}")


def test_section_raw_data_past_the_end_of_the_file():
    data = with_field(IMAGE, section_header_offset(IMAGE, 1) + 20, "<I", 0x1600)  # PointerToRawData
    assert problem(data) == "truncated: section .data needs file bytes up to 0x1800, the file has 0x600"


def test_section_header_pefile_gives_up_on():
    # past the end, and not a multiple of FileAlignment: three warnings, and pefile drops the section
    data = with_field(IMAGE, section_header_offset(IMAGE, 1) + 20, "<I", 0x1610)
    text = problem(data)
    assert text.startswith("pefile cannot read section header 1 of 2 (Error parsing section 1. SizeOfRawData is larger")
    assert text.endswith("; Too many warnings parsing section. Aborting)")


def test_size_of_image_smaller_than_a_sections_end():
    data = code_image(b"\xc3", data=b"D" * 16, size_of_image=0x2008)
    assert problem(data) == "section .data (RVA 0x2000, 0x10 bytes) lies outside the image"


def test_header_order_is_kept_though_pefile_sorts_by_rva():
    data = IMAGE
    for i, rva in enumerate((0x2000, 0x1000)):  # swap the two sections' RVAs
        data = with_field(data, section_header_offset(data, i) + 12, "<I", rva)
    image = parse(data)
    assert [(s.name, s.virtual_address) for s in image.sections] == [(".text", 0x2000), (".data", 0x1000)]


# --- section placement from the raw header values ---------------------------------------

def test_raw_pointers_that_pefile_would_round_down():
    # FileAlignment 0x40 with SectionAlignment 0x1000: pefile maps RVAs to PointerToRawData & ~0x1ff,
    # EDK2 (and efistub) to PointerToRawData as stored, for the sections and the relocation blocks
    base = 0x10000000
    payload = struct.pack("<QQ", base + 0x2000, base + 0x2008) + bytes(range(48))
    data = build_pe([(".text", b"\x90" * 0x48, CODE), (".data", payload, DATA)], file_align=0x40,
                    image_base=base, relocations=[(0x2000, pe.REL_BASED_DIR64), (0x2008, pe.REL_BASED_DIR64)])
    image = parse(data)
    assert [s.raw_pointer for s in image.sections] == [0x1C0, 0x240, 0x280]
    assert image.section(".data") == payload
    assert image.layout(base)[0x2000:0x2040] == payload
    assert image.relocations() == [(0x2000, (pe.REL_BASED_DIR64 << 12, pe.REL_BASED_DIR64 << 12 | 8))]
    moved = image.layout(0x40000000)
    assert struct.unpack_from("<QQ", moved, 0x2000) == (0x40002000, 0x40002008)
    assert moved[0x2010:0x2040] == payload[16:]


@pytest.mark.parametrize("name", ["x86_64/shellx64.efi", "riscv64/shellriscv64.efi"])
def test_corpus_shells_load_byte_exact(corpus, name):
    path = corpus_file(corpus, name)
    image = read_image(str(path))
    assert image.file_alignment == 0x40 and any(s.raw_pointer % 0x200 for s in image.sections)
    data = path.read_bytes()
    for load in (image.image_base, 0x7F000000):
        assert image.layout(load) == reference_layout(data, load), f"{name} at 0x{load:x}"


def test_corpus_images_lay_out_as_the_reference_and_are_unsigned(corpus):
    images = sorted(p for folder in ARCH_FOLDERS if (corpus / folder).is_dir() for p in (corpus / folder).iterdir())
    if not images:
        pytest.skip(f"no images in {corpus}")
    for path in images:
        image = read_image(str(path))
        data = path.read_bytes()
        assert image.layout(image.image_base) == reference_layout(data, image.image_base), path.name
        if image.has_relocations:
            assert image.layout(0x7F000000) == reference_layout(data, 0x7F000000), path.name
        # the corpus holds Debian's unsigned builds: none has a certificate table
        assert image.certificate_table is None, path.name


def reference_layout(data: bytes, load: int) -> bytearray:
    """An image laid out from its raw header values and relocated in memory, without pefile."""
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    sections, opt_size = struct.unpack_from("<H12xH", data, lfanew + 6)
    opt = lfanew + 24
    plus = struct.unpack_from("<H", data, opt)[0] == pe.PE32PLUS_MAGIC
    image_base = struct.unpack_from("<Q" if plus else "<I", data, opt + (24 if plus else 28))[0]
    size_of_image, size_of_headers = struct.unpack_from("<II", data, opt + 56)
    count = struct.unpack_from("<I", data, opt + (108 if plus else 92))[0]
    reloc_rva, reloc_size = struct.unpack_from("<II", data, opt + (112 if plus else 96) + 40) if count > 5 else (0, 0)
    buf = bytearray(size_of_image)
    buf[:size_of_headers] = data[:size_of_headers]
    for i in range(sections):
        vsize, rva, raw_size, raw = struct.unpack_from("<IIII", data, opt + opt_size + 40 * i + 8)
        size = min(raw_size, vsize or raw_size)
        buf[rva:rva + size] = data[raw:raw + size]
    delta, pos = load - image_base, reloc_rva
    while delta and pos + 8 <= reloc_rva + reloc_size:
        page, block = struct.unpack_from("<II", buf, pos)
        for entry in struct.unpack_from(f"<{(block - 8) // 2}H", buf, pos + 8):
            fmt = {pe.REL_BASED_DIR64: "<Q", pe.REL_BASED_HIGHLOW: "<I"}.get(entry >> 12)
            if fmt:
                target = page + (entry & 0xFFF)
                mask = (1 << (8 * struct.calcsize(fmt))) - 1
                struct.pack_into(fmt, buf, target, (struct.unpack_from(fmt, buf, target)[0] + delta) & mask)
        pos += block
    return buf


# --- base relocations ------------------------------------------------------------------

def reloc_image(blocks: bytes):
    return parse(code_image(b"\xc3", data=b"D" * 16, reloc_data=blocks))  # .reloc at RVA 0x3000


def test_relocation_block_of_size_0():
    image = reloc_image(struct.pack("<II", 0x2000, 0))
    assert image.layout(image.image_base)[0x2000:0x2010] == b"D" * 16  # at its ImageBase, as EDK2, nothing is read
    assert relocation_problem(image) == (
        "corrupt base relocation block at RVA 0x3000: SizeOfBlock 0x0 (the directory ends at RVA 0x3008)")


def test_relocation_block_longer_than_the_directory():
    image = reloc_image(struct.pack("<IIHH", 0x2000, 0x40, pe.REL_BASED_DIR64 << 12, 0))
    assert relocation_problem(image) == (
        "corrupt base relocation block at RVA 0x3000: SizeOfBlock 0x40 (the directory ends at RVA 0x300c)")


def test_relocation_block_for_a_page_outside_the_image():
    good = struct.pack("<IIHH", 0x2000, 12, pe.REL_BASED_DIR64 << 12, 0)
    image = reloc_image(good + struct.pack("<IIHH", 0x100000, 12, pe.REL_BASED_DIR64 << 12, 0))
    assert relocation_problem(image) == ("corrupt base relocation block at RVA 0x300c: "
                                         "Invalid relocation information. VirtualAddress outside of Image: 0x100000")


def test_relocation_entry_outside_the_image():
    image = reloc_image(struct.pack("<IIHH", 0x3000, 12, pe.REL_BASED_DIR64 << 12 | 0xFFC, 0))  # SizeOfImage 0x4000
    assert relocation_problem(image) == "base relocation at RVA 0x3ffc lies outside the image"


def test_relocation_directory_outside_the_file_data_of_a_section():
    data = with_directory(code_image(b"\xc3", data=b"D" * 16), pe.DIRECTORY_BASERELOC, 0x2008, 0x10)  # .data has 16 bytes
    image = parse(data)
    assert relocation_problem(image) == (
        "the base relocation directory (RVA 0x2008, 0x10 bytes) does not lie in the file data of a section")
    outside = with_directory(data, pe.DIRECTORY_BASERELOC, 0x2000, 0x3000)
    assert problem(outside) == "base relocation directory lies outside the image"


def test_repeated_padding_entries_do_not_hide_the_entries_after_them():
    # pefile stops a block at an entry it has seen (two ABSOLUTE paddings): every entry still applies
    entries = [pe.REL_BASED_DIR64 << 12, 0, 0, pe.REL_BASED_DIR64 << 12 | 8]
    image = parse(build_pe([(".text", b"\xc3", CODE), (".data", struct.pack("<QQ", 0x10002000, 0x10002008), DATA)],
                           reloc_data=struct.pack("<II4H", 0x2000, 16, *entries)))
    assert struct.unpack_from("<QQ", image.layout(0x20000000), 0x2000) == (0x20002000, 0x20002008)


def test_a_fragment_after_the_last_block_is_ignored():
    image = reloc_image(struct.pack("<IIHH", 0x2000, 12, pe.REL_BASED_HIGHLOW << 12, 0) + bytes(4))
    assert image.relocations() == [(0x2000, (pe.REL_BASED_HIGHLOW << 12, 0))]


# --- the certificate table -----------------------------------------------------------------

def win_certificate(content: bytes) -> bytes:
    """A WIN_CERTIFICATE of type PKCS_SIGNED_DATA (revision 2.0), padded to 8 bytes."""
    entry = struct.pack("<IHH", 8 + len(content), 0x0200, 0x0002) + content
    return entry.ljust((len(entry) + 7) // 8 * 8, b"\0")


def test_certificate_table_is_a_file_offset():
    table = win_certificate(b"not really PKCS#7")
    data = code_image(b"\xc3", data=b"D" * 16, certificate=table)
    image = parse(data)
    assert image.certificate_table == (0x600, len(table))  # after the sections: no RVA maps there
    offset, size = image.certificate_table
    assert bytes(image.data[offset:offset + size]) == table
    assert image.layout(image.image_base)[0x2000:0x2010] == b"D" * 16  # the table is not loaded


def test_no_certificate_table():
    assert parse(IMAGE).certificate_table is None


def test_certificate_table_outside_the_file():
    image = parse(with_directory(IMAGE, pe.DIRECTORY_SECURITY, 0x5F8, 0x100))
    assert image.layout(image.image_base)  # it loads, as in EDK2 without Secure Boot
    with pytest.raises(InputError) as e:
        image.certificate_table
    assert str(e.value) == ("t.efi: the certificate table (file offset 0x5f8, 0x100 bytes) "
                            "lies outside the file (0x600 bytes)")


# --- sections by name: UKI, .sbat ---------------------------------------------------------

def uki(**kwargs) -> bytes:
    return build_pe([
        (".text", b"\xc3", CODE), (".osrel", b"ID=debian\n", DATA), (".cmdline", b"console=ttyS0", DATA),
        (".linux", b"MZ kernel" * 100, DATA), (".initrd", b"070701" + bytes(500), DATA),
        (".sbat", b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\0\0", DATA),
        (".profile", b"ID=default", DATA), (".profile", b"ID=debug", DATA), (".cmdline", b"debug", DATA),
    ], **kwargs)


@pytest.mark.parametrize("file_align", [0x200, 0x40])
def test_uki_sections(file_align):
    image = parse(uki(file_align=file_align))
    assert image.section_names == [".text", ".osrel", ".cmdline", ".linux", ".initrd", ".sbat", ".profile", ".profile",
                                   ".cmdline"]
    assert image.uki_sections == {
        ".osrel": b"ID=debian\n", ".cmdline": b"console=ttyS0", ".linux": b"MZ kernel" * 100,
        ".initrd": b"070701" + bytes(500), ".profile": [b"ID=default", b"ID=debug"],
    }
    assert image.section(".cmdline") == b"console=ttyS0"  # the first one; no FileAlignment padding
    assert image.section(".dtb") is None
    assert image.sbat == "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"


def test_no_uki_sections_and_no_sbat():
    image = parse(IMAGE)
    assert image.uki_sections == {} and image.sbat is None and image.section_names == [".text", ".data"]


def test_corpus_sbat_and_osrel(corpus):
    shim = read_image(str(corpus_file(corpus, "x86_64/shimx64.efi")))
    assert shim.sbat.startswith("sbat,1,SBAT Version,sbat,1,")
    boot = read_image(str(corpus_file(corpus, "x86_64/257.13-1~deb13u1_systemd-bootx64.efi")))
    assert set(boot.uki_sections) == {".osrel"} and b"systemd-boot" in boot.section(".osrel")


# --- never a traceback -------------------------------------------------------------------------

def test_corrupt_headers_are_input_errors_or_images():
    rng = random.Random(1)
    base = code_image(b"\xc3", data=b"D" * 16, relocations=[(0x2000, pe.REL_BASED_DIR64)])
    for _ in range(150):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(0x40, 0x200)] = rng.randrange(256)
        try:
            image = parse_image("t.efi", data)
            image.layout(image.image_base + 0x10000)
            image.certificate_table
        except InputError as e:
            assert "\n" not in str(e)
