"""Fuzzing the loader (issue 15): real PE headers mutated, hostile ones built, with hypothesis.

Every case ends as a report (a run with a short --timeout, through Machine or the CLI) or
as efistub's InputError (the CLI's one-line error, exit 2), never as another exception
nor as a report whose outcome is "error"; and a hostile SizeOfImage costs the host no
memory (the guest RAM is bounded by --mem).

The seeds are our guests (tests/guests/*/*.efi, always there) and the corpus images
(EFISTUB_CORPUS: the kernels, the Shell, systemd-boot; those tests skip without it).
The headers are edited by field name, from the construct layouts of efistub.layouts.pe.

CI runs a few examples of each test, derandomized (the same examples every time; seconds
in all). A campaign draws many more, at random: EFISTUB_FUZZ_EXAMPLES=100000 (see
docs/reliability.md, which also has the coverage-guided atheris entry point
fuzz/loader_fuzz.py). A case a campaign finds becomes a regression test at the end of
this file, as a small image built in the test.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import corpus_file
from direct_calls import finished_run
from efistub import arch, cli
from efistub.errors import EfiError, InputError
from efistub.layouts import pe
from efistub.loader import MAX_IMAGE_SIZE, MAX_SECTIONS, parse_image
from efistub.machine import Machine
from efistub.memory import FREE
from efistub.services import image as images
from efistub.status import Status
from pe_builder import CODE, DATA, build_pe, build_pe32

GUESTS = Path(__file__).parent / "guests"
GUEST_IMAGES = sorted(GUESTS.glob("*/*.efi"))
CORPUS_IMAGES = ("x86_64/vmlinuz-6.12.117+deb13-amd64", "aarch64/vmlinuz-6.12.117+deb13-arm64",
                 "riscv64/vmlinux-6.12.117+deb13-riscv64", "x86_64/shellx64.efi", "aarch64/shellaa64.efi",
                 "x86_64/257.13-1~deb13u1_systemd-bootx64.efi", "ia32/7.20-1_memtest86+ia32.efi")
CORPUS_RUNS = ("x86_64/shellx64.efi", "x86_64/257.13-1~deb13u1_systemd-bootx64.efi", "aarch64/shellaa64.efi")

CAMPAIGN = int(os.environ.get("EFISTUB_FUZZ_EXAMPLES", "0") or 0)
RUN_TIMEOUT = 0.3  # seconds a fuzzed image may run: the outcome does not matter, only that there is one
MOVED = 0x7F000000  # a load address away from every ImageBase the seeds have: the relocated layout


def examples(ci: int):
    """``ci`` examples, the same ones every run; EFISTUB_FUZZ_EXAMPLES random ones in a campaign."""
    return settings(max_examples=CAMPAIGN or ci, deadline=None, derandomize=not CAMPAIGN,
                    database=None if not CAMPAIGN else settings.default.database,
                    suppress_health_check=list(HealthCheck), print_blob=True)


# --- the header fields, by name ---------------------------------------------------------------

FORMATS = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
INTERESTING = {
    1: (0, 1, 0x7F, 0x80, 0xFF),
    2: (0, 1, 2, MAX_SECTIONS, MAX_SECTIONS + 1, 0x7FFF, 0xFFFF, pe.PE32_MAGIC, pe.PE32PLUS_MAGIC,
        pe.MACHINE_I386, pe.MACHINE_AMD64, pe.MACHINE_ARM64, pe.MACHINE_RISCV64, pe.SUBSYSTEM_EFI_APPLICATION),
    4: (0, 1, 8, 0x200, 0x1000, 0xFFF, 0x1001, 0x10000, MAX_IMAGE_SIZE - 0x1000, MAX_IMAGE_SIZE,
        MAX_IMAGE_SIZE + 1, 0x7FFFFFFF, 0xFFFFF000, 0xFFFFFFFF),
    8: (0, 1, 0x1000, 0x10000000, 0x7FFFFFFFF000, 0xFFFFFFFFFFFFF000, 0xFFFFFFFFFFFFFFFF),
}


def _offsets(layout) -> dict[str, tuple[int, int]]:
    """name -> (offset, size) of each field of a construct Struct."""
    out, at = {}, 0
    for sub in layout.subcons:
        out[sub.name] = (at, sub.sizeof())
        at += sub.sizeof()
    return out


def header_fields(data: bytes) -> dict[str, tuple[int, int]]:
    """Every integer header field of a PE image, by name ("coff.NumberOfSections",
    "opt.SizeOfImage", "dir5.Size", "sec1.PointerToRawData"), as (file offset, size); fields
    that the file is too short to hold are left out."""
    fields = {"dos.e_lfanew": (pe.E_LFANEW, 4)}
    lfanew = struct.unpack_from("<I", data, pe.E_LFANEW)[0] if len(data) >= pe.E_LFANEW + 4 else len(data)
    coff = _offsets(pe.CoffHeader)
    fields.update({f"coff.{n}": (lfanew + o, s) for n, (o, s) in coff.items()})
    opt_at = lfanew + pe.CoffHeader.sizeof()
    magic = struct.unpack_from("<H", data, opt_at)[0] if opt_at + 2 <= len(data) else pe.PE32PLUS_MAGIC
    optional = pe.OPTIONAL_HEADERS.get(magic, pe.OptionalHeader64)
    fields.update({f"opt.{n}": (opt_at + o, s) for n, (o, s) in _offsets(optional).items()})
    directories = opt_at + optional.sizeof()
    for i in range(16):
        for n, (o, s) in _offsets(pe.DataDirectory).items():
            fields[f"dir{i}.{n}"] = (directories + i * pe.DataDirectory.sizeof() + o, s)
    size_of_optional = coff["SizeOfOptionalHeader"]
    count_at, count_size = fields["coff.NumberOfSections"]
    if count_at + count_size <= len(data) and lfanew + size_of_optional[0] + 2 <= len(data):
        table = opt_at + struct.unpack_from("<H", data, lfanew + size_of_optional[0])[0]
        count = min(struct.unpack_from("<H", data, count_at)[0], MAX_SECTIONS)
        for i in range(count):
            for n, (o, s) in _offsets(pe.SectionHeader).items():
                if n != "Name":
                    fields[f"sec{i}.{n}"] = (table + i * pe.SectionHeader.sizeof() + o, s)
    return {n: (o, s) for n, (o, s) in fields.items() if o + s <= len(data)}


class Seeds(list):
    """(name, bytes) of seed images, with a short repr (hypothesis shows a strategy's arguments)."""

    def __repr__(self) -> str:
        return f"Seeds({', '.join(name for name, _ in self)})"


class Case:
    """A fuzzed image: its bytes, and how it was made (a short repr for hypothesis to print)."""

    def __init__(self, seed: str, data: bytearray, edits: list[str]):
        self.seed, self.data, self.edits = seed, data, edits

    def __repr__(self) -> str:
        return f"Case({self.seed}: {', '.join(self.edits)})"


@st.composite
def mutated(draw, seeds: list[tuple[str, bytes]]) -> Case:
    """A seed image with a few header fields set to boundary or arbitrary values, header bytes
    changed, or cut short."""
    name, seed = seeds[draw(st.integers(0, len(seeds) - 1))]
    data, edits = bytearray(seed), []
    for _ in range(draw(st.integers(1, 5))):
        fields = header_fields(data)  # again after each edit: a count or an offset may have changed
        names = sorted(fields)
        how = draw(st.sampled_from(("field", "field", "field", "byte", "cut")))
        if how == "field" and names:
            field = draw(st.sampled_from(names))
            offset, size = fields[field]
            related = (len(data), len(data) - 1, len(data) + 1)
            value = draw(st.one_of(st.sampled_from(INTERESTING[size] + related), st.integers(0, (1 << 8 * size) - 1)))
            value &= (1 << 8 * size) - 1
            struct.pack_into(FORMATS[size], data, offset, value)
            edits.append(f"{field}=0x{value:x}")
        elif how == "byte" and data:
            offset, value = draw(st.integers(0, min(len(data), 0x1000) - 1)), draw(st.integers(0, 255))
            data[offset] = value
            edits.append(f"byte 0x{offset:x}=0x{value:02x}")
        elif how == "cut":
            size = draw(st.integers(0, min(len(data), 0x1000)))
            del data[size:]
            edits.append(f"cut to 0x{size:x} bytes")
    return Case(name, data, edits)


# --- how a case may end ------------------------------------------------------------------------

def one_line(error: InputError) -> None:
    assert "\n" not in str(error) and str(error) == f"{error.path}: {error.problem}"


def loads(data: bytes):
    """The loader's side: the image placed at its ImageBase and moved, its sections by name and
    its certificate table; None when it is bad input."""
    try:
        image = parse_image("fuzz.efi", data, arch.supported())
        image.pieces(image.image_base)
        moved = image.pieces(MOVED)
        if image.has_relocations:  # copies, disjoint: never more than the image, nor than what the file holds
            copied = sum(len(piece) for _, piece in moved)
            fields = sum(len(entries) for _, entries in image.relocations())
            assert copied <= image.size_of_image
            assert copied <= image.size_of_headers + sum(s.file_size for s in image.sections) + 8 * fields
        image.uki_sections, image.sbat, image.certificate_table, image.executable_ranges()
        return image
    except InputError as e:
        one_line(e)
        return None


def runs(data: bytes, **options):
    """Machine's side: a report whose outcome is not "error", or an InputError."""
    try:
        report = Machine(bytes(data), timeout=RUN_TIMEOUT, **options).run()
    except InputError as e:
        one_line(e)
        return None
    assert report.outcome != "error", report.error
    cli.summary(report)  # prints without error
    json.loads(report.to_json())
    return report


def ends_cleanly(data: bytes, run: bool = True) -> None:
    if loads(data) is not None and run:
        runs(data)


# --- real headers, mutated ---------------------------------------------------------------------

GUEST_SEEDS = Seeds((f"{p.parent.name}/{p.name}", p.read_bytes()) for p in GUEST_IMAGES)


@examples(80)
@given(case=mutated(GUEST_SEEDS))
def test_guest_headers_mutated_load_or_are_input_errors(case):
    loads(case.data)


@examples(30)
@given(case=mutated(GUEST_SEEDS))
def test_guest_headers_mutated_run_to_a_report_or_are_input_errors(case):
    ends_cleanly(case.data)


@pytest.fixture(scope="module")
def corpus_seeds(corpus) -> list[tuple[str, bytes]]:
    seeds = Seeds((name, p.read_bytes()) for name in CORPUS_IMAGES if (p := corpus / name).exists())
    if not seeds:
        pytest.skip(f"none of {', '.join(CORPUS_IMAGES)} is in the corpus at {corpus}")
    return seeds


def test_corpus_headers_mutated_load_or_are_input_errors(corpus_seeds):
    @examples(40)
    @given(case=mutated(corpus_seeds))
    def check(case):
        loads(case.data)

    check()


def test_corpus_headers_mutated_run_to_a_report_or_are_input_errors(corpus):
    seeds = Seeds((name, corpus_file(corpus, name).read_bytes()) for name in CORPUS_RUNS)

    @examples(6)
    @given(case=mutated(seeds))
    def check(case):
        ends_cleanly(case.data)

    check()


# --- hostile images, built ----------------------------------------------------------------------

def edit(data: bytes, **values: int) -> bytearray:
    """``data`` with header fields set by name: ``opt_SizeOfImage=...``, ``sec1_VirtualAddress=...``."""
    out = bytearray(data)
    for key, value in values.items():
        offset, size = header_fields(out)[key.replace("_", ".", 1)]
        struct.pack_into(FORMATS[size], out, offset, value & ((1 << 8 * size) - 1))
    return out


u32 = st.integers(0, 0xFFFFFFFF)
near = lambda *points: st.one_of(*(st.integers(max(p - 0x2000, 0), min(p + 0x2000, 0xFFFFFFFF)) for p in points))  # noqa: E731
CODE_BYTES = {  # return EFI_SUCCESS: a run that gets to the entry point ends at once
    pe.MACHINE_AMD64: b"\x31\xc0\xc3",  # xor eax, eax; ret
    pe.MACHINE_I386: b"\x31\xc0\xc3",
    pe.MACHINE_ARM64: struct.pack("<2I", 0xD2800000, 0xD65F03C0),  # mov x0, #0; ret
    pe.MACHINE_RISCV64: struct.pack("<2I", 0x00000513, 0x00008067),  # li a0, 0; ret
}


@st.composite
def small_image(draw, sections: int | None = None, relocations: bool | None = None) -> bytes:
    """A valid image of one to four sections for any architecture, maybe with relocations."""
    machine = draw(st.sampled_from(sorted(CODE_BYTES)))
    count = sections if sections is not None else draw(st.integers(1, 4))
    parts = [(".text", CODE_BYTES[machine], CODE)] + [(f".d{i}", b"D" * draw(st.integers(1, 0x300)), DATA)
                                                       for i in range(count - 1)]
    relocate = relocations if relocations is not None else draw(st.booleans())
    kind = pe.REL_BASED_HIGHLOW if machine == pe.MACHINE_I386 else pe.REL_BASED_DIR64
    relocs = [(0x2000, kind)] if relocate and count > 1 else None
    build = build_pe32 if machine == pe.MACHINE_I386 else build_pe
    base = draw(st.sampled_from((0x10000000, 0, 0x7FFFFFFF0000 if machine != pe.MACHINE_I386 else 0x7FFF0000)))
    return build(parts, machine=machine, relocations=relocs, image_base=base)


@examples(40)
@given(image=small_image(sections=3), data=st.data())
def test_overlapping_and_out_of_file_sections(image, data):
    fields = {}
    for i in data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)):
        field = data.draw(st.sampled_from(("VirtualAddress", "VirtualSize", "SizeOfRawData", "PointerToRawData")))
        value = data.draw(st.one_of(st.sampled_from((0, 0x1000, 0x1800, 0x2000, 0x200, 0x400, len(image),
                                                     len(image) + 0x200)), near(0x1000, 0x2000), u32))
        fields[f"sec{i % 3}_{field}"] = value
    ends_cleanly(edit(image, **fields))


@examples(30)
@given(image=small_image(relocations=True), size=st.one_of(near(MAX_IMAGE_SIZE, 0xFFFFF000, 0x40000000),
                                                            st.just(0xFFFFFFFF), u32))
def test_size_of_image_near_2_to_the_32(image, size):
    ends_cleanly(edit(image, opt_SizeOfImage=size))


@examples(20)
@given(image=small_image(), count=st.sampled_from((0, 1, MAX_SECTIONS, MAX_SECTIONS + 1, 0x7FFF, 0xFFFF)))
def test_number_of_sections_0_and_96_and_more(image, count):
    ends_cleanly(edit(image, coff_NumberOfSections=count))


@examples(4)
@given(count=st.sampled_from((MAX_SECTIONS, MAX_SECTIONS + 1, 200)), machine=st.sampled_from(sorted(CODE_BYTES)))
def test_built_with_96_sections_and_more(count, machine):
    build = build_pe32 if machine == pe.MACHINE_I386 else build_pe
    data = build([(".text", CODE_BYTES[machine], CODE)] + [(f".s{i}", b"x", DATA) for i in range(count - 1)],
                 machine=machine)
    ends_cleanly(data)


@st.composite
def relocation_blocks(draw) -> bytes:
    """Base relocation blocks: pages and offsets anywhere, sizes right or wrong, types known or not."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        page = draw(st.one_of(st.sampled_from((0, 0x1000, 0x2000, 0x3000, 0xFFFFF000)), u32))
        entries = draw(st.lists(st.integers(0, 0xFFFF) | st.builds(lambda t, o: t << 12 | o,
                                st.sampled_from((pe.REL_BASED_ABSOLUTE, pe.REL_BASED_HIGHLOW, pe.REL_BASED_DIR64)),
                                st.integers(0, 0xFFF)), max_size=12))
        size = draw(st.one_of(st.just(8 + 2 * len(entries)), st.integers(0, 0x40), u32))
        out += struct.pack("<II", page, size) + struct.pack(f"<{len(entries)}H", *entries)
    return out


@examples(40)
@given(blocks=relocation_blocks(), machine=st.sampled_from((pe.MACHINE_AMD64, pe.MACHINE_I386)),
       base=st.sampled_from((0x10000000, 0)))
def test_relocation_blocks_pointing_anywhere(blocks, machine, base):
    build = build_pe32 if machine == pe.MACHINE_I386 else build_pe
    data = build([(".text", CODE_BYTES[machine], CODE), (".data", b"D" * 64, DATA)], machine=machine,
                 reloc_data=blocks, image_base=base)  # ImageBase 0 is never free: the image is moved
    ends_cleanly(data)


@examples(20)
@given(image=small_image(), entry=st.one_of(st.sampled_from((0, 1, 0xFFF, 0x1001, 0x1FFF, 0x2000)), near(0x3000),
                                            u32))
def test_entry_outside_every_section(image, entry):
    ends_cleanly(edit(image, opt_AddressOfEntryPoint=entry))


@examples(20)
@given(image=small_image(), section=st.sampled_from((0, 1, 3, 0x10, 0x200, 0x80000000, 0xFFFFFFFF)),
       file=st.sampled_from((0, 1, 3, 0x10, 0x200, 0x80000000, 0xFFFFFFFF)))
def test_zero_and_odd_alignments(image, section, file):
    ends_cleanly(edit(image, opt_SectionAlignment=section, opt_FileAlignment=file))


@examples(20)
@given(machine=st.sampled_from(sorted(CODE_BYTES) + [0x0EBC, 0x01C4, 0x6264, 0]),
       layout=st.sampled_from((pe.PE32_MAGIC, pe.PE32PLUS_MAGIC)), magic=st.sampled_from((pe.PE32_MAGIC,
                                                                                          pe.PE32PLUS_MAGIC, 0x107)))
def test_pe32_and_pe32plus_confused(machine, layout, magic):
    """The optional header of one format, its Magic saying another, for any machine."""
    data = build_pe([(".text", CODE_BYTES[pe.MACHINE_AMD64], CODE), (".data", b"D" * 16, DATA)], machine=machine,
                    magic=layout,
                    image_base=0x400000, relocations=[(0x2000, pe.REL_BASED_HIGHLOW)])
    ends_cleanly(edit(data, opt_Magic=magic))


@examples(30)
@given(image=small_image(), cut=st.integers(0, 0x200), size=st.one_of(st.none(), st.integers(0, 0xFFFF)))
def test_truncated_optional_headers(image, cut, size):
    offset, _ = header_fields(image)["opt.Magic"]
    data = edit(image, coff_SizeOfOptionalHeader=size) if size is not None else bytearray(image)
    ends_cleanly(data[:offset + cut])


@examples(40)
@given(image=small_image(), count=st.one_of(st.sampled_from((0, 1, 5, 6, 16, 17, 0xFFFFFFFF)), u32),
       directories=st.lists(st.tuples(st.integers(0, 15), u32, st.one_of(u32, st.integers(0, 0x100))), max_size=6))
def test_data_directories_pointing_anywhere(image, count, directories):
    fields = {"opt_NumberOfRvaAndSizes": count}
    for index, address, size in directories:
        fields[f"dir{index}_VirtualAddress"], fields[f"dir{index}_Size"] = address, size
    ends_cleanly(edit(image, **fields))


# --- LoadImage: the same hostile images as a child ------------------------------------------------

@pytest.fixture(scope="module")
def fw():
    """The firmware of a finished run (small RAM), for loading children into it."""
    yield finished_run(memory=128 << 20).fw  # the machine, and with it the engine that holds guest memory, lives until the end


def free_pages(fw) -> int:
    return sum(end - start for start, end, kind in fw.pages.runs() if kind == FREE)


def test_hostile_children_load_or_are_efi_errors(fw):
    parent = fw.image_handle

    @examples(60)
    @given(case=st.one_of(mutated(GUEST_SEEDS), small_image().map(lambda b: Case("built", bytearray(b), []))),
           size=st.one_of(st.none(), near(MAX_IMAGE_SIZE, 0x07000000), u32))
    def check(case, size):
        data = case.data
        if size is not None and "opt.SizeOfImage" in header_fields(data):
            data = edit(data, opt_SizeOfImage=size)
        fields = header_fields(data)
        machine = struct.unpack_from("<H", data, fields["coff.Machine"][0])[0] if "coff.Machine" in fields else 0
        free = free_pages(fw)
        try:
            loaded = images.load_bytes(fw, bytes(data), parent, 0, None, machine)
        except EfiError as e:
            assert isinstance(e.status, int)
            assert free_pages(fw) == free  # a load that failed leaves no pages behind
        else:
            images.unload(fw, loaded)

    check()


# --- memory stays bounded ------------------------------------------------------------------------

def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize("size", [MAX_IMAGE_SIZE, 0x38000000, 0x0C000000])
def test_a_hostile_size_of_image_allocates_nothing_on_the_host(size):
    """A 2 KB image with a huge SizeOfImage and relocations, away from its ImageBase: the loader
    copies what the file holds, not SizeOfImage (it did: a 768 MiB bytearray, then 768 MiB of
    guest RAM written, for a file of 2 KB). The guest RAM itself is bounded by --mem."""
    data = build_pe([(".text", CODE_BYTES[pe.MACHINE_AMD64], CODE), (".data", b"D" * 16, DATA)],
                    image_base=0x7FFF00000000, relocations=[(0x2000, pe.REL_BASED_DIR64)], size_of_image=size)
    image = parse_image("t.efi", data)
    assert sum(len(piece) for _, piece in image.pieces(MOVED)) < 0x2000
    before = _rss()
    tracemalloc.start()
    try:
        report = runs(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak >> 20} MiB allocated for SizeOfImage 0x{size:x}"
    if size <= 0x38000000:  # fits in the default 1 GiB: it ran
        assert report is not None and report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    if before is not None and report is not None:
        assert _rss() - before < 256 << 20  # the image's 3 pages of guest RAM, not SizeOfImage
    del report


def test_the_cli_gives_a_report_or_one_line_and_exit_2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-cli")
    path, report_path = folder / "image.efi", folder / "report.json"

    @examples(12)
    @given(case=st.one_of(mutated(GUEST_SEEDS), small_image().map(lambda b: Case("built", bytearray(b), []))))
    def check(case):
        path.write_bytes(case.data)
        report_path.unlink(missing_ok=True)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["run", str(path), "--timeout", str(RUN_TIMEOUT), "--json", str(report_path)])
        if code == cli.EXIT_INPUT:
            lines = err.getvalue().splitlines()
            assert len(lines) == 1 and lines[0].startswith("efistub: error: "), err.getvalue()
        else:
            assert code in (cli.EXIT_OK, cli.EXIT_GUEST)
            assert json.loads(report_path.read_text())["outcome"] != "error"
            assert "Traceback" not in out.getvalue() + err.getvalue()

    check()


# --- what the fuzzers found: regression tests ------------------------------------------------------

def test_found_a_corrupt_relocation_directory_of_the_first_image_is_bad_input():
    """Found by the fuzzers: an image whose relocation directory lies outside every section's
    file data loads at its ImageBase (as EDK2), but moved it was an EfiError out of Machine.run
    (a traceback from the CLI). Now the run ends in the InputError, one line, exit 2."""
    data = build_pe([(".text", b"\xeb\xfe", CODE), (".data", b"D" * 16, DATA)], image_base=0,
                    relocations=[(0x2000, pe.REL_BASED_DIR64)])
    data = edit(data, dir5_VirtualAddress=0)  # ImageBase 0 is never free RAM: the image is moved
    with pytest.raises(InputError) as e:
        Machine(bytes(data), timeout=RUN_TIMEOUT).run()
    one_line(e.value)
    assert e.value.problem.startswith("the base relocation directory (RVA 0x0")


def test_found_an_image_that_leaves_the_firmware_no_ram_is_bad_input():
    """Found by the fuzzers: a SizeOfImage just below the RAM fits, and then the firmware's own
    tables, protocols and stack found no room: an EfiError out of Machine.run. Now every size up
    to the top of RAM ends as a report or a one-line InputError, and the window is hit."""
    memory, step = 64 << 20, 128 << 10
    problems = []
    for size in range(memory - (4 << 20), memory + step, step):
        data = build_pe([(".text", CODE_BYTES[pe.MACHINE_AMD64], CODE), (".data", b"D" * 16, DATA)],
                        image_base=0x7FFF00000000, relocations=[(0x2000, pe.REL_BASED_DIR64)], size_of_image=size)
        try:
            report = Machine(bytes(data), timeout=RUN_TIMEOUT, memory=memory).run()
        except InputError as e:
            one_line(e)
            problems.append(e.problem)
        else:
            assert report.outcome == "exit", report.outcome
    assert any("leaves too little of 64 MiB of guest RAM for the firmware" in p for p in problems), problems


def test_found_a_relocated_child_with_a_corrupt_directory_is_a_load_error(fw):
    data = build_pe([(".text", b"\xeb\xfe", CODE), (".data", b"D" * 16, DATA)], image_base=0,
                    relocations=[(0x2000, pe.REL_BASED_DIR64)])
    with pytest.raises(EfiError) as e:
        images.load_bytes(fw, bytes(edit(data, dir5_VirtualAddress=0)), fw.image_handle, 0, None, pe.MACHINE_AMD64)
    assert e.value.status == Status.EFI_LOAD_ERROR


if __name__ == "__main__":  # pragma: no cover - python3 tests/test_fuzz_loader.py runs this file's tests
    sys.exit(pytest.main([__file__, "-q"]))
