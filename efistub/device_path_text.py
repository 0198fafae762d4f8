"""Device path text (UEFI 2.10 §10.6.1.6), as EDK2's UefiDevicePathLib writes and reads it
(MdePkg/Library/UefiDevicePathLib/DevicePathToText.c and DevicePathFromText.c).

FORMS is the table: one entry (a Form) per text form of a node type. A Form names the node's type
and subtype, the construct layout of its data (layouts/device_path.py) and its parameters in text
order, each a layout field with the Format that writes and reads it. Some forms stand for fixed
values (PciRoot is an ACPI node whose HID is PNP0A03), hold only with DisplayOnly or
AllowShortcuts, or apply only when a condition on the node's values holds. Several forms of one
node type are tried in table order, as EDK2 tries its cases.

- Writing (node_text, path_text): the first form that fits the node is used. A node fits a form
  when its data is exactly what the layout builds from what it parses (a node too short or too long
  for its layout does not fit), its values are the form's fixed ones, and every parameter can be
  written. A node that fits no form is written in its generic form, as EDK2 writes nodes it does
  not know: ``HardwarePath(subtype,data)``, ``AcpiPath``, ``Msg``, ``MediaPath``, ``BbsPath``, and
  ``Path(type,subtype,data)`` for a type outside those (subtypes in decimal, data in hex).
- Reading (parse_node, parse_path): ``Name(p1,p2,...)`` with a Name of the table builds that node;
  an empty or missing parameter takes its default, and a parameter without one is an error. Text
  that does not start with a Name and ``(`` is a file path node (as in EDK2, where the text of a
  file path node is the path itself). Anything else that does not read (an unknown keyword, a
  number too large for its field, unbalanced parentheses, a node longer than 64 KiB) is a
  ValueError; EDK2 reads such text anyway, into whatever its string functions make of it.
- Paths: nodes are separated by ``/`` and instances by ``,``. EDK2 writes a ``/`` before every node
  but the first, so ``,/`` between instances, and reads both.
- Strings that would not read back (with ``,``, ``(``, ``)`` or NUL) make their node generic, where
  EDK2 writes them as they are. Not in the table (so generic): SAS, SasEx, iSCSI, UsbWwid.

Where EDK2 and UEFI 2.10 differ, this follows EDK2 (today's: HD without start and size with
DisplayOnly came in 2024), except that Uart's DEFAULT reads as 0 (the spec's value; EDK2 reads
115200 and 8) so that its text reads back to the same node.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from construct import Construct, ConstructError, SizeofError

from . import guids
from .device_path import END_OF_INSTANCE, MAX_PATH_SIZE, Node
from .guids import Guid
from .layouts import device_path as dp

HEADER_SIZE = dp.DevicePathHeader.sizeof()
MAX_NODE_DATA = 0xFFFF - HEADER_SIZE  # a node's Length is 16 bits
MAX_NUMBER_TEXT = 40  # characters of a number; more is not a number of any field


# -- formats: how one parameter is written and read -----------------------------------------------

class Format:
    """Writes a field's value as a parameter and reads it back. Both may look at the node's other
    values; both raise ValueError for what they cannot represent."""

    def render(self, value, values: dict) -> str:
        raise NotImplementedError

    def parse(self, text: str, values: dict):
        raise ValueError(f"{type(self).__name__} is written only")


_NUMBER = re.compile(r" *(?:0*[xX]([0-9A-Fa-f]+)|([0-9]+))")


def number(text: str) -> int:
    """A number as EDK2's Strtoi reads it: hexadecimal after 0x, else decimal."""
    match = _NUMBER.fullmatch(text) if len(text) <= MAX_NUMBER_TEXT else None
    if not match:
        raise ValueError(f"not a number: {text[:MAX_NUMBER_TEXT]!r}")
    return int(match[1], 16) if match[1] is not None else int(match[2])


def _limited(value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{value:#x} does not fit in {bits} bits")
    return value


@dataclass(frozen=True)
class Hex(Format):
    """0x and upper-case hex digits (EDK2's %x), at least ``digits`` of them."""
    digits: int = 1

    def render(self, value, values):
        return f"0x{value:0{self.digits}X}"

    def parse(self, text, values):
        return number(text)


@dataclass(frozen=True)
class Dec(Format):
    def render(self, value, values):
        return str(value)

    def parse(self, text, values):
        return number(text)


@dataclass(frozen=True)
class PlainHex(Format):
    """Hex digits without 0x, ``digits`` of them (I1394's EUI-64)."""
    digits: int

    def render(self, value, values):
        return f"{value:0{self.digits}X}"

    def parse(self, text, values):
        if not re.fullmatch(r"[0-9A-Fa-f]{1,%d}" % self.digits, text):
            raise ValueError(f"not {self.digits} hex digits: {text[:MAX_NUMBER_TEXT]!r}")
        return int(text, 16)


@dataclass(frozen=True)
class Names(Format):
    """A value with a name (Primary, GPT, TCP); values without one as ``other`` writes them, or not at all."""
    names: dict
    other: Format | None = None

    def render(self, value, values):
        if value in self.names:
            return self.names[value]
        if self.other is None:
            raise ValueError(f"no name for {value!r}")
        return self.other.render(value, values)

    def parse(self, text, values):
        for value, name in self.names.items():
            if name == text:
                return value
        if self.other is None:
            raise ValueError(f"not one of {', '.join(self.names.values())}: {text[:40]!r}")
        return self.other.parse(text, values)


@dataclass(frozen=True)
class Flag(Format):
    """A BOOLEAN: ``true`` for any value but 0 (as EDK2 writes it), ``false`` for 0."""
    true: str
    false: str

    def render(self, value, values):
        return self.true if value else self.false

    def parse(self, text, values):
        if text not in (self.true, self.false):
            raise ValueError(f"not {self.true} or {self.false}: {text[:40]!r}")
        return int(text == self.true)


_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def guid_text(raw: bytes) -> str:
    """An EFI_GUID as EDK2's %g writes it (upper case)."""
    return str(Guid.from_bytes(raw)).upper()


def guid_bytes(text: str) -> bytes:
    if not _GUID.fullmatch(text):
        raise ValueError(f"not a GUID: {text[:40]!r}")
    return Guid(text).to_bytes()


class GuidFormat(Format):
    def render(self, value, values):
        return guid_text(value)

    def parse(self, text, values):
        return guid_bytes(text)


def _hex_bytes(text: str) -> bytes:
    if len(text) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", text):
        raise ValueError(f"not hex bytes: {text[:40]!r}")
    return bytes.fromhex(text)


@dataclass(frozen=True)
class HexBytes(Format):
    """Bytes as two upper-case hex digits each (vendor data, MAC addresses); ``size``: exactly that many."""
    size: int | None = None

    def render(self, value, values):
        return value.hex().upper()

    def parse(self, text, values):
        raw = _hex_bytes(text)
        if self.size is not None and len(raw) != self.size:
            raise ValueError(f"not {self.size} bytes: {text[:40]!r}")
        return raw


class BigEndianHex(Format):
    """8 bytes as one 0x number, the first byte first (FibreEx's WWN and LUN)."""

    def render(self, value, values):
        return "0x" + value.hex().upper()

    def parse(self, text, values):
        return _limited(number(text), 64).to_bytes(8, "big")


class MacAddress(Format):
    """The first 6 bytes of a MAC address for Ethernet (IfType 0 or 1), all 32 for others; read: zero-padded."""

    def render(self, value, values):
        size = dp.MAC_ETHERNET_SIZE if values["IfType"] in (0, 1) else dp.MAC_ADDRESS_SIZE
        return value[:size].hex().upper()

    def parse(self, text, values):
        raw = _hex_bytes(text)
        if not 0 < len(raw) <= dp.MAC_ADDRESS_SIZE:
            raise ValueError(f"not a MAC address: {text[:40]!r}")
        return raw.ljust(dp.MAC_ADDRESS_SIZE, b"\0")


class Ipv4Address(Format):
    def render(self, value, values):
        return ".".join(str(b) for b in value)

    def parse(self, text, values):
        try:
            return ipaddress.IPv4Address(text).packed
        except ValueError:
            raise ValueError(f"not an IPv4 address: {text[:40]!r}") from None


class Ipv6Address(Format):
    """Eight groups of four upper-case hex digits, as EDK2 writes them; read in any form."""

    def render(self, value, values):
        return ":".join(value[i:i + 2].hex().upper() for i in range(0, len(value), 2))

    def parse(self, text, values):
        try:
            return ipaddress.IPv6Address(text).packed
        except ValueError:
            raise ValueError(f"not an IPv6 address: {text[:40]!r}") from None


# Characters a string parameter cannot hold: its text would not read back (EDK2 writes them anyway, and
# then its text is not that node's; efistub writes such a node in its generic form).
UNREADABLE = frozenset(",()\0")


def _readable(text: str) -> str:
    if UNREADABLE.intersection(text):
        raise ValueError(f"a string with , ( ) or NUL: {text[:40]!r}")
    return text


class Bytes8(Format):
    """CHAR8 characters as they are (EDK2's %a), one byte each: a URI."""

    def render(self, value, values):
        return _readable(value.decode("latin-1"))

    def parse(self, text, values):
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"not 8-bit text: {text[:40]!r}") from None


class Ascii(Format):
    """An ASCII string of a node (BBS's description, AcpiEx's strings); None, a string the node does not
    have, is written as nothing."""

    def render(self, value, values):
        return "" if value is None else _readable(value)

    def parse(self, text, values):
        if not text.isascii():
            raise ValueError(f"not ASCII: {text[:40]!r}")
        return text


class PaddedAscii(Format):
    """An ASCII string in a field of fixed size, NUL-padded (a Wi-Fi SSID)."""

    def render(self, value, values):
        return _readable(value.split(b"\0", 1)[0].decode("latin-1"))

    def parse(self, text, values):
        if not text.isascii() or len(text) > dp.WIFI_SSID_SIZE:
            raise ValueError(f"not an SSID: {text[:40]!r}")
        return text.encode("ascii").ljust(dp.WIFI_SSID_SIZE, b"\0")


class Ucs2Name(Format):
    """A NUL-terminated CHAR16 name (a file path): the characters before the NUL, which must end it."""

    def render(self, value, values):
        units = struct.unpack(f"<{len(value) // 2}H", value) if len(value) % 2 == 0 else ()
        if not units or units.index(0) != len(units) - 1:
            raise ValueError("a file path name that is not NUL-terminated UCS-2")
        return "".join(map(chr, units[:-1]))

    def parse(self, text, values):
        if "\0" in text or any(ord(c) > 0xFFFF for c in text):
            raise ValueError(f"not a UCS-2 name: {text[:40]!r}")
        return struct.pack(f"<{len(text) + 1}H", *map(ord, text), 0)


class NvmeUuid(Format):
    """The EUI-64 of an NVMe namespace: its bytes from the last, two hex digits each, joined by -."""

    def render(self, value, values):
        return "-".join(f"{b:02X}" for b in reversed(value))

    def parse(self, text, values):
        parts = text.split("-")
        if len(parts) != 8 or not all(re.fullmatch(r"[0-9A-Fa-f]{1,2}", p) for p in parts):
            raise ValueError(f"not an NVMe EUI-64: {text[:40]!r}")
        return bytes(int(p, 16) for p in reversed(parts))


def eisa_text(value: int) -> str:
    """An EISA ID as three letters and four hex digits (AcpiEx's HID and CID)."""
    letters = "".join(chr(((value >> shift) & 0x1F) + ord("A") - 1) for shift in (10, 5, 0))
    return f"{letters}{value >> 16:04X}"


def eisa_id(text: str) -> int:
    """The EISA ID of three letters and hex digits, as EDK2's EisaIdFromText reads it."""
    if not re.fullmatch(r"[@-_]{3}[0-9A-Fa-f]{1,4}", text):
        raise ValueError(f"not an EISA ID: {text[:40]!r}")
    letters = sum(((ord(c) - ord("A") + 1) & 0x1F) << shift for c, shift in zip(text, (10, 5, 0)))
    return letters | int(text[3:], 16) << 16


def eisa_number(value: int) -> int:
    """EDK2's EISA_ID_TO_NUM: the product number of an EISA ID (0x0A03 for PNP0A03)."""
    return value >> 16


def pnp_id(product: int) -> int:
    """EISA_PNP_ID: the EISA ID PNPxxxx."""
    return product << 16 | dp.PNP_EISA_ID


class EisaId(Format):
    def render(self, value, values):
        return eisa_text(value)

    def parse(self, text, values):
        return eisa_id(text)


class AcpiHid(Format):
    """An Acpi() node's HID: PNPxxxx for a PNP ID, else 0x and eight hex digits. Read: also any EISA ID."""

    def render(self, value, values):
        return f"PNP{eisa_number(value):04X}" if value & 0xFFFF == dp.PNP_EISA_ID else f"0x{value:08X}"

    def parse(self, text, values):
        return _limited(number(text), 32) if text[:2] in ("0x", "0X") else eisa_id(text)


@dataclass(frozen=True)
class StringOr(Format):
    """The node's string ``key`` when it has one, else the value as ``other`` writes it (DisplayOnly AcpiEx)."""
    key: str
    other: Format

    def render(self, value, values):
        return values[self.key] if values[self.key] is not None else self.other.render(value, values)


class HardDriveSignature(Format):
    """HD's signature, by its type: MBR 0x and eight hex digits, GPT a GUID, any other type 0."""

    def render(self, value, values):
        kind = values["SignatureType"]
        if kind == dp.SIGNATURE_TYPE_MBR:
            return f"0x{int.from_bytes(value[:4], 'little'):08X}"
        return guid_text(value) if kind == dp.SIGNATURE_TYPE_GUID else "0"

    def parse(self, text, values):
        kind = values["SignatureType"]
        if kind == dp.SIGNATURE_TYPE_MBR:
            return _limited(number(text), 32).to_bytes(4, "little").ljust(16, b"\0")
        if kind == dp.SIGNATURE_TYPE_GUID:
            return guid_bytes(text)
        if number(text):
            raise ValueError(f"a signature of type {kind} is 0")
        return bytes(16)


@dataclass(frozen=True)
class Numbers(Format):
    """Several 32-bit numbers, one parameter each (AcpiAdr's _ADRs); at least one."""
    each: Format = Hex()

    def render(self, value, values):
        if not value:
            raise ValueError("no numbers")
        return ",".join(self.each.render(v, values) for v in value)

    def parse(self, text, values):
        return [_limited(self.each.parse(p, values), 32) for p in text.split(",")]


class DnsServers(Format):
    """Dns()'s servers: (IsIPv6, the EFI_IP_ADDRESS array), written as addresses, one parameter each."""

    def render(self, value, values):
        is_ipv6, raw = value
        if not raw or len(raw) % dp.IP_ADDRESS_SIZE:
            raise ValueError("no whole server addresses")
        address, size = (Ipv6Address(), dp.IPV6_ADDRESS_SIZE) if is_ipv6 else (Ipv4Address(), dp.IPV4_ADDRESS_SIZE)
        return ",".join(address.render(raw[i:i + size], values) for i in range(0, len(raw), dp.IP_ADDRESS_SIZE))

    def parse(self, text, values):
        texts = text.split(",")
        is_ipv6 = "." not in texts[0]  # EDK2: IPv4 when the text has a dot
        address = Ipv6Address() if is_ipv6 else Ipv4Address()
        return int(is_ipv6), b"".join(address.parse(t, values).ljust(dp.IP_ADDRESS_SIZE, b"\0") for t in texts)


# -- the table ------------------------------------------------------------------------------------

REQUIRED = object()  # a parameter without a default


@dataclass(frozen=True)
class Field:
    """One parameter: the value ``name`` (a layout field, or one the form's decode gives), its Format,
    what an empty or missing parameter means, whether DisplayOnly text shows it, and whether it is
    left out when it has its default value (trailing vendor data); ``rest``: it takes all remaining
    parameters."""

    name: str
    format: Format
    default: Any = REQUIRED
    display: bool = True
    omit_default: bool = False
    rest: bool = False


def F(name: str, fmt: Format = Hex(), default: Any = REQUIRED, **options) -> Field:
    return Field(name, fmt, default, **options)


ANY, DISPLAY, SHORTCUT = "any", "display", "shortcut"  # when a form may be written


@dataclass(frozen=True)
class Form:
    """One text form of a node type (see the module's docstring)."""

    name: str
    type: int
    subtype: int
    layout: Construct
    fields: tuple[Field, ...] = ()
    fixed: dict = field(default_factory=dict)  # values the name stands for
    applies: Callable[[dict], bool] | None = None  # a further condition on the node's values
    when: str = ANY  # DISPLAY: only in DisplayOnly text; SHORTCUT: only with AllowShortcuts
    parses: bool = True  # False: written only (another form of the name reads it)
    bare: bool = False  # the text is the one parameter alone, without name and parentheses (a file path)
    decode: Callable[[dict], dict] | None = None  # the layout's values -> the fields' values
    encode: Callable[[dict], dict] | None = None  # and back, for building the node

    def usable(self, display_only: bool, allow_shortcuts: bool) -> bool:
        return (self.when == ANY or (self.when == DISPLAY and display_only)
                or (self.when == SHORTCUT and allow_shortcuts))

    def values_of(self, data: bytes) -> dict | None:
        """The node's values, if its data is exactly what this form's layout holds."""
        try:
            values = self.layout.parse(data)
            if self.layout.build(values) != data:
                return None
            values = {k: v for k, v in values.items() if not k.startswith("_")}
            return self.decode(values) if self.decode else values
        except (ConstructError, ValueError, UnicodeDecodeError):
            return None

    def matches(self, values: dict) -> bool:
        return all(values[k] == v for k, v in self.fixed.items()) and (self.applies is None or self.applies(values))

    def render(self, values: dict, display_only: bool) -> str:
        shown = [f for f in self.fields if f.display or not display_only]
        while shown and shown[-1].omit_default and values[shown[-1].name] == shown[-1].default:
            shown.pop()
        params = ",".join(f.format.render(values[f.name], values) for f in shown)
        return params if self.bare else f"{self.name}({params})"

    def build(self, params: list[str]) -> Node:
        """The node of this form with the parameters ``params``; ValueError if they do not make one."""
        if len(params) > len(self.fields) and not (self.fields and self.fields[-1].rest):
            raise ValueError(f"{self.name}() takes {len(self.fields)} parameters, not {len(params)}")
        values = blank(self.layout)
        values.update(self.fixed)
        for i, f in enumerate(self.fields):
            text = ",".join(params[i:]) if f.rest else params[i] if i < len(params) else ""
            if text:
                values[f.name] = f.format.parse(text, values)
            elif f.default is REQUIRED:
                raise ValueError(f"{self.name}(): {f.name} is missing")
            else:
                values[f.name] = f.default
        if self.encode:
            values = self.encode(values)
        try:
            data = self.layout.build(values)
        except (ConstructError, struct.error, UnicodeEncodeError) as e:
            raise ValueError(f"{self.name}(): {e}") from None
        if len(data) > MAX_NODE_DATA:
            raise ValueError(f"{self.name}(): {HEADER_SIZE + len(data)} bytes is longer than a node can be")
        return Node(self.type, self.subtype, data)


def blank(layout: Construct) -> dict:
    """Every field of ``layout`` zero, or empty for the ones of variable size."""
    values = {}
    for sub in layout.subcons:
        if not sub.name:
            continue
        try:
            values[sub.name] = sub.parse(bytes(sub.sizeof()))
        except SizeofError:
            try:
                values[sub.name] = sub.parse(b"")  # GreedyBytes, GreedyRange
            except ConstructError:
                values[sub.name] = sub.parse(b"\0")  # a CString
    return values


HW, ACPI, MSG, MEDIA, BBS = dp.DEVICE_PATH_HARDWARE, dp.DEVICE_PATH_ACPI, dp.DEVICE_PATH_MESSAGING, \
    dp.DEVICE_PATH_MEDIA, dp.DEVICE_PATH_BBS
GUID_FORMAT = GuidFormat()
VENDOR_DATA = F("Data", HexBytes(), b"", omit_default=True)


def _vendor(name: str, node_type: int, subtype: int) -> Form:
    return Form(name, node_type, subtype, dp.VendorNode, (F("Guid", GUID_FORMAT), VENDOR_DATA))


def _vendor_shortcut(name: str, guid: Guid) -> Form:
    """VenPcAnsi() and the like: a VenMsg node of a known GUID (its data is not shown, as in EDK2)."""
    return Form(name, MSG, dp.MESSAGING_VENDOR, dp.VendorNode, fixed={"Guid": guid.to_bytes()}, when=SHORTCUT)


# ACPI_EXTENDED_DP: the strings after HID, UID and CID, in the node's order
ACPI_STRINGS = ("HIDSTR", "UIDSTR", "CIDSTR")


def _acpi_strings(values: dict) -> dict:
    """HIDSTR, UIDSTR and CIDSTR of an AcpiEx node (None for those it does not have; EDK2 reads as many
    as the node holds)."""
    raw = values["Strings"]
    if raw and not raw.endswith(b"\0"):
        raise ValueError("an AcpiEx string without its NUL")
    strings = raw[:-1].split(b"\0") if raw else []
    if len(strings) > len(ACPI_STRINGS):
        raise ValueError("more than three AcpiEx strings")
    strings += [None] * (len(ACPI_STRINGS) - len(strings))
    return dict(values, **{k: None if s is None else s.decode("ascii") for k, s in zip(ACPI_STRINGS, strings)})


def _acpi_join(values: dict) -> dict:
    return dict(values, Strings=b"".join((values[k] or "").encode("ascii") + b"\0" for k in ACPI_STRINGS))


def _acpi_root(number: int, other: int | None = None) -> Callable[[dict], bool]:
    """DisplayOnly AcpiEx: PciRoot when the HID (or the CID, but not with a PcieRoot HID) is PNP0A03."""
    def applies(v):
        return eisa_number(v["HID"]) == number or (eisa_number(v["CID"]) == number and eisa_number(v["HID"]) != other)
    return applies


def _hard_drive_type(values: dict) -> dict:
    mbr_type = {dp.SIGNATURE_TYPE_MBR: dp.MBR_TYPE_PCAT, dp.SIGNATURE_TYPE_GUID: dp.MBR_TYPE_GPT}
    return dict(values, MBRType=mbr_type.get(values["SignatureType"], 0))


def _dns_servers(values: dict) -> dict:
    return dict(values, Servers=(values["IsIPv6"], values["Addresses"]))


def _dns_fields(values: dict) -> dict:
    is_ipv6, raw = values["Servers"]
    return dict(values, IsIPv6=is_ipv6, Addresses=raw)


ATA_CHANNEL = Names({0: "Primary", 1: "Secondary"})
ATA_DRIVE = Names({0: "Master", 1: "Slave"})
NETWORK_PROTOCOL = Names({6: "TCP", 17: "UDP"}, Hex())  # RFC 1700
IPV6_ORIGIN = Names({0: "Static", 1: "StatelessAutoConfigure", 2: "StatefulAutoConfigure"})
UART_PARITY = Names({0: "D", 1: "N", 2: "E", 3: "O", 4: "M", 5: "S"})
UART_STOP_BITS = Names({0: "D", 1: "1", 2: "1.5", 3: "2"})
DEFAULT_OR_DECIMAL = Names({0: "DEFAULT"}, Dec())
BBS_DEVICE_TYPE = Names({dp.BBS_TYPE_FLOPPY: "Floppy", dp.BBS_TYPE_HARD_DRIVE: "HD", dp.BBS_TYPE_CDROM: "CDROM",
                         dp.BBS_TYPE_PCMCIA: "PCMCIA", dp.BBS_TYPE_USB: "USB", dp.BBS_TYPE_NETWORK: "Network"}, Hex())
HARD_DRIVE_SIGNATURE_TYPE = Names({dp.SIGNATURE_TYPE_MBR: "MBR", dp.SIGNATURE_TYPE_GUID: "GPT"}, Dec())

# ACPI HIDs with a name of their own: Acpi(PNPxxxx,uid) is written Name(uid)
ACPI_NAMES = (("PciRoot", 0x0A03), ("PcieRoot", 0x0A08), ("Floppy", 0x0604), ("Keyboard", 0x0301),
              ("Serial", 0x0501), ("ParallelPort", 0x0401))
PCI_ROOT, PCIE_ROOT = 0x0A03, 0x0A08
# USB classes with a name of their own (EDK2's UsbClass text), and the subclasses of class 0xFE
USB_CLASSES = (("UsbAudio", 1), ("UsbCDCControl", 2), ("UsbHID", 3), ("UsbImage", 6), ("UsbPrinter", 7),
               ("UsbMassStorage", 8), ("UsbHub", 9), ("UsbCDCData", 10), ("UsbSmartCard", 11), ("UsbVideo", 14),
               ("UsbDiagnostic", 0xDC), ("UsbWireless", 0xE0))
USB_CLASS_RESERVED = 0xFE
USB_SUBCLASSES = (("UsbDeviceFirmwareUpdate", 1), ("UsbIrdaBridge", 2), ("UsbTestAndMeasurement", 3))
# RAM disk type GUIDs with a name of their own
RAM_DISKS = (("VirtualDisk", guids.VIRTUAL_DISK), ("VirtualCD", guids.VIRTUAL_CD),
             ("PersistentVirtualDisk", guids.PERSISTENT_VIRTUAL_DISK),
             ("PersistentVirtualCD", guids.PERSISTENT_VIRTUAL_CD))
USB_ID = dict(default=0xFFFF)  # an empty USB vendor or product ID: any
USB_CODE = dict(default=0xFF)  # an empty class, subclass or protocol: any
RAM_DISK_FIELDS = (F("StartingAddr"), F("EndingAddr"), F("Instance", Dec()))
IPV4_HEAD = (F("RemoteIpAddress", Ipv4Address()),
             F("Protocol", NETWORK_PROTOCOL, 0, display=False),
             F("StaticIpAddress", Flag("Static", "DHCP"), 0, display=False),
             F("LocalIpAddress", Ipv4Address(), bytes(4), display=False))
IPV6_HEAD = (F("RemoteIpAddress", Ipv6Address()),
             F("Protocol", NETWORK_PROTOCOL, 0, display=False),
             F("IpAddressOrigin", IPV6_ORIGIN, 0, display=False),
             F("LocalIpAddress", Ipv6Address(), bytes(16), display=False))

FORMS: tuple[Form, ...] = (
    # hardware
    Form("Pci", HW, dp.HARDWARE_PCI, dp.PciNode, (F("Device"), F("Function"))),
    Form("PcCard", HW, dp.HARDWARE_PCCARD, dp.PcCardNode, (F("FunctionNumber"),)),
    Form("MemoryMapped", HW, dp.HARDWARE_MEMORY_MAPPED, dp.MemoryMappedNode,
         (F("MemoryType"), F("StartingAddress"), F("EndingAddress"))),
    _vendor("VenHw", HW, dp.HARDWARE_VENDOR),
    Form("Ctrl", HW, dp.HARDWARE_CONTROLLER, dp.ControllerNode, (F("ControllerNumber"),)),
    Form("BMC", HW, dp.HARDWARE_BMC, dp.BmcNode, (F("InterfaceType"), F("BaseAddress"))),
    # ACPI
    *(Form(name, ACPI, dp.ACPI_DP, dp.AcpiNode, (F("UID"),), fixed={"HID": pnp_id(product)})
      for name, product in ACPI_NAMES),
    Form("Acpi", ACPI, dp.ACPI_DP, dp.AcpiNode, (F("HID", AcpiHid()), F("UID"))),
    Form("PciRoot", ACPI, dp.ACPI_EXTENDED_DP, dp.AcpiExtendedNode, (F("UID", StringOr("UIDSTR", Hex())),),
         applies=_acpi_root(PCI_ROOT, PCIE_ROOT), when=DISPLAY, parses=False, decode=_acpi_strings),
    Form("PcieRoot", ACPI, dp.ACPI_EXTENDED_DP, dp.AcpiExtendedNode, (F("UID", StringOr("UIDSTR", Hex())),),
         applies=_acpi_root(PCIE_ROOT), when=DISPLAY, parses=False, decode=_acpi_strings),
    Form("AcpiExp", ACPI, dp.ACPI_EXTENDED_DP, dp.AcpiExtendedNode,
         (F("HID", EisaId()), F("CID", Names({0: "0"}, EisaId()), 0), F("UIDSTR", Ascii())),
         applies=lambda v: v["HIDSTR"] == "" and v["CIDSTR"] == "" and bool(v["UIDSTR"]),
         decode=_acpi_strings, encode=lambda v: _acpi_join(dict(v, UID=0, HIDSTR="", CIDSTR=""))),
    Form("AcpiEx", ACPI, dp.ACPI_EXTENDED_DP, dp.AcpiExtendedNode,
         (F("HID", StringOr("HIDSTR", EisaId())), F("CID", StringOr("CIDSTR", EisaId())),
          F("UID", StringOr("UIDSTR", Hex()))), when=DISPLAY, parses=False, decode=_acpi_strings),
    Form("AcpiEx", ACPI, dp.ACPI_EXTENDED_DP, dp.AcpiExtendedNode,
         (F("HID", EisaId()), F("CID", EisaId()), F("UID"), F("HIDSTR", Ascii(), ""), F("CIDSTR", Ascii(), ""),
          F("UIDSTR", Ascii(), "")), decode=_acpi_strings, encode=_acpi_join),
    Form("AcpiAdr", ACPI, dp.ACPI_ADR_DP, dp.AcpiAdrNode, (F("ADR", Numbers(), rest=True),)),
    # messaging
    Form("Ata", MSG, dp.MESSAGING_ATAPI, dp.AtapiNode,
         (F("PrimarySecondary", ATA_CHANNEL, 0, display=False), F("SlaveMaster", ATA_DRIVE, 0, display=False),
          F("Lun"))),
    Form("Scsi", MSG, dp.MESSAGING_SCSI, dp.ScsiNode, (F("Pun"), F("Lun"))),
    Form("Fibre", MSG, dp.MESSAGING_FIBRE_CHANNEL, dp.FibreChannelNode, (F("WWN"), F("Lun"))),
    Form("FibreEx", MSG, dp.MESSAGING_FIBRE_CHANNEL_EX, dp.FibreChannelExNode,
         (F("WWN", BigEndianHex()), F("Lun", BigEndianHex()))),
    Form("I1394", MSG, dp.MESSAGING_1394, dp.F1394Node, (F("Guid", PlainHex(16)),)),
    Form("USB", MSG, dp.MESSAGING_USB, dp.UsbNode, (F("ParentPortNumber"), F("InterfaceNumber"))),
    Form("I2O", MSG, dp.MESSAGING_I2O, dp.I2ONode, (F("Tid"),)),
    Form("Infiniband", MSG, dp.MESSAGING_INFINIBAND, dp.InfinibandNode,
         (F("ResourceFlags"), F("PortGid", GUID_FORMAT), F("ServiceId"), F("TargetPortId"), F("DeviceId"))),
    _vendor_shortcut("VenPcAnsi", guids.PC_ANSI),
    _vendor_shortcut("VenVt100", guids.VT_100),
    _vendor_shortcut("VenVt100Plus", guids.VT_100_PLUS),
    _vendor_shortcut("VenUtf8", guids.VT_UTF8),
    Form("UartFlowCtrl", MSG, dp.MESSAGING_VENDOR, dp.UartFlowControlNode,
         (F("FlowControlMap", Names({0: "None", 1: "Hardware", 2: "XonXoff"})),),
         fixed={"Guid": guids.UART_DEVICE_PATH.to_bytes()}, when=SHORTCUT),
    _vendor_shortcut("DebugPort", guids.DEBUG_PORT),
    _vendor("VenMsg", MSG, dp.MESSAGING_VENDOR),
    Form("MAC", MSG, dp.MESSAGING_MAC_ADDRESS, dp.MacAddressNode, (F("MacAddress", MacAddress()), F("IfType"))),
    Form("IPv4", MSG, dp.MESSAGING_IPV4, dp.Ipv4Node,
         IPV4_HEAD + (F("GatewayIpAddress", Ipv4Address(), bytes(4), display=False),
                      F("SubnetMask", Ipv4Address(), bytes(4), display=False))),
    Form("IPv4", MSG, dp.MESSAGING_IPV4, dp.Ipv4ShortNode, IPV4_HEAD, parses=False),
    Form("IPv6", MSG, dp.MESSAGING_IPV6, dp.Ipv6Node,
         IPV6_HEAD + (F("PrefixLength", Hex(), 0, display=False),
                      F("GatewayIpAddress", Ipv6Address(), bytes(16), display=False))),
    Form("IPv6", MSG, dp.MESSAGING_IPV6, dp.Ipv6ShortNode, IPV6_HEAD, parses=False),
    Form("Uart", MSG, dp.MESSAGING_UART, dp.UartNode,
         (F("BaudRate", DEFAULT_OR_DECIMAL, 0), F("DataBits", DEFAULT_OR_DECIMAL, 0), F("Parity", UART_PARITY, 0),
          F("StopBits", UART_STOP_BITS, 0))),
    *(Form(name, MSG, dp.MESSAGING_USB_CLASS, dp.UsbClassNode,
           (F("VendorId", **USB_ID), F("ProductId", **USB_ID), F("DeviceSubClass", **USB_CODE),
            F("DeviceProtocol", **USB_CODE)), fixed={"DeviceClass": usb_class})
      for name, usb_class in USB_CLASSES),
    *(Form(name, MSG, dp.MESSAGING_USB_CLASS, dp.UsbClassNode,
           (F("VendorId", **USB_ID), F("ProductId", **USB_ID), F("DeviceProtocol", **USB_CODE)),
           fixed={"DeviceClass": USB_CLASS_RESERVED, "DeviceSubClass": subclass})
      for name, subclass in USB_SUBCLASSES),
    Form("UsbClass", MSG, dp.MESSAGING_USB_CLASS, dp.UsbClassNode,
         (F("VendorId", **USB_ID), F("ProductId", **USB_ID), F("DeviceClass", **USB_CODE),
          F("DeviceSubClass", **USB_CODE), F("DeviceProtocol", **USB_CODE))),
    Form("Unit", MSG, dp.MESSAGING_LOGICAL_UNIT, dp.LogicalUnitNode, (F("Lun"),)),
    Form("Sata", MSG, dp.MESSAGING_SATA, dp.SataNode,
         (F("HBAPortNumber"), F("PortMultiplierPortNumber", default=dp.SATA_NO_PORT_MULTIPLIER), F("Lun", default=0))),
    Form("Vlan", MSG, dp.MESSAGING_VLAN, dp.VlanNode, (F("VlanId", Dec()),)),
    Form("NVMe", MSG, dp.MESSAGING_NVME_NAMESPACE, dp.NvmeNamespaceNode,
         (F("NamespaceId"), F("NamespaceUuid", NvmeUuid()))),
    Form("Uri", MSG, dp.MESSAGING_URI, dp.UriNode, (F("Uri", Bytes8(), b""),)),
    Form("UFS", MSG, dp.MESSAGING_UFS, dp.UfsNode, (F("Pun"), F("Lun"))),
    Form("SD", MSG, dp.MESSAGING_SD, dp.SdNode, (F("SlotNumber"),)),
    Form("eMMC", MSG, dp.MESSAGING_EMMC, dp.EmmcNode, (F("SlotNumber"),)),
    Form("Bluetooth", MSG, dp.MESSAGING_BLUETOOTH, dp.BluetoothNode,
         (F("Address", HexBytes(dp.BLUETOOTH_ADDRESS_SIZE)),)),
    Form("Wi-Fi", MSG, dp.MESSAGING_WIFI, dp.WifiNode, (F("SSId", PaddedAscii()),)),
    Form("BluetoothLE", MSG, dp.MESSAGING_BLUETOOTH_LE, dp.BluetoothLeNode,
         (F("Address", HexBytes(dp.BLUETOOTH_ADDRESS_SIZE)), F("Type", Hex(2)))),
    Form("Dns", MSG, dp.MESSAGING_DNS, dp.DnsNode, (F("Servers", DnsServers(), rest=True),),
         decode=_dns_servers, encode=_dns_fields),
    # media
    Form("HD", MEDIA, dp.MEDIA_HARD_DRIVE, dp.HardDriveNode,
         (F("PartitionNumber", Dec()), F("SignatureType", HARD_DRIVE_SIGNATURE_TYPE),
          F("Signature", HardDriveSignature()), F("PartitionStart", default=0, display=False),
          F("PartitionSize", default=0, display=False)), encode=_hard_drive_type),
    Form("CDROM", MEDIA, dp.MEDIA_CDROM, dp.CdromNode,
         (F("BootEntry"), F("PartitionStart", default=0, display=False), F("PartitionSize", default=0, display=False))),
    _vendor("VenMedia", MEDIA, dp.MEDIA_VENDOR),
    Form("File", MEDIA, dp.MEDIA_FILE_PATH, dp.FilePathNode, (F("PathName", Ucs2Name()),), bare=True, parses=False),
    Form("Media", MEDIA, dp.MEDIA_PROTOCOL, dp.MediaProtocolNode, (F("Protocol", GUID_FORMAT),)),
    Form("FvFile", MEDIA, dp.MEDIA_PIWG_FW_FILE, dp.FirmwareFileNode, (F("FvFileName", GUID_FORMAT),)),
    Form("Fv", MEDIA, dp.MEDIA_PIWG_FW_VOLUME, dp.FirmwareVolumeNode, (F("FvName", GUID_FORMAT),)),
    Form("Offset", MEDIA, dp.MEDIA_RELATIVE_OFFSET_RANGE, dp.RelativeOffsetRangeNode,
         (F("StartingOffset"), F("EndingOffset"))),
    *(Form(name, MEDIA, dp.MEDIA_RAM_DISK, dp.RamDiskNode, RAM_DISK_FIELDS, fixed={"TypeGuid": guid.to_bytes()})
      for name, guid in RAM_DISKS),
    Form("RamDisk", MEDIA, dp.MEDIA_RAM_DISK, dp.RamDiskNode, RAM_DISK_FIELDS + (F("TypeGuid", GUID_FORMAT),)),
    # BIOS boot specification
    Form("BBS", BBS, dp.BBS_BBS, dp.BbsNode,
         (F("DeviceType", BBS_DEVICE_TYPE), F("String", Ascii(), ""), F("StatusFlag", default=0, display=False))),
)

FORMS_OF: dict[tuple[int, int], tuple[Form, ...]] = {}
for _form in FORMS:
    FORMS_OF[_form.type, _form.subtype] = FORMS_OF.get((_form.type, _form.subtype), ()) + (_form,)
PARSERS: dict[str, Form] = {}
for _form in FORMS:
    if _form.parses:
        assert _form.name not in PARSERS, f"two forms read {_form.name}"
        PARSERS[_form.name] = _form
FILE_PATH = next(f for f in FORMS if f.bare)  # what text without a name reads as

# The generic forms of nodes no form fits: Name(subtype[,data]) for these types, Path(type,subtype[,data]) else
GENERIC = {HW: "HardwarePath", ACPI: "AcpiPath", MSG: "Msg", MEDIA: "MediaPath", BBS: "BbsPath"}
GENERIC_TYPE = {name: node_type for node_type, name in GENERIC.items()}
PATH = "Path"
INSTANCE_END_TEXT = ","  # an End-of-instance node on its own


# -- writing --------------------------------------------------------------------------------------

def _generic_text(node: Node) -> str:
    head = f"{GENERIC[node.type]}({node.subtype}" if node.type in GENERIC else f"{PATH}({node.type},{node.subtype}"
    return head + (f",{node.data.hex().upper()})" if node.data else ")")


def node_text(node: Node, display_only: bool = False, allow_shortcuts: bool = False) -> str:
    """The text of one node, as ConvertDeviceNodeToText gives it (an End of instance is ``,``)."""
    if node.is_end and node.subtype == dp.END_INSTANCE:
        return INSTANCE_END_TEXT
    for form in FORMS_OF.get((node.type, node.subtype), ()):
        if not form.usable(display_only, allow_shortcuts):
            continue
        values = form.values_of(node.data)
        if values is None or not form.matches(values):
            continue
        try:
            return form.render(values, display_only)
        except (ValueError, KeyError):
            continue
    return _generic_text(node)


def path_text(nodes: list[Node], display_only: bool = False, allow_shortcuts: bool = False) -> str:
    """The text of a device path (its nodes up to the End of the entire path), as ConvertDevicePathToText
    gives it: an End of instance is ``,``, and every other node but the first has a ``/`` before it (so
    EDK2 joins instances by ``,/``); an empty path is ``""``."""
    text = ""
    for node in nodes:
        if node.is_end_of_path:
            break
        if node.is_end and node.subtype == dp.END_INSTANCE:
            text += INSTANCE_END_TEXT
        else:
            text += ("/" if text else "") + node_text(node, display_only, allow_shortcuts)
    return text


# -- reading --------------------------------------------------------------------------------------

def _generic_node(name: str, params: list[str]) -> Node:
    if name == PATH:
        if not 2 <= len(params) <= 3:
            raise ValueError(f"Path() takes a type, a subtype and data, not {len(params)} parameters")
        node_type, params = _limited(number(params[0]), 8), params[1:]
    else:
        if not 1 <= len(params) <= 2:
            raise ValueError(f"{name}() takes a subtype and data, not {len(params)} parameters")
        node_type = GENERIC_TYPE[name]
    data = _hex_bytes(params[1]) if len(params) > 1 else b""
    if len(data) > MAX_NODE_DATA:
        raise ValueError(f"{name}(): {HEADER_SIZE + len(data)} bytes is longer than a node can be")
    return Node(node_type, _limited(number(params[0]), 8), data)


def parse_node(text: str) -> Node:
    """The node of one node's text, as ConvertTextToDeviceNode reads it; ValueError if it does not read."""
    if not text:
        raise ValueError("no text")
    name, paren, rest = text.partition("(")
    if not paren or (name not in PARSERS and name not in GENERIC_TYPE and name != PATH):
        return FILE_PATH.build([text])
    inner = rest[:-1]
    if not rest.endswith(")") or "(" in inner or ")" in inner:
        raise ValueError(f"{name}(: parentheses that do not pair")
    params = inner.split(",") if inner else []
    if name in PARSERS:
        return PARSERS[name].build(params)
    return _generic_node(name, params)


SEPARATORS = "/,"


def parse_path(text: str) -> list[Node]:
    """The nodes (End-of-instance nodes included, the End node not) of a device path's text, as
    ConvertTextToDevicePath reads it; ValueError if it does not read, or if the path would be longer
    than MAX_PATH_SIZE."""
    nodes, size, i, end = [], HEADER_SIZE, 0, len(text)
    while True:
        while i < end and text[i] in SEPARATORS:  # EDK2 skips the separators before a node
            i += 1
        if i == end:
            return nodes
        start, depth = i, 0
        while i < end and (depth or text[i] not in SEPARATORS):
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
                if depth < 0:
                    raise ValueError(f"a ) without its ( at character {i}")
            i += 1
        if depth:
            raise ValueError(f"a ( without its ) after character {start}")
        node = parse_node(text[start:i])
        nodes.append(node)
        size += node.length
        if i < end and text[i] == ",":
            nodes.append(END_OF_INSTANCE)
            size += END_OF_INSTANCE.length
            i += 1
        if size > MAX_PATH_SIZE:
            raise ValueError(f"a device path longer than {MAX_PATH_SIZE} bytes")
