"""EFI_STATUS codes (UEFI 2.10, Appendix D) as a named enumeration."""

from __future__ import annotations

import enum

ERROR_BIT = 1 << 63


_NAMES: dict[int, str] = {}  # name_of, without making an enum member (filled below the enumeration)


def name_of(value: int) -> str:
    """The spec name of a status, or its hex value when it has none (``Status.name_of``; this is the
    one to call often: on Python 3.11 every attribute of an enumeration's class is looked up slowly)."""
    name = _NAMES.get(value)
    return name if name is not None else f"0x{value:016x}"


class Status(enum.IntEnum):
    """An EFI_STATUS value; ``Status.EFI_NOT_FOUND.name`` is the spec's name."""

    EFI_SUCCESS = 0
    EFI_WARN_UNKNOWN_GLYPH = 1
    EFI_WARN_DELETE_FAILURE = 2
    EFI_WARN_WRITE_FAILURE = 3
    EFI_WARN_BUFFER_TOO_SMALL = 4
    EFI_WARN_STALE_DATA = 5
    EFI_WARN_FILE_SYSTEM = 6
    EFI_WARN_RESET_REQUIRED = 7
    EFI_LOAD_ERROR = ERROR_BIT | 1
    EFI_INVALID_PARAMETER = ERROR_BIT | 2
    EFI_UNSUPPORTED = ERROR_BIT | 3
    EFI_BAD_BUFFER_SIZE = ERROR_BIT | 4
    EFI_BUFFER_TOO_SMALL = ERROR_BIT | 5
    EFI_NOT_READY = ERROR_BIT | 6
    EFI_DEVICE_ERROR = ERROR_BIT | 7
    EFI_WRITE_PROTECTED = ERROR_BIT | 8
    EFI_OUT_OF_RESOURCES = ERROR_BIT | 9
    EFI_VOLUME_CORRUPTED = ERROR_BIT | 10
    EFI_VOLUME_FULL = ERROR_BIT | 11
    EFI_NO_MEDIA = ERROR_BIT | 12
    EFI_MEDIA_CHANGED = ERROR_BIT | 13
    EFI_NOT_FOUND = ERROR_BIT | 14
    EFI_ACCESS_DENIED = ERROR_BIT | 15
    EFI_NO_RESPONSE = ERROR_BIT | 16
    EFI_NO_MAPPING = ERROR_BIT | 17
    EFI_TIMEOUT = ERROR_BIT | 18
    EFI_NOT_STARTED = ERROR_BIT | 19
    EFI_ALREADY_STARTED = ERROR_BIT | 20
    EFI_ABORTED = ERROR_BIT | 21
    EFI_ICMP_ERROR = ERROR_BIT | 22
    EFI_TFTP_ERROR = ERROR_BIT | 23
    EFI_PROTOCOL_ERROR = ERROR_BIT | 24
    EFI_INCOMPATIBLE_VERSION = ERROR_BIT | 25
    EFI_SECURITY_VIOLATION = ERROR_BIT | 26
    EFI_CRC_ERROR = ERROR_BIT | 27
    EFI_END_OF_MEDIA = ERROR_BIT | 28
    EFI_END_OF_FILE = ERROR_BIT | 31
    EFI_INVALID_LANGUAGE = ERROR_BIT | 32
    EFI_COMPROMISED_DATA = ERROR_BIT | 33
    EFI_IP_ADDRESS_CONFLICT = ERROR_BIT | 34
    EFI_HTTP_ERROR = ERROR_BIT | 35

    name_of = staticmethod(name_of)

    @classmethod
    def parse(cls, value: "str | int | Status") -> "Status":
        """Accept a Status, its name (with or without the EFI_ prefix) or its number."""
        if isinstance(value, cls):
            return value
        if isinstance(value, int):
            return cls(value)
        key = value.strip().upper()
        if not key.startswith("EFI_"):
            key = "EFI_" + key
        try:
            return cls[key]
        except KeyError:
            raise ValueError(f"unknown EFI status name {value!r}") from None

    @property
    def is_error(self) -> bool:
        return bool(self & ERROR_BIT)


_NAMES.update({int(status): status.name for status in Status})

# The statuses services return most, as module names: on Python 3.11 a member of Status is slow to
# look up (EnumType.__getattr__), and these are returned on hot paths (GetVariable's EFI_NOT_FOUND).
INVALID = Status.EFI_INVALID_PARAMETER
NOT_FOUND = Status.EFI_NOT_FOUND


def to_guest(value: int, width: int) -> int:
    """A status as a guest with ``width``-byte UINTNs sees it: the error bit is the UINTN's top bit
    (the C trampoline's guest_status does the same)."""
    if width >= 8:
        return value
    top = 1 << (8 * width - 1)
    return (top if value & ERROR_BIT else 0) | (value & (top - 1))


def from_guest(value: int, width: int) -> int:
    """A status a ``width``-byte guest passed (Exit, ResetSystem), as efistub's 64-bit value."""
    if width >= 8:
        return value
    top = 1 << (8 * width - 1)
    return (ERROR_BIT if value & top else 0) | (value & (top - 1))
