"""EFI_UNICODE_COLLATION(2)_PROTOCOL and EFI_DEVICE_PATH_UTILITIES_PROTOCOL beyond what the guest
checks (tests/guests/textutil.c, in test_guests.py): MetaiMatch against EDK2's algorithm on many
patterns, hostile inputs (unterminated strings and paths end the run as a fault, never hang), and
EDK2's corner cases of device paths."""

import random
import time

import pytest

import direct_calls
from direct_calls import finished_run, put
from efistub import device_path
from efistub.device_path import Node
from efistub.layouts import efi
from efistub.memory import MemoryType
from efistub.protocols import device_path_utilities as dpu
from efistub.protocols import unicode_collation as uc


@pytest.fixture(scope="module")
def fw():
    """The firmware of a finished run: its memory and pools, for calling the functions directly."""
    yield finished_run().fw  # the machine, and with it the engine that holds guest memory, lives until the end


def call(fw, function, *args):
    """A protocol function's (value, fault reason or None), called as the dispatcher would."""
    value, _, reason = direct_calls.call(fw, function, *args)
    return value, reason


# -- MetaiMatch against EDK2's algorithm ------------------------------------------------------------

class ReadsBeyondThePattern(Exception):
    """EDK2 would read past the pattern's NUL (a set without ]): no defined answer."""


def edk2_metai_match(string: str, pattern: str) -> bool:
    """EnglishDxe's EngMetaiMatch, step by step, for reference."""
    up = uc.upper

    def p(i):
        if i > len(pattern):
            raise ReadsBeyondThePattern
        return ord(pattern[i]) if i < len(pattern) else 0

    def s(i):
        return ord(string[i]) if i < len(string) else 0

    def match(si, pi):
        while True:
            cp = p(pi)
            pi += 1
            if cp == 0:
                return s(si) == 0
            if cp == ord("*"):
                while s(si):
                    if match(si, pi):
                        return True
                    si += 1
                return match(si, pi)
            if cp == ord("?"):
                if not s(si):
                    return False
                si += 1
                continue
            if cp == ord("["):
                cc = s(si)
                if not cc:
                    return False
                index3 = 0
                cp = p(pi)
                pi += 1
                while cp:
                    if cp == ord("]"):
                        return False
                    if cp == ord("-"):
                        cp = p(pi)
                        if cp in (0, ord("]")):
                            return False
                        if up(index3) <= up(cc) <= up(cp):
                            break
                    index3 = cp
                    if up(cc) == up(cp):
                        break
                    cp = p(pi)
                    pi += 1
                while cp and cp != ord("]"):
                    cp = p(pi)
                    pi += 1
                si += 1
                continue
            if up(s(si)) != up(cp):
                return False
            si += 1

    return match(0, 0)


def metai_match(string: str, pattern: str) -> bool:
    return uc.metai_match(uc.compile_pattern([ord(c) for c in pattern]), iter([ord(c) for c in string]))


@pytest.mark.parametrize("string, pattern, expected", [
    ("BOOTX64.EFI", "*.efi", True), ("bootaa64.efi", "boot?64.efi", False), ("Boot", "[a-c]*", True),
    ("-", "[-]", False),  # a - before the ] ends the set: EDK2's syntax error
    ("a", "[ab-]", True), ("x", "[ab-]", False), ("!", "[-b]", True),  # [-b]: from character 0 to b
    ("d", "[a-c-e]", True), ("\xe9", "[\xc0-\xde]", True), ("\xff", "[\xc0-\xde]", False),
    ("a", "[a", False), ("]", "[]]", False), ("x]", "[x]]", True),
])
def test_metai_match_cases(string, pattern, expected):
    assert metai_match(string, pattern) is expected
    try:
        assert edk2_metai_match(string, pattern) is expected
    except ReadsBeyondThePattern:
        pass


def test_metai_match_agrees_with_edk2_on_random_patterns():
    rng = random.Random(7)
    pattern_chars, string_chars = "abAB*?[]-\xe9\xc9", "abAB-]*\xe9\xc9"
    compared = 0
    for _ in range(20000):
        pattern = "".join(rng.choice(pattern_chars) for _ in range(rng.randint(0, 7)))
        string = "".join(rng.choice(string_chars) for _ in range(rng.randint(0, 6)))
        try:
            expected = edk2_metai_match(string, pattern)
        except ReadsBeyondThePattern:
            continue
        assert metai_match(string, pattern) is expected, (string, pattern)
        compared += 1
    assert compared > 15000


def test_metai_match_of_hostile_sizes_is_fast():
    n = uc.MAX_STRING - 1
    start = time.monotonic()
    assert not metai_match("a" * n, "*a" * (n // 2) + "b")
    assert metai_match("".join(chr(0x100 + i) for i in range(n // 3)),
                       "".join(f"[{chr(0x100 + i)}]" for i in range(n // 3)))
    assert time.monotonic() - start < 10


# -- strings without an end -----------------------------------------------------------------------

def test_strings_without_nul_end_the_run_as_a_fault(fw):
    endless = put(fw, "A".encode("utf-16-le") * (uc.MAX_STRING + 8))
    short = put(fw, "B\0".encode("utf-16-le"))
    value, reason = call(fw, uc.StriColl, 0, endless, short)
    assert value > 0 and reason is None  # EDK2 reads Str2 only as far as it compares
    value, reason = call(fw, uc.StriColl, 0, short, endless)
    assert value > 0 and reason is None
    for function, args in [(uc.StriColl, (endless, endless)), (uc.MetaiMatch, (short, endless)),
                           (uc.StrUpr, (endless,)), (uc.StrLwr, (endless,)), (uc.StrToFat, (endless, 1 << 20, short)),
                           (uc.StriColl, (0, short)), (uc.MetaiMatch, (0xDEAD00000000, short))]:
        value, reason = call(fw, function, 0, *args)
        assert value == 0 and reason is not None and reason.startswith(f"UnicodeCollation.{function.__name__}: "), \
            (function.__name__, reason)
    value, reason = call(fw, uc.StrToFat, 0, endless, 8, short + 8)  # FatSize ends it first
    assert value == 0 and reason is None and fw.mem.read(short + 8, 8) == b"A" * 8


def test_a_string_that_runs_into_the_end_of_ram_is_a_fault(fw):
    top = fw.mem.ram[-1][1]
    fw.mem.write(top - 8, "Zzzz".encode("utf-16-le"))
    value, reason = call(fw, uc.StrLwr, 0, top - 8)
    assert reason is not None and "UnicodeCollation.StrLwr" in reason
    fw.mem.write(top - 8, "Zz\0\0".encode("utf-16-le"))
    assert call(fw, uc.StrLwr, 0, top - 8) == (None, None)
    assert fw.mem.read(top - 8, 4) == "zz".encode("utf-16-le")


def test_intn_results_are_signed_at_the_guests_width(fw):
    a, b = put(fw, "a\0".encode("utf-16-le")), put(fw, "b\0".encode("utf-16-le"))
    assert call(fw, uc.StriColl, 0, a, b)[0] == (1 << 64) - 1  # -1
    assert call(fw, uc.StriColl, 0, b, a)[0] == 1


# -- device paths ---------------------------------------------------------------------------------

PCI = device_path.encode([device_path.pci_root(0), device_path.pci(4, 0)])


def test_device_path_without_end_is_a_fault_and_bad_nodes_are_invalid(fw):
    endless = put(fw, Node(efi.DEVICE_PATH_HARDWARE, efi.HARDWARE_PCI, bytes(2)).to_bytes() * (1 << 14))
    value, reason = call(fw, dpu.GetDevicePathSize, endless)
    assert value == 0 and "find the End node" in reason
    assert call(fw, dpu.DuplicateDevicePath, 0xDEAD00000000)[1].startswith("DevicePathUtilities.DuplicateDevicePath")
    long_end = put(fw, PCI[:-4] + bytes([efi.DEVICE_PATH_END, efi.END_ENTIRE, 6, 0, 0, 0]))
    assert call(fw, dpu.GetDevicePathSize, long_end) == (0, None)
    empty_name = put(fw, Node(efi.DEVICE_PATH_MEDIA, efi.MEDIA_FILE_PATH, b"").to_bytes() + device_path.END.to_bytes())
    assert call(fw, dpu.GetDevicePathSize, empty_name) == (0, None)
    assert call(fw, dpu.GetDevicePathSize, put(fw, PCI)) == (len(PCI), None)


def test_append_device_node_of_a_short_or_end_node(fw):
    path = put(fw, PCI)
    assert call(fw, dpu.AppendDeviceNode, path, put(fw, bytes([1, 1, 3, 0, 0, 0])))[0] == 0
    copy, _ = call(fw, dpu.AppendDeviceNode, path, put(fw, device_path.END.to_bytes()))
    assert fw.mem.read(copy, len(PCI)) == PCI
    node, _ = call(fw, dpu.AppendDeviceNode, 0, 0)
    assert fw.mem.read(node, 4) == device_path.END.to_bytes()
    assert fw.pages.type_at(node) == MemoryType.EfiBootServicesData and node in fw.pools


def test_next_instance_after_an_end_of_instance_longer_than_a_header(fw):
    """EDK2 copies the instance with its End made an End of the entire path: one longer than a header
    makes the copy invalid (NULL), and the walk still goes on after it."""
    second = device_path.encode([device_path.file_path("\\x")])
    multi = put(fw, PCI[:-4] + bytes([efi.DEVICE_PATH_END, efi.END_INSTANCE, 6, 0, 0, 0]) + second)
    cursor, size = put(fw, bytes(8)), put(fw, bytes(8))
    fw.mem.write_uintn(cursor, multi)
    copy, _ = call(fw, dpu.GetNextDevicePathInstance, cursor, size)
    assert copy == 0 and fw.mem.read_uintn(size) == len(PCI) and fw.mem.read_uintn(cursor) == multi + len(PCI) + 2
    copy, _ = call(fw, dpu.GetNextDevicePathInstance, cursor, size)
    assert fw.mem.read(copy, len(second)) == second and fw.mem.read_uintn(cursor) == 0
    assert call(fw, dpu.IsDevicePathMultiInstance, multi)[0] == 1
