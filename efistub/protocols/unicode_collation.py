"""EFI_UNICODE_COLLATION2_PROTOCOL and EFI_UNICODE_COLLATION_PROTOCOL (UEFI 2.10 §19.1) for English,
as EDK2's EnglishDxe (MdeModulePkg/Universal/Disk/UnicodeCollation) does them.

Both are on one handle and share their functions; SupportedLanguages is "en" (RFC 4646) for the
first and "eng" (ISO 639-2) for the second, which EDK2's FAT driver and older tools look for.

- Case: as EDK2, only a table of 256 characters maps. a-z and the Latin-1 letters 0xE0-0xFE but
  0xF7 (the division sign) have the upper case 0x20 below them; every other character, ÿ, ß and
  everything from U+0100 on, is its own upper and lower case. (EDK2's table holds CHAR8, which
  is signed in its GCC builds for x86: there StrUpr of a character from 0x80 gives 0xFFxx. This
  module maps as the table means, as EDK2's AArch64 and clang builds do.)
- StriColl returns the difference of the first two characters that differ in upper case.
- MetaiMatch: ``*`` (any characters), ``?`` (one), ``[...]`` (one of a set; ``a-z`` is a range
  from the character before the ``-`` to the one after it, compared in upper case), anything
  else itself in either case. A ``-`` just before the ``]`` ends the set's matches (EDK2's syntax
  error); a set with no ``]`` matches nothing (EDK2 reads beyond the pattern's end there).
- FatToStr widens each OEM byte to a CHAR16 (FatSize bytes at most, up to a NUL) and ends the
  string with a NUL. StrToFat skips '.' and ' ', writes the upper case of characters that are
  valid in a FAT name (those letters, digits and \\ . _ ^ $ ~ ! # % & - { } ( ) @ ` '), '_' for
  any other and then returns TRUE; at most FatSize bytes, with no NUL after them.

Strings come from the guest without a length. They are read as far as the function needs them,
at most MAX_STRING characters; a string that is not in guest memory, or has no NUL by then, ends
the run as a fault (interface.fault_on_bad_memory): these functions have no status to report it.
"""

from __future__ import annotations

import bisect
import itertools
import struct

from .. import guids
from ..errors import GuestMemoryError
from ..layouts import efi
from ..memory import MemoryType
from ..registry import POINTER, STRING, UINTN, service
from .interface import fault_on_bad_memory, make_interface

PREFIX = "UnicodeCollation"
LANGUAGES = ((guids.UNICODE_COLLATION2_PROTOCOL, "en"), (guids.UNICODE_COLLATION_PROTOCOL, "eng"))
MAX_STRING = 1 << 16  # characters of a guest string read before it counts as unterminated
CHUNK = 128  # bytes read at a time
CASE_TABLE_SIZE = 0x100
CASE_OFFSET = 0x20  # from a lower-case letter of the table to its upper case


def _lower_case(c: int) -> bool:
    return ord("a") <= c <= ord("z") or 0xE0 <= c <= 0xF6 or 0xF8 <= c <= 0xFE


UPPER = [c - CASE_OFFSET if _lower_case(c) else c for c in range(CASE_TABLE_SIZE)]
LOWER = [c + CASE_OFFSET if _lower_case(c + CASE_OFFSET) and UPPER[c + CASE_OFFSET] == c else c
         for c in range(CASE_TABLE_SIZE)]
FAT_VALID = frozenset([c for c in range(CASE_TABLE_SIZE) if UPPER[c] != LOWER[c]]
                      + list(b"0123456789\\._^$~!#%&-{}()@`'"))
FAT_SKIPPED = (ord("."), ord(" "))
FAT_REPLACEMENT = ord("_")


def upper(c: int) -> int:
    return UPPER[c] if c < CASE_TABLE_SIZE else c


def lower(c: int) -> int:
    return LOWER[c] if c < CASE_TABLE_SIZE else c


def units(mem, address: int, unit: int = 2, limit: int = MAX_STRING):
    """The characters (CHAR16: ``unit`` 2, CHAR8: 1) of the NUL-terminated guest string at
    ``address``, read as they are taken. GuestMemoryError where guest memory ends, or when
    there is no NUL in ``limit`` characters."""
    offset, chunk, end = 0, CHUNK, limit * unit
    while offset < end:
        size = min(chunk, end - offset)
        try:
            data = mem.read(address + offset, size)
        except GuestMemoryError:
            if chunk == unit:
                raise
            chunk = unit  # near the end of RAM: go on character by character
            continue
        for c in (struct.unpack(f"<{size // 2}H", data) if unit == 2 else data):
            if not c:
                return
            yield c
        offset += size
    raise GuestMemoryError(address, end, "find a NUL in")


def _intn(fw, value: int) -> int:
    """A signed INTN as the return register holds it."""
    return value & ((1 << (8 * fw.width)) - 1)


@service("UnicodeCollation.StriColl", returns="value", This=POINTER, Str1=STRING, Str2=STRING)
@fault_on_bad_memory(PREFIX)
def StriColl(fw, this, str1, str2):
    second = units(fw.mem, str2)
    for c in units(fw.mem, str1):
        d = next(second, 0)
        if upper(c) != upper(d):
            return _intn(fw, upper(c) - upper(d))
    return _intn(fw, -upper(next(second, 0)))


# -- MetaiMatch ------------------------------------------------------------------------------------

STAR, ANY = "*", "?"  # pattern tokens; a character is its upper case (an int), a set a tuple of ranges


def _set_ranges(content: list[int]) -> tuple[tuple[int, int], ...]:
    """The upper-case ranges a set ``[content]`` matches, as EDK2 scans it: a ``-`` spans from the
    element before it (the character 0 at the start) to the one after it, which then counts as an
    element itself; a ``-`` with nothing after it ends the set."""
    ranges, previous, i = [], 0, 0
    while i < len(content):
        c = content[i]
        i += 1
        if c == ord("-"):
            if i == len(content):
                break
            c = content[i]  # the high end, read again as the next element
            ranges.append((upper(previous), upper(c)))
        previous = c
        ranges.append((upper(c), upper(c)))
    return tuple((low, high) for low, high in ranges if low <= high)


def compile_pattern(pattern: list[int]) -> list:
    tokens, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        i += 1
        if c == ord("*"):
            if not tokens or tokens[-1] is not STAR:  # ** is *
                tokens.append(STAR)
        elif c == ord("?"):
            tokens.append(ANY)
        elif c == ord("["):
            try:
                end = pattern.index(ord("]"), i)
            except ValueError:
                tokens.append(())  # no ]: a set that matches nothing
                break
            tokens.append(_set_ranges(pattern[i:end]))
            i = end + 1
        else:
            tokens.append(upper(c))
    return tokens


class _Matchers:
    """For each character, which tokens of a pattern match it, as a bit mask (bit j: token j)."""

    def __init__(self, tokens: list):
        self.literal: dict[int, int] = {}
        self.any = 0
        events = []  # (character, +1 or -1, bit) where a set's range starts or ends
        for j, token in enumerate(tokens):
            bit = 1 << j
            if token is ANY:
                self.any |= bit
            elif isinstance(token, int):
                self.literal[token] = self.literal.get(token, 0) | bit
            elif isinstance(token, tuple):
                for low, high in token:
                    events += [(low, 1, bit), (high + 1, -1, bit)]
        # The sets' masks as steps over the characters: from starts[k] on, the mask is sets[k].
        self.starts, self.sets = [0], [0]
        inside: dict[int, int] = {}
        mask = 0
        for character, group in itertools.groupby(sorted(events), key=lambda e: e[0]):
            for _, delta, bit in group:
                inside[bit] = inside.get(bit, 0) + delta
                mask = mask | bit if inside[bit] else mask & ~bit
            self.starts.append(character)
            self.sets.append(mask)

    def __call__(self, c: int) -> int:
        u = upper(c)
        return self.literal.get(u, 0) | self.any | self.sets[bisect.bisect_right(self.starts, u) - 1]


def metai_match(tokens: list, string) -> bool:
    """Whether ``string`` (characters, taken as needed) matches the pattern ``tokens``. Every token but
    * takes one character, so the states after each character are a set of token positions (bit j:
    token j is next), and a * keeps its own."""
    matchers = _Matchers(tokens)
    stars = sum(1 << j for j, token in enumerate(tokens) if token is STAR)
    state = 1
    state |= (state & stars) << 1  # a * may take nothing (no two are adjacent)
    for c in string:
        state = ((state & matchers(c)) << 1) | (state & stars)
        state |= (state & stars) << 1
        if not state:
            return False
    return bool(state >> len(tokens) & 1)


@service("UnicodeCollation.MetaiMatch", returns="value", This=POINTER, String=STRING, Pattern=STRING)
@fault_on_bad_memory(PREFIX)
def MetaiMatch(fw, this, string, pattern):
    tokens = compile_pattern(list(units(fw.mem, pattern)))
    return int(metai_match(tokens, units(fw.mem, string)))


# -- case and FAT names ------------------------------------------------------------------------------

def _map_in_place(fw, address: int, mapping) -> None:
    text = list(units(fw.mem, address))
    mapped = [mapping(c) for c in text]
    if mapped != text:
        fw.mem.write(address, struct.pack(f"<{len(mapped)}H", *mapped))


@service("UnicodeCollation.StrLwr", returns="void", This=POINTER, Str=STRING)
@fault_on_bad_memory(PREFIX)
def StrLwr(fw, this, string):
    _map_in_place(fw, string, lower)


@service("UnicodeCollation.StrUpr", returns="void", This=POINTER, Str=STRING)
@fault_on_bad_memory(PREFIX)
def StrUpr(fw, this, string):
    _map_in_place(fw, string, upper)


@service("UnicodeCollation.FatToStr", returns="void", This=POINTER, FatSize=UINTN, Fat=POINTER, String=POINTER)
@fault_on_bad_memory(PREFIX)
def FatToStr(fw, this, fat_size, fat, string):
    # a FatSize beyond any string (up to 2^64 - 1) reads to the NUL, as a smaller one does
    name = list(itertools.islice(units(fw.mem, fat, unit=1), min(fat_size, MAX_STRING))) if fat_size else []
    fw.mem.write(string, struct.pack(f"<{len(name) + 1}H", *name, 0))


@service("UnicodeCollation.StrToFat", returns="value", This=POINTER, String=STRING, FatSize=UINTN, Fat=POINTER)
@fault_on_bad_memory(PREFIX)
def StrToFat(fw, this, string, fat_size, fat):
    out, replaced = bytearray(), False
    for c in units(fw.mem, string):  # as EDK2, the character after the last one that fits is read too
        if len(out) == fat_size:
            break
        if c in FAT_SKIPPED:
            continue
        if c in FAT_VALID:
            out.append(UPPER[c])
        else:
            out.append(FAT_REPLACEMENT)
            replaced = True
    if out:
        fw.mem.write(fat, bytes(out))
    return int(replaced)


def install(fw) -> int:
    """Both protocols, on one handle (as EDK2's EnglishDxe before 2025); return the handle."""
    handle = None
    for guid, languages in LANGUAGES:
        text = fw.store(MemoryType.EfiBootServicesData, languages.encode("ascii") + b"\0")
        interface = make_interface(fw, PREFIX, efi.UNICODE_COLLATION, fw.layout.UnicodeCollation,
                                   SupportedLanguages=text)
        handle = fw.handles.install(handle, guid, interface)
    return handle.address
