"""The HII database model (efistub.hii): string packages decode and encode, malformed ones are refused.

The protocols' contracts are checked from the guest (tests/guests/hii.c, in test_guests.py)."""

import pytest

from efistub.guids import Guid
from efistub.hii import HiiDatabase, HiiFormatError, StringPackage, parse_packages
from efistub.layouts import hii as h

GUID = Guid("6a3d2f8e-51c4-4b0e-9e1a-7c5503d2e841")


def string_package(language: str, blocks: bytes) -> bytes:
    lang = language.encode() + b"\0"
    size = h.StringPackageHeader.sizeof() + len(lang)
    length = size + len(blocks)
    return h.StringPackageHeader.build(dict(Header=h.package_header_value(length, h.PACKAGE_STRINGS), HdrSize=size,
                                            StringInfoOffset=size, LanguageWindow=bytes(32),
                                            LanguageName=1)) + lang + blocks


def ucs2(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


END = h.package_header(4, h.PACKAGE_END)


def test_string_blocks_decode_with_skips_duplicates_fonts_and_extensions():
    font = bytes([h.SIBT_EXT2]) + h.Ext2.build(dict(BlockType2=h.SIBT_FONT, Length=12)) + bytes(8)
    blocks = (font + bytes([h.SIBT_STRING_UCS2]) + ucs2("one")
              + bytes([h.SIBT_SKIP2]) + h.Count16.build(3)
              + bytes([h.SIBT_STRINGS_UCS2_FONT, 7]) + h.Count16.build(2) + ucs2("five") + ucs2("six")
              + bytes([h.SIBT_STRING_SCSU]) + b"seven\0"
              + bytes([h.SIBT_DUPLICATE]) + h.Count16.build(1)
              + bytes([h.SIBT_END]))
    package = StringPackage.parse(string_package("en-US", blocks))
    assert package.language == "en-US"
    assert package.strings == {1: ("one", None), 5: ("five", 7), 6: ("six", 7), 7: ("seven", None),
                               8: ("one", None)}
    assert package.fonts == [font]
    again = StringPackage.parse(package.encode())
    assert (again.strings, again.fonts, again.language) == (package.strings, package.fonts, package.language)


def test_a_package_list_round_trips_through_the_database():
    body = (string_package("en-US", bytes([h.SIBT_STRING_UCS2]) + ucs2("hi") + bytes([h.SIBT_END]))
            + h.package_header(8, h.PACKAGE_FORMS) + b"form" + END)
    db = HiiDatabase()
    added = db.add(GUID, 0, 0x1000, body)
    assert added.kinds() == {h.PACKAGE_STRINGS, h.PACKAGE_FORMS}
    exported = added.encode()
    header = h.PackageListHeader.parse(exported)
    assert header.PackageLength == len(exported) and header.PackageListGuid == GUID.to_bytes()
    assert [p.kind for p in parse_packages(exported[20:]) if not isinstance(p, StringPackage)] == [h.PACKAGE_FORMS]
    assert db.matching(h.PACKAGE_FORMS, None) == [added]
    assert db.matching(h.PACKAGE_FONTS, None) == []


@pytest.mark.parametrize("body, problem", [
    (b"", "no END package"),
    (h.package_header(2, h.PACKAGE_FORMS) + END, "length 2"),
    (h.package_header(400, h.PACKAGE_FORMS) + END, "outside the package list"),
    (string_package("en", bytes([h.SIBT_STRING_UCS2]) + b"a\0b\0") + END, "no terminator"),
    (string_package("en", bytes([0x99])) + END, "unknown string block type 0x99"),
    (string_package("en", bytes([h.SIBT_STRING_UCS2]) + ucs2("x")) + END, "without SIBT_END"),
    (string_package("en", bytes([h.SIBT_EXT1, 0, 1])) + END, "SIBT_EXT block"),
    (string_package("en", bytes([h.SIBT_SKIP2]) + h.Count16.build(0xFFFF) + bytes([h.SIBT_SKIP1, 9, 0]))
     + END, "beyond 0xFFFF"),
], ids=["empty", "short-package", "long-package", "unterminated", "unknown-block", "no-end", "bad-ext",
        "too-many-ids"])
def test_malformed_package_lists_are_refused(body, problem):
    with pytest.raises(HiiFormatError, match=problem):
        HiiDatabase().add(GUID, 0, 0x1000, body)
