"""The HII database (UEFI 2.10 §33): package lists, and the strings of their string packages.

Pure data, no guest memory: efistub.protocols.hii reads a package list out of the guest
and hands its bytes here. A string package is decoded into its strings (so that
NewString and SetString can change it) and encoded again on export; every other
package is kept as the bytes it came as.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from construct import ConstructError

from .guids import Guid
from .layouts import hii as h

MAX_PACKAGE_LIST = 16 << 20  # bytes of one package list the guest may hand over


class HiiFormatError(ValueError):
    """A package list or string package that does not parse."""


@dataclass
class StringPackage:
    """One language's strings: ID -> (text, font identifier or None)."""

    language: str  # RFC 4646, as the package gives it
    language_window: bytes = bytes(32)
    language_name: int = 0  # the ID of the string that names the language
    strings: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    fonts: list[bytes] = field(default_factory=list)  # SIBT_FONT blocks, as they came
    last_id: int = 0  # the highest ID the package's blocks reach, skipped ones included

    @classmethod
    def parse(cls, data: bytes) -> "StringPackage":
        try:
            header = h.StringPackageHeader.parse(data)
        except ConstructError as e:
            raise HiiFormatError(f"string package header: {e}") from None
        fixed = h.StringPackageHeader.sizeof()
        language_end = data.find(b"\0", fixed, header.HdrSize)
        if header.HdrSize > len(data) or language_end < 0:
            raise HiiFormatError("string package header: no NUL-terminated Language within HdrSize")
        package = cls(data[fixed:language_end].decode("ascii", errors="replace"), header.LanguageWindow,
                      header.LanguageName)
        package._parse_blocks(data, header.StringInfoOffset)
        return package

    def _parse_blocks(self, data: bytes, offset: int) -> None:
        string_id = 1
        while True:
            if offset >= len(data):
                raise HiiFormatError("string blocks run past the package without SIBT_END")
            kind = data[offset]
            offset += 1
            if kind == h.SIBT_END:
                self.last_id = max(self.last_id, string_id - 1)
                return
            if kind in (h.SIBT_STRING_UCS2, h.SIBT_STRING_UCS2_FONT, h.SIBT_STRINGS_UCS2, h.SIBT_STRINGS_UCS2_FONT,
                        h.SIBT_STRING_SCSU, h.SIBT_STRING_SCSU_FONT, h.SIBT_STRINGS_SCSU, h.SIBT_STRINGS_SCSU_FONT):
                font = None
                if kind in (h.SIBT_STRING_UCS2_FONT, h.SIBT_STRINGS_UCS2_FONT, h.SIBT_STRING_SCSU_FONT,
                            h.SIBT_STRINGS_SCSU_FONT):
                    font, offset = _field(h.Count8, data, offset)
                count = 1
                if kind in (h.SIBT_STRINGS_UCS2, h.SIBT_STRINGS_UCS2_FONT, h.SIBT_STRINGS_SCSU,
                            h.SIBT_STRINGS_SCSU_FONT):
                    count, offset = _field(h.Count16, data, offset)
                wide = kind in (h.SIBT_STRING_UCS2, h.SIBT_STRING_UCS2_FONT, h.SIBT_STRINGS_UCS2,
                                h.SIBT_STRINGS_UCS2_FONT)
                for _ in range(count):
                    text, offset = (_ucs2(data, offset) if wide else _narrow(data, offset))
                    self.strings[string_id] = (text, font)
                    string_id += 1
            elif kind == h.SIBT_DUPLICATE:
                original, offset = _field(h.Count16, data, offset)
                if original in self.strings:
                    self.strings[string_id] = self.strings[original]
                string_id += 1
            elif kind in (h.SIBT_SKIP1, h.SIBT_SKIP2):
                count, offset = _field(h.Count8 if kind == h.SIBT_SKIP1 else h.Count16, data, offset)
                string_id += count
            elif kind in h.EXT_HEADERS:
                ext, _ = _field(h.EXT_HEADERS[kind], data, offset)
                start = offset - 1
                if ext.Length < 1 + h.EXT_HEADERS[kind].sizeof() or start + ext.Length > len(data):
                    raise HiiFormatError(f"SIBT_EXT block at {start}: length {ext.Length}")
                if kind == h.SIBT_EXT2 and ext.BlockType2 == h.SIBT_FONT:
                    self.fonts.append(data[start:start + ext.Length])
                offset = start + ext.Length
            else:
                raise HiiFormatError(f"unknown string block type 0x{kind:02x} at {offset - 1}")
            if string_id > 0x10000:
                raise HiiFormatError("string IDs beyond 0xFFFF")

    def encode(self) -> bytes:
        """The package: header, Language, font blocks, the strings as UCS-2 blocks with skips, END."""
        language = self.language.encode("ascii", errors="replace") + b"\0"
        header_size = h.StringPackageHeader.sizeof() + len(language)
        blocks = bytearray(b"".join(self.fonts))
        string_id = 1
        for sid in sorted(self.strings):
            gap = sid - string_id
            while gap > 0:
                step = min(gap, 0xFFFF)
                blocks += (bytes([h.SIBT_SKIP1]) + h.Count8.build(step) if step <= 0xFF
                           else bytes([h.SIBT_SKIP2]) + h.Count16.build(step))
                gap -= step
            text, font = self.strings[sid]
            if font is None:
                blocks += bytes([h.SIBT_STRING_UCS2])
            else:
                blocks += bytes([h.SIBT_STRING_UCS2_FONT]) + h.Count8.build(font)
            blocks += (text + "\0").encode("utf-16-le")
            string_id = sid + 1
        blocks += bytes([h.SIBT_END])
        length = header_size + len(blocks)
        return h.StringPackageHeader.build(dict(
            Header=h.package_header_value(length, h.PACKAGE_STRINGS),
            HdrSize=header_size, StringInfoOffset=header_size, LanguageWindow=self.language_window,
            LanguageName=self.language_name)) + language + bytes(blocks)

    def matches(self, language: str) -> bool:
        """EDK2's rule: the package's (first) language tag is ``language``, compared without case."""
        return self.language.split(";")[0].lower() == language.lower()


@dataclass
class Package:
    """A package other than strings, as raw bytes (its header included)."""

    kind: int
    data: bytes

    def encode(self) -> bytes:
        return self.data


@dataclass
class PackageList:
    guid: Guid
    driver_handle: int
    handle: int  # the EFI_HII_HANDLE: a guest address only this list has
    packages: list = field(default_factory=list)  # Package and StringPackage, in order

    @property
    def string_packages(self) -> list[StringPackage]:
        return [p for p in self.packages if isinstance(p, StringPackage)]

    def kinds(self) -> set[int]:
        return {h.PACKAGE_STRINGS if isinstance(p, StringPackage) else p.kind for p in self.packages}

    def has_guid_package(self, guid: Guid) -> bool:
        return any(p.kind == h.PACKAGE_TYPE_GUID and p.data[4:20] == guid.to_bytes()
                   for p in self.packages if isinstance(p, Package))

    def encode(self) -> bytes:
        body = b"".join(p.encode() for p in self.packages) + h.package_header(4, h.PACKAGE_END)
        return h.PackageListHeader.build(dict(PackageListGuid=self.guid.to_bytes(),
                                              PackageLength=h.PackageListHeader.sizeof() + len(body))) + body

    # -- strings ---------------------------------------------------------------------------------
    def last_id(self) -> int:
        return max((max(p.last_id, max(p.strings, default=0)) for p in self.string_packages), default=0)

    def languages(self) -> list[str]:
        return [p.language for p in self.string_packages]


def parse_packages(data: bytes) -> list:
    """The packages of a package list's body (after its header), up to the END package."""
    packages, offset = [], 0
    while offset + 4 <= len(data):
        length, kind = h.split_package_header(h.PackageHeader.parse(data[offset:offset + 4]))
        if kind == h.PACKAGE_END:
            return packages
        if length < 4 or offset + length > len(data):
            raise HiiFormatError(f"package at {offset + h.PackageListHeader.sizeof()}: length {length}"
                                 f" of type 0x{kind:02x} outside the package list")
        raw = data[offset:offset + length]
        packages.append(StringPackage.parse(raw) if kind == h.PACKAGE_STRINGS else Package(kind, raw))
        offset += length
    raise HiiFormatError("the package list has no END package")


class HiiDatabase:
    """The package lists the firmware holds, in the order they were added."""

    def __init__(self):
        self.lists: dict[int, PackageList] = {}

    def find(self, handle: int) -> PackageList | None:
        return self.lists.get(handle)

    def has(self, guid: Guid, driver_handle: int) -> bool:
        return any(pl.guid == guid and pl.driver_handle == driver_handle for pl in self.lists.values())

    def add(self, guid: Guid, driver_handle: int, handle: int, body: bytes,
            device_path: bytes | None = None) -> PackageList:
        package_list = PackageList(guid, driver_handle, handle, parse_packages(body))
        if device_path is not None:
            package_list.packages.append(Package(h.PACKAGE_DEVICE_PATH,
                                                 h.package_header(4 + len(device_path), h.PACKAGE_DEVICE_PATH)
                                                 + device_path))
        self.lists[handle] = package_list
        return package_list

    def update(self, handle: int, body: bytes) -> None:
        """UpdatePackageList: packages of each type the new list has replace the old ones of that type."""
        package_list = self.lists[handle]
        new = parse_packages(body)
        replaced = {h.PACKAGE_STRINGS if isinstance(p, StringPackage) else p.kind for p in new}
        package_list.packages = [p for p in package_list.packages
                                 if (h.PACKAGE_STRINGS if isinstance(p, StringPackage) else p.kind) not in replaced]
        package_list.packages.extend(new)

    def remove(self, handle: int) -> PackageList:
        return self.lists.pop(handle)

    def matching(self, kind: int, guid: Guid | None) -> list[PackageList]:
        """ListPackageLists: the lists that hold a package of ``kind`` (ALL: every list)."""
        if kind == h.PACKAGE_TYPE_ALL:
            return list(self.lists.values())
        if kind == h.PACKAGE_TYPE_GUID:
            return [pl for pl in self.lists.values() if pl.has_guid_package(guid)]
        return [pl for pl in self.lists.values() if kind in pl.kinds()]


def _field(subcon, data: bytes, offset: int):
    size = subcon.sizeof()
    if offset + size > len(data):
        raise HiiFormatError(f"string block field at {offset} runs past the package")
    return subcon.parse(data[offset:offset + size]), offset + size


def _ucs2(data: bytes, offset: int) -> tuple[str, int]:
    end = offset
    while True:
        end = data.find(b"\0\0", end)
        if end < 0:
            raise HiiFormatError(f"string at {offset} has no terminator")
        if (end - offset) % 2 == 0:
            return data[offset:end].decode("utf-16-le", errors="replace"), end + 2
        end += 1


def _narrow(data: bytes, offset: int) -> tuple[str, int]:
    """An SCSU string. EDK2 takes its bytes as characters (no SCSU windows); so do we."""
    end = data.find(b"\0", offset)
    if end < 0:
        raise HiiFormatError(f"string at {offset} has no terminator")
    return data[offset:end].decode("latin-1"), end + 1
