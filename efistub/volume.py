"""A FAT-like volume backed by a host folder (``efistub run IMAGE --esp DIR``).

This module is the volume's semantics and its safety, and nothing of the emulator:
the firmware's EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL are written on
top of :class:`HostVolume`. The guest names files by *volume paths* such as
``\\EFI\\BOOT\\BOOTX64.EFI`` (the root is ``\\``); the volume maps them to host files
below the root folder and never lets a guest reach a host file outside it.

Names
    ``\\`` separates components (``/`` is accepted too); repeated separators collapse;
    ``.`` is the current directory and ``..`` its parent. Names compare
    case-insensitively, as on FAT (simple one-to-one Unicode upper-casing); a
    canonical path spells every existing component as it is on disk. When two host
    names differ only in case (possible on Linux), the exact match wins, else the
    first of them in code-point order (``"EFI" < "Efi" < "efi"``). A component may
    have at most 255 UCS-2 characters (:data:`MAX_NAME`); NUL and lone surrogates are
    refused (EFI_INVALID_PARAMETER). A name the volume *creates* must also be a legal
    FAT long name: no control characters and none of ``" * : < > ? |``.

What the guest sees of the host folder
    Regular files and directories. A symlink is followed when its target lies inside
    the root (it is then seen as the file or directory it points at, under the link's
    own name); it is resolved component by component on the host without ever
    touching a path outside the root, and a link that leaves the root is
    EFI_ACCESS_DENIED when used, as a path's last component or an intermediate one.
    Anything else (a FIFO, socket or device node, a dangling or looping symlink) is
    EFI_ACCESS_DENIED when named, and is never opened. :meth:`HostVolume.list` leaves
    out what the guest cannot use: such entries, and host names it could not spell
    (containing ``\\``, undecodable bytes, over 255 UCS-2 characters).

Hard links
    A hard link in the folder to a file elsewhere is that file: nothing tells it from any
    other file the folder holds, and the volume serves it as one. The guest reads it and,
    with ``writable``, writes or truncates it, which the other names of the file see too;
    delete and rename change only the volume's name. The guest itself cannot make a hard
    link, nor a symlink, a FIFO or a device node: the volume creates regular files and
    directories only (tests/test_host_escape.py).

Races
    After resolving, files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked
    with ``fstat``: a last component swapped for a symlink or a FIFO meanwhile is
    EFI_ACCESS_DENIED, and nothing blocks. Intermediate directories swapped for
    symlinks by another host process between resolution and use are not defended
    against (the guest itself cannot create symlinks).
"""

from __future__ import annotations

import errno
import os
import stat as _stat
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from .errors import EfiError, InputError
from .status import Status

EFI_FILE_READ_ONLY = 0x01
EFI_FILE_HIDDEN = 0x02
EFI_FILE_SYSTEM = 0x04
EFI_FILE_RESERVED = 0x08
EFI_FILE_DIRECTORY = 0x10
EFI_FILE_ARCHIVE = 0x20
EFI_FILE_VALID_ATTR = 0x37

MAX_NAME = 255
"""The most UCS-2 characters one name component may have (a FAT long name)."""

BLOCK_SIZE = 512
"""The block size :meth:`HostVolume.info` reports."""

SEPARATOR = "\\"
ROOT = "\\"

_FAT_ILLEGAL = frozenset('"*:<>?|')
_SYMLINK_DEPTH = 40
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_OPEN_FLAGS = _O_NOFOLLOW | _O_NONBLOCK | _O_NOCTTY | _O_CLOEXEC | _O_BINARY
_FD_METADATA = os.chmod in os.supports_fd and os.utime in os.supports_fd


class VolumeError(EfiError):
    """A volume operation failed: ``.status`` is the EFI status (a :class:`Status`) the
    file protocol returns, ``.message`` says what failed, naming the volume path.

    The statuses:

    - EFI_NOT_FOUND: no such file or directory; a path component that is a file.
    - EFI_ACCESS_DENIED: a symlink that leaves the root; anything that is neither a
      regular file nor a directory; reading a directory as a file, writing a directory,
      listing a file; changing a file whose READ_ONLY attribute is set, the root, or a
      non-empty directory (delete); a rename onto an existing name.
    - EFI_WRITE_PROTECTED: any change on a read-only volume (or a read-only host mount).
    - EFI_INVALID_PARAMETER: ``..`` above the root (as EDK2's FAT driver), an empty name, NUL, a lone surrogate, a component over 255
      UCS-2 characters, a FAT-illegal character in a new name, a negative offset or size.
    - EFI_DEVICE_ERROR: a host OSError (the message has its text), a read beyond the
      end of the file (UEFI 2.10 §13.5 Read).
    - EFI_VOLUME_FULL: the host file system is full.

    It is an :class:`efistub.errors.EfiError`: raised out of a service, the guest gets
    ``.status`` and the report the message as the call's note.
    """

    def __init__(self, status: Status, message: str):
        status = Status(status)
        super().__init__(status, message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.status.name}: {self.message}"


@dataclass
class Entry:
    """A file or directory as EFI_FILE_INFO describes it.

    ``name`` is the name as on disk (``""`` for the root, as EFI_FILE_INFO has it; ``"."``
    and ``".."`` for the dot entries of :meth:`HostVolume.list`). ``size`` is 0 for a
    directory, as in a FAT directory entry. ``read_only`` is set when the host owner's
    write permission bit is clear. The times are UTC, clamped to 1900..9999; on hosts
    without a birth time ``created`` is the earlier of the change and modification
    times.
    """

    name: str
    size: int
    is_dir: bool
    read_only: bool
    created: datetime
    accessed: datetime
    modified: datetime

    @property
    def attributes(self) -> int:
        """EFI_FILE_* bits: DIRECTORY or, for a regular file, ARCHIVE (as FAT sets it on
        every written file), plus READ_ONLY. HIDDEN and SYSTEM are never set."""
        bits = EFI_FILE_DIRECTORY if self.is_dir else EFI_FILE_ARCHIVE
        return bits | (EFI_FILE_READ_ONLY if self.read_only else 0)


class VolumeInfo(NamedTuple):
    """What EFI_FILE_SYSTEM_INFO reports: sizes in bytes, from os.statvfs of the root."""

    volume_size: int
    free_space: int
    block_size: int
    read_only: bool
    label: str


@dataclass
class _Found:
    """One resolved volume path: ``parts`` are its components (on-disk case for the
    existing ones), ``reals`` the symlink-free host path of each existing level
    (``reals[0]`` is the root). ``st`` is the stat of the last one, None when the last
    component does not exist (``len(reals) == len(parts)`` then)."""

    parts: list[str]
    reals: list[str]
    st: os.stat_result | None

    @property
    def path(self) -> str:
        return ROOT + SEPARATOR.join(self.parts)

    @property
    def exists(self) -> bool:
        return self.st is not None

    @property
    def is_root(self) -> bool:
        return not self.parts

    @property
    def is_dir(self) -> bool:
        return self.st is not None and _stat.S_ISDIR(self.st.st_mode)

    @property
    def real(self) -> str:
        """The host file (symlinks resolved); the last component must exist."""
        return self.reals[-1]

    @property
    def parent_real(self) -> str:
        return self.reals[len(self.parts) - 1]

    @property
    def link(self) -> str:
        """The host directory entry itself: the symlink, when the last component is one."""
        return os.path.join(self.parent_real, self.parts[-1])


def _fold(name: str) -> str:
    """The case-insensitive key of a name: one-to-one Unicode upper-casing (FAT's up-case
    table maps each character to one character; ``ß`` stays ``ß``)."""
    if name.isascii():
        return name.upper()
    return "".join(u if len(u := c.upper()) == 1 else c for c in name)


def _ucs2_length(name: str) -> int:
    """UTF-16 code units: a character beyond the BMP takes two (a surrogate pair)."""
    if name.isascii():
        return len(name)
    return len(name) + sum(1 for c in name if ord(c) > 0xFFFF)


def _has_surrogate(name: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in name)


def _addressable(name: str) -> bool:
    """Whether the guest can name this host entry."""
    return SEPARATOR not in name and not _has_surrogate(name) and _ucs2_length(name) <= MAX_NAME


def _time(ns: int) -> datetime:
    try:
        value = _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return _LATEST if ns > 0 else _EARLIEST
    return min(max(value, _EARLIEST), _LATEST)


def _ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _entry(name: str, st: os.stat_result) -> Entry:
    is_dir = _stat.S_ISDIR(st.st_mode)
    birth = getattr(st, "st_birthtime_ns", None)
    if birth is None and getattr(st, "st_birthtime", None) is not None:
        birth = int(st.st_birthtime * 1_000_000_000)
    if birth is None:
        birth = min(st.st_ctime_ns, st.st_mtime_ns)
    return Entry(name=name, size=0 if is_dir else st.st_size, is_dir=is_dir,
                 read_only=not st.st_mode & _stat.S_IWUSR, created=_time(birth),
                 accessed=_time(st.st_atime_ns), modified=_time(st.st_mtime_ns))


def _usable(st: os.stat_result) -> bool:
    return _stat.S_ISREG(st.st_mode) or _stat.S_ISDIR(st.st_mode)


class _Name(NamedTuple):
    absolute: bool
    parts: list[str]
    trailing: bool


def _parse(name: str) -> _Name:
    """Split a volume path or Open file name into components; validate without the host."""
    if not isinstance(name, str):
        raise TypeError(f"a volume path is a str, not {type(name).__name__}")
    if not name:
        raise VolumeError(Status.EFI_INVALID_PARAMETER, "empty file name")
    if "\0" in name:
        raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{name!r}: NUL in a file name")
    if _has_surrogate(name):
        raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{name!r}: lone surrogate in a file name")
    text = name.replace("/", SEPARATOR)
    parts = [p for p in text.split(SEPARATOR) if p]
    for part in parts:
        if _ucs2_length(part) > MAX_NAME:
            raise VolumeError(Status.EFI_INVALID_PARAMETER,
                              f"{part[:32]}...: a name has at most {MAX_NAME} characters")
    return _Name(text.startswith(SEPARATOR), parts, text.endswith(SEPARATOR) and bool(parts))


def _check_new_name(name: str) -> None:
    """A name the volume creates must be a legal FAT long name."""
    if name in (".", "..") or any(c < " " or c in _FAT_ILLEGAL for c in name):
        raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{name!r} is not a valid FAT file name")


class HostVolume:
    """A FAT-like volume whose root is the host folder ``root``.

    Every method takes volume paths (``\\``-separated, from the root; a leading ``\\`` is
    optional, ``/`` works as a separator, ``.`` and ``..`` are resolved) and raises
    :class:`VolumeError`. With ``writable=False`` every change raises
    EFI_WRITE_PROTECTED before the host is touched. The READ_ONLY attribute of a regular
    file protects its data and its name, as EDK2's FAT driver does: write, set_size,
    delete and rename are EFI_ACCESS_DENIED, set_times leaves the times as they are,
    and only set_attributes may clear the bit. The root cannot be deleted, renamed or
    given attributes, sizes or times (EFI_ACCESS_DENIED, as in EDK2).
    """

    def __init__(self, root: str, writable: bool = False, label: str = "EFISTUB"):
        """Raise :class:`efistub.errors.InputError` unless ``root`` is an existing directory."""
        root = os.fspath(root)
        if not os.path.exists(root):
            raise InputError(root, "no such directory (the ESP folder)")
        if not os.path.isdir(root):
            raise InputError(root, "not a directory (the ESP folder must be one)")
        self._given = os.path.abspath(root)
        self._root = os.path.realpath(root)
        self._writable = bool(writable)
        self._label = label

    @property
    def root(self) -> str:
        """The host folder, symlinks resolved."""
        return self._root

    @property
    def read_only(self) -> bool:
        """True unless the volume was made writable (``--esp-writable``)."""
        return not self._writable

    @property
    def label(self) -> str:
        return self._label

    # --- resolution -------------------------------------------------------------------

    def resolve(self, directory: str, name: str) -> str:
        """The canonical volume path EFI_FILE_PROTOCOL.Open reaches from the open
        directory ``directory`` with file name ``name`` (UEFI 2.10 §13.5, FAT rules).

        A leading separator starts from the root; ``..`` at the root is EFI_INVALID_PARAMETER
        (EDK2 answers EFI_INVALID_PARAMETER there); a trailing separator is allowed, but
        then an existing last component must be a directory (else EFI_NOT_FOUND, as in
        EDK2). Existing components come back in their on-disk case; a last component
        that does not exist is kept as given, for a create. An empty name is
        EFI_INVALID_PARAMETER (EDK2); ``"."`` names the directory itself. ``directory``
        must be an existing directory (EFI_NOT_FOUND otherwise).
        """
        _parse(name)  # a bad name is refused before the host is looked at
        base = self._find(directory)
        if not base.exists:
            raise VolumeError(Status.EFI_NOT_FOUND, f"{base.path}: no such directory")
        if not base.is_dir:
            raise VolumeError(Status.EFI_NOT_FOUND, f"{base.path}: not a directory")
        return self._find(name, base).path

    def _find(self, name: str, base: _Found | None = None) -> _Found:
        """Walk ``name`` from ``base`` (the root when None or when ``name`` is absolute)."""
        parsed = _parse(name)
        if base is None or parsed.absolute:
            found = _Found([], [self._root], self._lstat(self._root, ROOT))
        else:
            found = _Found(list(base.parts), list(base.reals), base.st)
        count = len(parsed.parts)
        for index, part in enumerate(parsed.parts):
            last = index == count - 1
            if part == ".":
                continue
            if part == "..":
                if found.is_root:
                    # EDK2's FAT driver (and OVMF, tests/guests/files.c) refuses it as invalid
                    raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{name}: '..' above the root")
                found.parts.pop()
                found.reals.pop()
                found.st = self._lstat(found.real, found.path)
                continue
            if not found.is_dir:
                raise VolumeError(Status.EFI_NOT_FOUND, f"{found.path}: not a directory")
            match = self._match(found.real, part, found.path)
            if match is None:
                found.parts.append(part)
                found.st = None
                if not last:
                    raise VolumeError(Status.EFI_NOT_FOUND, f"{found.path}: no such directory")
                continue
            real, st = self._follow(found.real, match, found.path)
            found.parts.append(match)
            found.reals.append(real)
            found.st = st
        if parsed.trailing and found.exists and not found.is_dir:
            raise VolumeError(Status.EFI_NOT_FOUND, f"{found.path}: not a directory")
        return found

    def _existing(self, path: str) -> _Found:
        found = self._find(path)
        if not found.exists:
            raise VolumeError(Status.EFI_NOT_FOUND, f"{found.path}: no such file or directory")
        return found

    def _names(self, real: str, vpath: str) -> list[str]:
        try:
            names = os.listdir(real)
        except OSError as e:
            raise self._oserror(e, vpath, "list") from None
        return [n for n in names if _addressable(n)]

    def _match(self, real: str, part: str, vpath: str) -> str | None:
        """The on-disk name in the host directory ``real`` that ``part`` names: the exact
        name first, else the first case-insensitive match in code-point order."""
        names = self._names(real, vpath)
        if part in names:
            return part
        key = _fold(part)
        matches = sorted(n for n in names if _fold(n) == key)
        return matches[0] if matches else None

    def _lstat(self, host: str, vpath: str) -> os.stat_result:
        try:
            return os.lstat(host)
        except OSError as e:
            raise self._oserror(e, vpath, "look up") from None

    def _follow(self, real_dir: str, name: str, vpath: str) -> tuple[str, os.stat_result]:
        """The host entry ``name`` in the symlink-free host directory ``real_dir`` (inside
        the root), with symlinks resolved without leaving the root: its symlink-free path
        and stat. Refuses (EFI_ACCESS_DENIED) links that leave the root, dangling links,
        more than 40 links in all (loops), and anything not a regular file or directory."""
        where = self._join(vpath, name)
        host = os.path.join(real_dir, name)
        st = self._lstat(host, where)
        if _stat.S_ISLNK(st.st_mode):
            budget = [_SYMLINK_DEPTH]
            target = self._readlink(host, where, budget)
            budget[0] -= 1
            host, st = self._walk_link(real_dir, target, where, budget)
        if not _usable(st):
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{where}: not a regular file or directory")
        return host, st

    def _readlink(self, host: str, where: str, budget: list[int]) -> str:
        if budget[0] <= 0:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{where}: too many levels of symbolic links")
        try:
            return os.readlink(host)
        except OSError as e:
            raise self._oserror(e, where, "read the symbolic link") from None

    def _walk_link(self, real_dir: str, target: str, where: str, budget: list[int]) -> tuple[str, os.stat_result]:
        """Resolve a symlink's target text physically, one host component at a time
        (``..`` is the parent of the symlink-free directory reached so far), refusing to
        take a step outside the root. ``budget`` counts the links all levels may still
        follow."""
        if os.path.isabs(target):
            for prefix in (self._root, self._given):
                if target == prefix or target.startswith(prefix.rstrip(os.sep) + os.sep):
                    rest = target[len(prefix):]
                    break
            else:
                raise VolumeError(Status.EFI_ACCESS_DENIED, f"{where}: a symbolic link out of the volume")
            current = self._root
        else:
            rest, current = target, real_dir
        pieces = [p for p in rest.split(os.sep) if p not in ("", ".")]
        st = self._lstat(current, where)
        for piece in pieces:
            if not _stat.S_ISDIR(st.st_mode):
                raise VolumeError(Status.EFI_ACCESS_DENIED, f"{where}: a symbolic link through a file")
            if piece == "..":
                if current == self._root:
                    raise VolumeError(Status.EFI_ACCESS_DENIED, f"{where}: a symbolic link out of the volume")
                current = os.path.dirname(current)
                st = self._lstat(current, where)
                continue
            host = os.path.join(current, piece)
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                raise VolumeError(Status.EFI_ACCESS_DENIED, f"{where}: a dangling symbolic link") from None
            except OSError as e:
                raise self._oserror(e, where, "follow the symbolic link") from None
            if _stat.S_ISLNK(st.st_mode):
                inner = self._readlink(host, where, budget)
                budget[0] -= 1
                host, st = self._walk_link(current, inner, where, budget)
            current = host
        return current, st

    @staticmethod
    def _join(vpath: str, name: str) -> str:
        return vpath + name if vpath == ROOT else vpath + SEPARATOR + name

    @staticmethod
    def _oserror(e: OSError, vpath: str, what: str) -> VolumeError:
        text = e.strerror or str(e)
        code = e.errno
        if code == errno.ENOENT:
            status = Status.EFI_NOT_FOUND
        elif code == errno.ELOOP:
            status = Status.EFI_ACCESS_DENIED
        elif code == errno.EROFS:
            status = Status.EFI_WRITE_PROTECTED
        elif code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            status = Status.EFI_VOLUME_FULL
        else:
            status = Status.EFI_DEVICE_ERROR
        return VolumeError(status, f"{vpath}: cannot {what}: {text}")

    # --- reading ----------------------------------------------------------------------

    def stat(self, path: str) -> Entry:
        """The Entry of an existing file or directory (the root's name is ``""``)."""
        found = self._existing(path)
        return _entry(found.parts[-1] if found.parts else "", found.st)

    def list(self, path: str) -> list[Entry]:
        """The entries of a directory, as Read on a directory handle returns them.

        A subdirectory starts with ``"."`` (itself) and ``".."`` (its parent), as FAT
        stores them and EDK2 returns them; the root has neither. The other entries follow
        sorted case-insensitively (code-point order among names equal but for case).
        Entries the guest could not use are left out (see the module docstring).
        Listing a file is EFI_ACCESS_DENIED.
        """
        found = self._existing(path)
        if not found.is_dir:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: not a directory")
        entries = []
        for name in self._names(found.real, found.path):
            try:
                _, st = self._follow(found.real, name, found.path)
            except VolumeError as e:
                if e.status in (Status.EFI_ACCESS_DENIED, Status.EFI_NOT_FOUND):
                    continue
                raise
            entries.append(_entry(name, st))
        entries.sort(key=lambda entry: (_fold(entry.name), entry.name))
        if found.is_root:
            return entries
        parent = self._lstat(found.reals[-2], found.path)
        return [_entry(".", found.st), _entry("..", parent)] + entries

    def read(self, path: str, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of a regular file from ``offset``: short at the end of the
        file, empty at it; an offset beyond the end is EFI_DEVICE_ERROR (UEFI Read)."""
        if offset < 0 or size < 0:
            raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{path}: negative offset or size")
        found = self._file(path, "read")
        fd = self._open(found, os.O_RDONLY, "read")
        try:
            end = os.fstat(fd).st_size
            if offset > end:
                raise VolumeError(Status.EFI_DEVICE_ERROR,
                                  f"{found.path}: read at {offset}, beyond the end of the file ({end})")
            chunks = []
            while size > 0:
                chunk = os.pread(fd, min(size, 1 << 24), offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                size -= len(chunk)
            return b"".join(chunks)
        except OSError as e:
            raise self._oserror(e, found.path, "read") from None
        finally:
            os.close(fd)

    def info(self) -> VolumeInfo:
        """Volume size and free space from os.statvfs of the root; block size 512."""
        try:
            vfs = os.statvfs(self._root)
        except OSError as e:
            raise self._oserror(e, ROOT, "query the volume") from None
        unit = vfs.f_frsize or vfs.f_bsize
        return VolumeInfo(vfs.f_blocks * unit, vfs.f_bavail * unit, BLOCK_SIZE, self.read_only, self._label)

    # --- changing ---------------------------------------------------------------------

    def _writable_check(self, what: str, path: str = ROOT) -> None:
        if not self._writable:
            raise VolumeError(Status.EFI_WRITE_PROTECTED, f"{path}: cannot {what}: the volume is read-only")

    def _file(self, path: str, what: str) -> _Found:
        found = self._existing(path)
        if found.is_dir:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: cannot {what} a directory")
        return found

    def _unlocked(self, found: _Found, what: str) -> None:
        if not found.is_dir and not found.st.st_mode & _stat.S_IWUSR:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: cannot {what}: the file is read-only")

    def _open(self, found: _Found, flags: int, what: str, directory: bool = False, denied_ok: bool = False) -> int:
        """Open the resolved file without following a symlink or blocking; check what was
        opened is what was resolved. ``denied_ok`` lets PermissionError through."""
        if directory:
            flags |= _O_DIRECTORY
        try:
            fd = os.open(found.real, flags | _OPEN_FLAGS)
        except PermissionError as e:
            if denied_ok:
                raise
            raise self._oserror(e, found.path, what) from None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV):  # a symlink, FIFO or device now
                raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: changed on the host meanwhile") from None
            raise self._oserror(e, found.path, what) from None
        try:
            st = os.fstat(fd)
        except OSError as e:
            os.close(fd)
            raise self._oserror(e, found.path, what) from None
        if not (_stat.S_ISDIR(st.st_mode) if directory else _stat.S_ISREG(st.st_mode)):
            os.close(fd)
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: changed on the host meanwhile")
        return fd

    def write(self, path: str, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` of a regular file; a gap past the end reads as zeros."""
        self._writable_check("write", path)
        if offset < 0:
            raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{path}: negative offset")
        found = self._file(path, "write")
        self._unlocked(found, "write")
        fd = self._open(found, os.O_WRONLY, "write")
        try:
            view = memoryview(data).cast("B")
            while view:
                done = os.pwrite(fd, view, offset)
                view = view[done:]
                offset += done
        except OSError as e:
            raise self._oserror(e, found.path, "write") from None
        finally:
            os.close(fd)

    def create(self, path: str, directory: bool = False) -> Entry:
        """Create an empty file (or a directory) at ``path``, whose parent must exist; as
        Open with EFI_FILE_MODE_CREATE, an existing file (directory) is left as it is and
        its Entry returned. An existing entry of the other kind is EFI_ACCESS_DENIED."""
        self._writable_check("create", path)
        found = self._find(path)
        if not found.exists:
            name = found.parts[-1]
            _check_new_name(name)
            host = os.path.join(found.parent_real, name)
            try:
                if directory:
                    os.mkdir(host, 0o777)
                else:
                    os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o666))
            except FileExistsError:
                pass  # made meanwhile: look at what it is
            except OSError as e:
                raise self._oserror(e, found.path, "create") from None
            found = self._existing(path)
        if found.is_dir != directory:
            kind = "a directory" if found.is_dir else "a file"
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: exists as {kind}")
        return _entry(found.parts[-1] if found.parts else "", found.st)

    def delete(self, path: str) -> None:
        """Delete a file, or an empty directory; a symlink is removed itself, never its target.

        The root, a non-empty directory and a READ_ONLY file are EFI_ACCESS_DENIED (the
        status EDK2's FAT driver reaches internally). The file protocol's Delete always
        closes the handle and answers EFI_WARN_DELETE_FAILURE for any of these errors
        (UEFI 2.10 §13.5 Delete; EDK2 does exactly that).
        """
        self._writable_check("delete", path)
        found = self._existing(path)
        if found.is_root:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{ROOT}: cannot delete the root directory")
        self._unlocked(found, "delete")
        link = found.link
        try:
            is_link = _stat.S_ISLNK(os.lstat(link).st_mode)
            if found.is_dir:
                if os.listdir(found.real):
                    raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: the directory is not empty")
                if is_link:
                    os.unlink(link)
                else:
                    os.rmdir(link)
            else:
                os.unlink(link)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: the directory is not empty") from None
            raise self._oserror(e, found.path, "delete") from None

    def set_size(self, path: str, size: int) -> None:
        """Truncate or extend (with zeros) a regular file. The same size is a no-op even on
        a READ_ONLY file or a directory (size 0), as SetInfo with an unchanged FileSize."""
        self._writable_check("set the size of", path)
        if size < 0:
            raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{path}: negative size")
        found = self._existing(path)
        current = 0 if found.is_dir else found.st.st_size
        if size == current:
            return
        if found.is_dir:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{found.path}: a directory's size cannot change")
        self._unlocked(found, "set the size")
        fd = self._open(found, os.O_WRONLY, "set the size")
        try:
            os.ftruncate(fd, size)
        except OSError as e:
            raise self._oserror(e, found.path, "set the size") from None
        finally:
            os.close(fd)

    def _metadata(self, found: _Found, what: str, action) -> None:
        """``action(target)`` changes metadata: ``target`` is a descriptor opened without
        following a symlink and checked with fstat (race-free), or the resolved host path
        when the host has no descriptor-based call or will not open the file (no read
        permission)."""
        fd = None
        if _FD_METADATA:
            try:
                fd = self._open(found, os.O_RDONLY, what, directory=found.is_dir, denied_ok=True)
            except PermissionError:
                fd = None
        try:
            action(found.real if fd is None else fd)
        except OSError as e:
            raise self._oserror(e, found.path, what) from None
        finally:
            if fd is not None:
                os.close(fd)

    def set_attributes(self, path: str, read_only: bool) -> None:
        """Set or clear READ_ONLY: clears every host write bit, or sets the owner's. The
        other attribute bits are not stored (HIDDEN and SYSTEM stay clear)."""
        self._writable_check("set the attributes of", path)
        found = self._existing(path)
        if found.is_root:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{ROOT}: the root's attributes cannot change")
        mode = _stat.S_IMODE(found.st.st_mode)
        mode = mode & ~0o222 if read_only else mode | _stat.S_IWUSR
        if mode == _stat.S_IMODE(found.st.st_mode):
            return
        self._metadata(found, "set the attributes of", lambda target: os.chmod(target, mode))

    def set_times(self, path: str, accessed: datetime | None, modified: datetime | None) -> None:
        """Set the access and modification times (None keeps one; a naive datetime is UTC).
        The creation time cannot be set on a host file and is left alone. A READ_ONLY file
        keeps its times and this returns quietly, as EDK2's SetInfo does."""
        self._writable_check("set the times of", path)
        found = self._existing(path)
        if found.is_root:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{ROOT}: the root's times cannot change")
        if not found.is_dir and not found.st.st_mode & _stat.S_IWUSR:
            return
        atime = found.st.st_atime_ns if accessed is None else _ns(accessed)
        mtime = found.st.st_mtime_ns if modified is None else _ns(modified)
        self._metadata(found, "set the times of", lambda target: os.utime(target, ns=(atime, mtime)))

    def rename(self, path: str, new_name: str) -> str:
        """Rename (or move) a file or directory, as SetInfo with a new FileName; returns
        the new canonical volume path.

        As in EDK2, ``new_name`` is resolved like an Open file name from the directory
        holding the file: a plain name renames it in place, a name with separators moves
        it (from that directory, or from the root with a leading ``\\``). Its last
        component must not exist (EFI_ACCESS_DENIED), except when it names the file
        itself: then only the case of its name changes (EDK2 keeps the old case). Moving
        a directory below itself, the root, and a READ_ONLY file are EFI_ACCESS_DENIED.
        A symlink is moved itself. The destination stays inside the volume like every
        path. Another host process creating the destination at the same moment may be
        overwritten (no RENAME_NOREPLACE).
        """
        self._writable_check("rename", path)
        found = self._existing(path)
        if found.is_root:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{ROOT}: cannot rename the root directory")
        parent = _Found(found.parts[:-1], found.reals[:len(found.parts)], None)
        parent.st = self._lstat(parent.real, parent.path)
        dest = self._find(new_name, parent)
        if dest.exists:
            if dest.parts != found.parts:
                raise VolumeError(Status.EFI_ACCESS_DENIED, f"{dest.path}: exists")
            parts = _parse(new_name).parts
            given = parts[-1] if parts else "."
            if given in (".", "..") or given == found.parts[-1]:
                return found.path
            _check_new_name(given)
            dest.parts[-1] = given
            dest.reals.pop()
        else:
            _check_new_name(dest.parts[-1])
            if found.is_dir and dest.parts[:len(found.parts)] == found.parts:
                raise VolumeError(Status.EFI_ACCESS_DENIED, f"{dest.path}: a directory cannot move below itself")
        self._unlocked(found, "rename")
        try:
            os.rename(found.link, os.path.join(dest.parent_real, dest.parts[-1]))
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise VolumeError(Status.EFI_ACCESS_DENIED,
                                  f"{found.path}: cannot move to {dest.path}: {e.strerror}") from None
            raise self._oserror(e, found.path, "rename") from None
        return dest.path

    def set_label(self, label: str) -> None:
        """Set the volume label (kept in memory; the host folder is not changed)."""
        self._writable_check("set the label")
        if "\0" in label or _has_surrogate(label):
            raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{label!r}: not a valid volume label")
        self._label = label
