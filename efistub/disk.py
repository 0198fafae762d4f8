"""Disks the firmware serves through BLOCK_IO: a host image file, or a GPT disk built from a folder.

GRUB and other loaders read disks only through BLOCK_IO / DISK_IO, with their own FAT
and ext drivers. This module is the disk model those protocols serve, and nothing of
the emulator:

- :class:`DiskImage`: a read-only host file (or block device) as a disk of 512-byte
  logical blocks. Reads go to the host with ``os.pread``; nothing is copied into
  memory. Reads that BLOCK_IO.ReadBlocks or DISK_IO.ReadDisk would refuse raise
  :class:`DiskError`, an :class:`~efistub.errors.EfiError` with the status they return.
- :func:`partition_table` / :func:`partitions`: MBR and GPT discovery, as firmware does
  it (GPT CRC32 checks, the backup header when the primary is bad, a protective MBR
  means GPT, MBR extended partitions).
- :func:`open_disk`: ``--disk FILE``, with one-line :class:`~efistub.errors.InputError`
  messages for what cannot be a disk image.
- :func:`fat_image_from_folder`, :func:`gpt_disk_with_esp`, :func:`esp_disk_from_folder`:
  ``--esp DIR`` as a disk, like QEMU's vvfat: a GPT disk whose ESP (at LBA 2048) holds
  a FAT file system (pyfatfs) with the folder's tree. Images are built in files, never in
  memory: file data goes from the host files to the image with ``copy_file_range``; a
  100 MiB ESP costs 100 MiB of temporary disk space and about 20 MiB of memory (pyfatfs
  holds the FAT as a Python list, and FAT32 below 260 MB has 512-byte clusters). The
  output is the same, byte for byte, for the same folder (names, contents, mtimes) and
  the same GUIDs or seed.
- :class:`FatVolume`: a FAT partition of a DiskImage as a read-only volume with
  :class:`efistub.volume.HostVolume`'s interface (the SIMPLE_FILE_SYSTEM protocol's
  backend), read through pyfatfs over the partition's byte range.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat as _stat
import tempfile
import uuid
import warnings
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .errors import EfiError, InputError
from .guids import ESP_PARTITION_TYPE, Guid
from .layouts import disk as layout
from .layouts.disk import BLOCK_SIZE
from .memory import ucs2_text
from .status import Status
from .volume import ROOT, SEPARATOR, Entry, VolumeError, VolumeInfo, _fold, _parse

ESP_TYPE = ESP_PARTITION_TYPE  # GPT type of an EFI system partition
UNUSED_TYPE = Guid(int=0)

ESP_START_LBA = 2048  # where the built disk's ESP starts (1 MiB, as partitioning tools align it)
ESP_NAME = "EFI System Partition"
FAT_LABEL = "EFISTUB"

MIB = 1 << 20
FAT16_MIN_SIZE = 8 * MIB  # pyfatfs makes FAT16 from 4.1 MB; 8 MiB leaves room for its 2 KiB clusters
FAT32_MIN_SIZE = 33 * MIB  # below ~32.5 MB a FAT32 volume has fewer than 65525 clusters: not FAT32
FAT32_MAX_SIZE = 32 << 30  # the largest volume pyfatfs formats (16 KiB clusters)
FAT_MAX_FILE = 0xFFFFFFFF
FAT_MAX_NAME = 255  # UTF-16 code units of a long name
FAT16_ROOT_ENTRIES = 512  # what pyfatfs gives a FAT16 root directory

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FAT_EARLIEST = datetime(1980, 1, 1, tzinfo=timezone.utc)
_FAT_LATEST = datetime(2107, 12, 31, 23, 59, 58, tzinfo=timezone.utc)
_FAT_NAME_ILLEGAL = frozenset('"*/:<>?\\|')
_MAX_READ = 1 << 24  # bytes per os.pread call
_COPY_CHUNK = 1 << 20

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


class DiskError(EfiError):
    """A disk read failed: ``.status`` is what BLOCK_IO / DISK_IO return for it.

    - EFI_INVALID_PARAMETER: an LBA or byte range not on the disk (ReadBlocks, ReadDisk),
      a negative LBA, count, offset or size;
    - EFI_BAD_BUFFER_SIZE: a ReadBlocks buffer size that is not a multiple of the block size;
    - EFI_DEVICE_ERROR: the host read failed or came back short (the file shrank).
    """

    def __init__(self, status: Status, message: str):
        super().__init__(status, message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.status.name}: {self.message}"


# -- the disk ------------------------------------------------------------------------------------


class _Fd:
    """A host file descriptor that closes when the last DiskImage using it goes."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass


class DiskImage:
    """A read-only disk of 512-byte blocks backed by a host file, read with ``os.pread``.

    ``DiskImage(path)`` opens the file (or block device) read-only. A file whose size is
    not a multiple of 512 ends at its last whole block (:func:`open_disk` refuses such
    files). :meth:`region` gives a view of a range of blocks (a partition) that reads
    the same file. ``notes`` collects remarks about the disk (from :func:`open_disk` and
    the ESP builder) for reports.
    """

    block_size = BLOCK_SIZE
    read_only = True

    def __init__(self, path: str | os.PathLike, *, name: str | None = None):
        path = os.fspath(path)
        try:
            fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_BINARY)
        except OSError as e:
            raise InputError(path, f"cannot open: {e.strerror or e}") from None
        try:
            size = os.lseek(fd, 0, os.SEEK_END)  # also right for block devices, whose st_size is 0
        except OSError as e:
            os.close(fd)
            raise InputError(path, f"cannot find the size: {e.strerror or e}") from None
        self._setup(_Fd(fd), path, name or path, 0, size // BLOCK_SIZE, size)

    def _setup(self, fd: _Fd, path: str, name: str, base: int, blocks: int, file_size: int) -> None:
        self._fd = fd
        self.path = path
        self.name = name
        self._base = base  # byte offset of block 0 in the host file
        self.blocks = blocks
        self.file_size = file_size  # the host file's size (of the whole file, also for a region)
        self.notes: list[str] = []
        self.partition_info: Partition | None = None  # set on the region of a partition (partition())
        self._table = None

    @classmethod
    def _view(cls, parent: "DiskImage", name: str, base: int, blocks: int) -> "DiskImage":
        view = cls.__new__(cls)
        view._setup(parent._fd, parent.path, name, base, blocks, parent.file_size)
        return view

    # --- geometry ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The disk's size in bytes (whole blocks)."""
        return self.blocks * BLOCK_SIZE

    @property
    def last_lba(self) -> int:
        """EFI_BLOCK_IO_MEDIA.LastBlock: the last LBA (-1 for an empty disk)."""
        return self.blocks - 1

    def region(self, start_lba: int, blocks: int, name: str | None = None) -> "DiskImage":
        """A disk made of ``blocks`` blocks of this one from ``start_lba`` (a partition's
        BLOCK_IO: its LBA 0 is ``start_lba`` here). It shares the host file."""
        if start_lba < 0 or blocks < 0 or start_lba + blocks > self.blocks:
            raise DiskError(Status.EFI_INVALID_PARAMETER,
                            f"{self.name}: blocks {start_lba}+{blocks} are not on the disk ({self.blocks} blocks)")
        return DiskImage._view(self, name or f"{self.name}[{start_lba}+{blocks}]",
                               self._base + start_lba * BLOCK_SIZE, blocks)

    def partition(self, partition: "Partition") -> "DiskImage":
        """The region of a partition of this disk (a logical partition's BLOCK_IO); its
        ``partition_info`` is ``partition``."""
        view = self.region(partition.start_lba, partition.blocks, f"{self.name} partition {partition.number}")
        view.partition_info = partition
        return view

    # --- reading ----------------------------------------------------------------------

    def read(self, lba: int, count: int = 1) -> bytes:
        """``count`` blocks from ``lba``. Blocks not on the disk are EFI_INVALID_PARAMETER."""
        if lba < 0 or count < 0:
            raise DiskError(Status.EFI_INVALID_PARAMETER, f"{self.name}: negative LBA or count ({lba}, {count})")
        if count == 0:
            return b""
        if lba > self.last_lba or lba + count > self.blocks:
            raise DiskError(Status.EFI_INVALID_PARAMETER,
                            f"{self.name}: blocks {lba}..{lba + count - 1} are beyond the last LBA {self.last_lba}")
        return self._pread(lba * BLOCK_SIZE, count * BLOCK_SIZE)

    def read_blocks(self, lba: int, buffer_size: int) -> bytes:
        """BLOCK_IO.ReadBlocks: ``buffer_size`` bytes from ``lba``, checked in EDK2's order
        (0 bytes succeed, a size not a multiple of the block size is EFI_BAD_BUFFER_SIZE,
        then the range must be on the disk: EFI_INVALID_PARAMETER)."""
        if buffer_size == 0:
            return b""
        if buffer_size < 0:
            raise DiskError(Status.EFI_INVALID_PARAMETER, f"{self.name}: negative buffer size {buffer_size}")
        if buffer_size % BLOCK_SIZE:
            raise DiskError(Status.EFI_BAD_BUFFER_SIZE,
                            f"{self.name}: buffer size {buffer_size} is not a multiple of the block size {BLOCK_SIZE}")
        return self.read(lba, buffer_size // BLOCK_SIZE)

    def read_bytes(self, offset: int, size: int) -> bytes:
        """DISK_IO.ReadDisk: ``size`` bytes at byte ``offset``, any alignment; a range not on
        the disk is EFI_INVALID_PARAMETER."""
        if offset < 0 or size < 0:
            raise DiskError(Status.EFI_INVALID_PARAMETER, f"{self.name}: negative offset or size ({offset}, {size})")
        if offset + size > self.size:
            raise DiskError(Status.EFI_INVALID_PARAMETER,
                            f"{self.name}: bytes {offset}+{size} are beyond the end of the disk ({self.size} bytes)")
        if size == 0:
            return b""
        return self._pread(offset, size)

    def _pread(self, offset: int, size: int) -> bytes:
        fd = self._fd.fd
        if fd < 0:
            raise DiskError(Status.EFI_DEVICE_ERROR, f"{self.name}: the disk is closed")
        position = self._base + offset
        chunks = []
        try:
            while size > 0:
                chunk = os.pread(fd, min(size, _MAX_READ), position)
                if not chunk:
                    raise DiskError(Status.EFI_DEVICE_ERROR,
                                    f"{self.name}: short read at byte {position} of {self.path} (the file shrank?)")
                chunks.append(chunk)
                position += len(chunk)
                size -= len(chunk)
        except OSError as e:
            raise DiskError(Status.EFI_DEVICE_ERROR, f"{self.name}: read error at byte {position}: {e.strerror or e}") \
                from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # --- the partition table ------------------------------------------------------------

    @property
    def table(self) -> "PartitionTable":
        """The partition table (:func:`partition_table`), read once."""
        if self._table is None:
            self._table = partition_table(self)
        return self._table

    def close(self) -> None:
        """Close the host file (for this disk and every region of it)."""
        self._fd.close()

    def __enter__(self) -> "DiskImage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DiskImage {self.name} {self.blocks} blocks>"


# -- partitions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """One partition, as PARTITION_INFO and the HardDrive device-path node describe it.

    ``number`` is 1-based: the GPT entry's index + 1, the MBR slot (1-4), or 5 and up for
    MBR logical partitions in the order of their EBR chain (as Linux numbers them).
    ``type`` is the GPT partition type GUID or the MBR OS type byte. ``unique_guid`` is
    the GPT UniquePartitionGUID (None on MBR, where the disk's ``mbr_signature`` and
    ``number`` identify a partition). ``attributes`` are the GPT attribute bits, or the
    MBR boot indicator. ``disk_guid`` / ``mbr_signature`` are the disk's. ``raw`` is the
    partition's record as on disk, for EFI_PARTITION_INFO_PROTOCOL: the 128-byte GPT entry
    (its first SizeOfPartitionEntry bytes) or the 16-byte MBR record (for a logical
    partition the one in its EBR, whose StartingLBA counts from that EBR).
    """

    number: int
    start_lba: int
    blocks: int
    scheme: str  # "gpt" or "mbr"
    type: Guid | int
    unique_guid: Guid | None = None
    name: str = ""
    attributes: int = 0
    disk_guid: Guid | None = None
    mbr_signature: int | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def end_lba(self) -> int:
        """The last LBA (inclusive)."""
        return self.start_lba + self.blocks - 1

    @property
    def size(self) -> int:
        return self.blocks * BLOCK_SIZE

    @property
    def is_esp(self) -> bool:
        """An EFI system partition: GPT type C12A7328-F81F-11D2-BA4B-00A0C93EC93B or MBR type 0xEF."""
        if self.scheme == "gpt":
            return self.type == ESP_TYPE
        return self.type == layout.MBR_TYPE_ESP

    # HardDrive media device path (UEFI 2.10 §10.3.5.1)
    @property
    def mbr_type(self) -> int:
        """The HD node's MBRType: 1 for an MBR disk, 2 for GPT."""
        return 2 if self.scheme == "gpt" else 1

    @property
    def signature_type(self) -> int:
        """The HD node's SignatureType: 2 (a GUID) on GPT, 1 (the 32-bit MBR signature), or 0 (none)."""
        if self.scheme == "gpt":
            return 2
        return 1 if self.mbr_signature else 0

    @property
    def signature(self) -> bytes:
        """The HD node's 16-byte PartitionSignature."""
        if self.scheme == "gpt":
            return self.unique_guid.to_bytes()
        return (self.mbr_signature or 0).to_bytes(4, "little") + bytes(12)


@dataclass
class PartitionTable:
    """What partition discovery found. ``scheme`` is "gpt", "mbr" or "none" (no partition
    table: a raw file system or nothing known). ``gpt_header`` says which GPT header was
    used ("primary" or "backup"). ``notes`` say what was wrong or skipped."""

    scheme: str
    partitions: list[Partition] = field(default_factory=list)
    disk_guid: Guid | None = None
    mbr_signature: int | None = None
    gpt_header: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def esp(self) -> Partition | None:
        """The first EFI system partition, if any."""
        return next((p for p in self.partitions if p.is_esp), None)


def partitions(disk: DiskImage) -> list[Partition]:
    """The partitions of ``disk`` (see :func:`partition_table`)."""
    return partition_table(disk).partitions


def partition_table(disk: DiskImage) -> PartitionTable:
    """Discover the partition table of ``disk``, as UEFI firmware does (UEFI 2.10 §5).

    - LBA 0 with the 0x55AA signature and a partition of type 0xEE (a protective or
      hybrid MBR) means GPT. The primary GPT header (LBA 1) is used when its signature,
      header CRC32, MyLBA and partition-entry CRC32 are right; else the backup header at
      the last LBA. Both bad: scheme "gpt" with no partitions, and a note.
    - A valid GPT at LBA 1 without any MBR is used too (with a note).
    - Otherwise LBA 0 with 0x55AA is an MBR: its four slots and the logical partitions of
      extended ones. Entries off the disk or overlapping others are skipped (noted).
      A FAT boot sector (also ending in 0x55AA) whose "table" is not one is scheme
      "none": a superfloppy.
    """
    if disk.blocks < 1:
        return PartitionTable("none", notes=["the disk is empty"])
    mbr = layout.Mbr.parse(disk.read(0))
    has_signature = mbr.Signature == layout.MBR_SIGNATURE
    protective = has_signature and any(p.OSType == layout.MBR_TYPE_PROTECTIVE for p in mbr.Partition)
    if protective:
        table = _gpt(disk)
        if table is not None:
            return table
        return PartitionTable("gpt", notes=["protective MBR, but neither the primary nor the backup GPT header "
                                            "is valid: " + "; ".join(_gpt_problems(disk))])
    if has_signature:
        table = _mbr(disk, mbr)
        if table is not None:
            return table
    table = _gpt(disk)
    if table is not None:
        table.notes.insert(0, "a GPT without a protective MBR")
        return table
    if has_signature:
        return PartitionTable("none", notes=["a FAT boot sector without a partition table (superfloppy)"])
    return PartitionTable("none", notes=["neither an MBR (no 0x55AA signature) nor a GPT"])


# --- GPT ---


def _crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _gpt_header_at(disk: DiskImage, lba: int):
    """(header, entry array bytes) of a valid GPT header at ``lba``, else a str: the problem."""
    if lba < 1 or lba > disk.last_lba:
        return f"LBA {lba} is not on the disk"
    raw = disk.read(lba)
    header = layout.GptHeader.parse(raw)
    if header.Signature != layout.GPT_SIGNATURE:
        return f"no 'EFI PART' signature at LBA {lba}"
    if not layout.GPT_HEADER_SIZE <= header.HeaderSize <= BLOCK_SIZE:
        return f"header size {header.HeaderSize} at LBA {lba}"
    crc_at = layout.GPT_HEADER_CRC_OFFSET
    zeroed = raw[:crc_at] + bytes(4) + raw[crc_at + 4:header.HeaderSize]
    if _crc32(zeroed) != header.HeaderCRC32:
        return f"bad header CRC32 at LBA {lba}"
    if header.MyLBA != lba:
        return f"the header at LBA {lba} says it is at LBA {header.MyLBA}"
    size, count = header.SizeOfPartitionEntry, header.NumberOfPartitionEntries
    if size < layout.GPT_ENTRY_SIZE or size % layout.GPT_ENTRY_SIZE or size & (size - 1):
        return f"partition entry size {size} at LBA {lba}"
    array = size * count
    if array > 16 * MIB:
        return f"{count} partition entries of {size} bytes at LBA {lba}: too many"
    first, last = header.FirstUsableLBA, header.LastUsableLBA
    if first > last + 1 or last > disk.last_lba:
        return f"usable LBAs {first}..{last} at LBA {lba}"
    entry_blocks = -(-array // BLOCK_SIZE)
    start = header.PartitionEntryLBA
    if start < 1 or start + entry_blocks > disk.blocks:
        return f"partition entries at LBA {start}+{entry_blocks} are not on the disk"
    entries = disk.read_bytes(start * BLOCK_SIZE, array)
    if _crc32(entries) != header.PartitionEntryArrayCRC32:
        return f"bad partition entry array CRC32 (header at LBA {lba})"
    return header, entries


def _gpt_problems(disk: DiskImage) -> list[str]:
    found = [_gpt_header_at(disk, 1)]
    if disk.last_lba > 1:
        found.append(_gpt_header_at(disk, disk.last_lba))
    return [f if isinstance(f, str) else "valid" for f in found]


def _gpt(disk: DiskImage) -> PartitionTable | None:
    notes = []
    primary = _gpt_header_at(disk, 1)
    backup = _gpt_header_at(disk, disk.last_lba) if disk.last_lba > 1 else "the disk has no last LBA for a backup"
    if not isinstance(primary, str):
        (header, entries), used = primary, "primary"
        if isinstance(backup, str):
            notes.append(f"backup GPT header not valid ({backup}); using the primary")
    elif not isinstance(backup, str):
        (header, entries), used = backup, "backup"
        notes.append(f"primary GPT header not valid ({primary}); using the backup at LBA {disk.last_lba}")
    else:
        return None
    disk_guid = Guid.from_bytes(header.DiskGUID)
    found: list[Partition] = []
    size = header.SizeOfPartitionEntry
    for index in range(header.NumberOfPartitionEntries):
        entry = layout.GptPartitionEntry.parse(entries[index * size:index * size + layout.GPT_ENTRY_SIZE])
        kind = Guid.from_bytes(entry.PartitionTypeGUID)
        if kind == UNUSED_TYPE:
            continue
        number = index + 1
        start, end = entry.StartingLBA, entry.EndingLBA
        if not _fits(found, notes, f"GPT entry {number}", start, end, (header.FirstUsableLBA, header.LastUsableLBA),
                     "outside the usable LBAs"):
            continue
        name = ucs2_text(entry.PartitionName)
        found.append(Partition(number=number, start_lba=start, blocks=end - start + 1, scheme="gpt", type=kind,
                               unique_guid=Guid.from_bytes(entry.UniquePartitionGUID), name=name,
                               attributes=entry.Attributes, disk_guid=disk_guid,
                               raw=entries[index * size:index * size + layout.GPT_ENTRY_SIZE]))
    return PartitionTable("gpt", found, disk_guid=disk_guid, gpt_header=used, notes=notes)


def _fits(found: list[Partition], notes: list[str], what: str, start: int, end: int, bounds: tuple[int, int],
          where: str) -> bool:
    """Whether a partition at LBAs start..end lies within ``bounds`` and overlaps no partition ``found``
    so far; if not, a note says why ``what`` is skipped."""
    low, high = bounds
    if start > end or start < low or end > high:
        notes.append(f"{what}: LBAs {start}..{end} are {where} (LBAs {low}..{high}); skipped")
        return False
    overlap = next((p for p in found if start <= p.end_lba and p.start_lba <= end), None)
    if overlap is not None:
        notes.append(f"{what}: LBAs {start}..{end} overlap partition {overlap.number}; skipped")
        return False
    return True


# --- MBR ---


def _looks_like_fat_boot_sector(sector: bytes) -> bool:
    jump_ok = (sector[0] == 0xEB and sector[2] == 0x90) or sector[0] == 0xE9
    bytes_per_sector = int.from_bytes(sector[11:13], "little")
    per_cluster = sector[13]
    reserved = int.from_bytes(sector[14:16], "little")
    return (jump_ok and bytes_per_sector in (512, 1024, 2048, 4096) and per_cluster
            and not per_cluster & (per_cluster - 1) and reserved >= 1 and sector[16] >= 1)


def _mbr(disk: DiskImage, mbr) -> PartitionTable | None:
    """The MBR's partitions; None when LBA 0 is a FAT boot sector, not a partition table."""
    signature = mbr.UniqueMBRDiskSignature
    used = [(slot + 1, p) for slot, p in enumerate(mbr.Partition) if p.OSType and p.SizeInLBA]
    sane = all(p.BootIndicator in (0, layout.MBR_BOOT_INDICATOR_ACTIVE) and p.StartingLBA >= 1 for _, p in used)
    if (not used or not sane) and _looks_like_fat_boot_sector(disk.read(0)):
        return None
    notes: list[str] = []
    found: list[Partition] = []

    def add(number: int, start: int, blocks: int, record, container=None) -> None:
        kind, boot = record.OSType, record.BootIndicator
        end = start + blocks - 1
        if not _fits(found, notes, f"MBR partition {number}", start, end, container or (1, disk.last_lba),
                     "not on the extended partition" if container else "not on the disk"):
            return
        found.append(Partition(number=number, start_lba=start, blocks=blocks, scheme="mbr", type=kind,
                               attributes=boot, mbr_signature=signature,
                               raw=layout.MbrPartitionRecord.build(record)))

    extended = []
    for number, p in used:
        if p.OSType in layout.MBR_TYPES_EXTENDED:
            end = p.StartingLBA + p.SizeInLBA - 1
            if end > disk.last_lba:
                notes.append(f"MBR partition {number}: extended partition LBAs {p.StartingLBA}..{end} "
                             f"are not on the disk; skipped")
            else:
                extended.append((number, p.StartingLBA, end))
            continue
        add(number, p.StartingLBA, p.SizeInLBA, p)
    logical = 5
    for number, ext_start, ext_end in extended[:1]:  # one extended partition per disk, as DOS allows
        ebr_lba, seen = ext_start, set()
        while ebr_lba and len(seen) < 256:
            if ebr_lba in seen or not ext_start <= ebr_lba <= ext_end:
                notes.append(f"MBR extended partition {number}: EBR chain leaves the partition or loops at "
                             f"LBA {ebr_lba}; stopped")
                break
            seen.add(ebr_lba)
            ebr = layout.Mbr.parse(disk.read(ebr_lba))
            if ebr.Signature != layout.MBR_SIGNATURE:
                notes.append(f"MBR extended partition {number}: no 0x55AA signature in the EBR at LBA {ebr_lba}")
                break
            first, link = ebr.Partition[0], ebr.Partition[1]
            if first.OSType and first.SizeInLBA:
                add(logical, ebr_lba + first.StartingLBA, first.SizeInLBA, first, container=(ext_start, ext_end))
                logical += 1
            ebr_lba = ext_start + link.StartingLBA if link.OSType and link.StartingLBA else 0
    if len(extended) > 1:
        notes.append(f"{len(extended)} extended partitions; only the first one's logical partitions are read")
    found.sort(key=lambda p: p.number)
    return PartitionTable("mbr", found, mbr_signature=signature, notes=notes)


# -- --disk FILE ---------------------------------------------------------------------------------

_FORMAT_MAGIC = [  # (offset, magic, name): image formats that are not raw disks
    (0, b"QFI\xfb", "a qcow2 image"),
    (0, b"KDMV", "a VMDK image"),
    (0, b"vhdxfile", "a VHDX image"),
    (0x40, b"\x7f\x10\xda\xbe", "a VirtualBox VDI image"),
]


def open_disk(path: str | os.PathLike) -> DiskImage:
    """Open ``--disk FILE``: a raw disk image with a GPT or an MBR.

    Raises :class:`~efistub.errors.InputError` with a one-line reason for a missing file, a
    directory, an empty file, a size that is not a multiple of 512 bytes, a qcow2 / VMDK /
    VHDX / VDI image, a disk of 4096-byte sectors, a file with no partition table (a raw
    file system, a "superfloppy"), and a protective MBR without a valid GPT. What
    discovery noted (a bad primary GPT header, skipped entries) is in ``disk.notes``.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "no such file (the disk image)") from None
    except OSError as e:
        raise InputError(path, f"cannot open: {e.strerror or e}") from None
    if _stat.S_ISDIR(st.st_mode):
        raise InputError(path, "is a directory, not a disk image (serve a folder with --esp DIR)")
    if not (_stat.S_ISREG(st.st_mode) or _stat.S_ISBLK(st.st_mode)):
        raise InputError(path, "is not a regular file or a block device")
    disk = DiskImage(path)
    try:
        if disk.file_size == 0:
            raise InputError(path, "is empty, not a disk image")
        if disk.file_size % BLOCK_SIZE:
            raise InputError(path, f"size {disk.file_size} bytes is not a multiple of {BLOCK_SIZE}-byte blocks")
        head = disk.read_bytes(0, min(disk.size, 4096 + 8))
        for offset, magic, what in _FORMAT_MAGIC:
            if head[offset:offset + len(magic)] == magic:
                raise InputError(path, f"is {what}, not a raw disk image (convert it: qemu-img convert -O raw)")
        table = disk.table
        if table.scheme == "none" and head[4096:4104] == layout.GPT_SIGNATURE:
            raise InputError(path, "has a GPT for 4096-byte sectors; efistub's disks have 512-byte blocks")
        if table.scheme == "none":
            raise InputError(path, f"has no partition table: {table.notes[-1]}; give a GPT or MBR disk image, "
                                   f"or a folder with --esp")
        if table.scheme == "gpt" and table.gpt_header is None:
            raise InputError(path, table.notes[-1])
        disk.notes.extend(table.notes)
    except InputError:
        disk.close()
        raise
    except DiskError as e:
        disk.close()
        raise InputError(path, f"cannot read: {e.message}") from None
    return disk


# -- building an ESP disk from a folder ----------------------------------------------------------


def guid_from_seed(seed: int | str, purpose: str) -> Guid:
    """A GUID that depends only on ``seed`` and ``purpose`` ("disk", "esp"): a name-based
    (version 5) UUID, so built disks are the same from run to run."""
    return Guid(int=uuid.uuid5(uuid.NAMESPACE_URL, f"efistub:{purpose}:{seed}").int)


@dataclass
class FatImage:
    """A FAT file system built in a host file: it is ``size`` bytes at byte ``offset`` of
    ``path``. ``fat_type`` is 16 or 32. ``notes`` say what of the folder was left out."""

    path: str
    offset: int
    size: int
    fat_type: int
    notes: list[str] = field(default_factory=list)

    @property
    def blocks(self) -> int:
        return self.size // BLOCK_SIZE

    def read(self) -> bytes:
        """The whole image (for small images and tests)."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read(self.size)


@dataclass
class _Node:
    name: str
    host: str  # the host path to read (symlinks resolved)
    is_dir: bool
    size: int
    mtime_ns: int
    children: list["_Node"] = field(default_factory=list)
    entry: object = None  # its pyfatfs FATDirectoryEntry, while building


def _fat_name_problem(name: str) -> str | None:
    if any(c < " " or c in _FAT_NAME_ILLEGAL for c in name):
        return 'a character FAT names cannot hold (control, " * / : < > ? \\ |)'
    if name.endswith((".", " ")):
        return "a trailing dot or space, which FAT drops"
    if any("\ud800" <= c <= "\udfff" for c in name):
        return "bytes that are not UTF-8"
    if len(name.encode("utf-16-le", "surrogatepass")) // 2 > FAT_MAX_NAME:
        return f"more than {FAT_MAX_NAME} characters"
    return None


def _printable(text: str) -> str:
    """A host name for a note: undecodable bytes (lone surrogates) as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _lfn_entry(name: str, short):
    """The long-name entries of ``name`` for the short name ``short`` (an EightDotThree):
    as pyfatfs's make_lfn_entry, which refuses names over 127 characters (it counts the
    255-character limit in UTF-16 bytes)."""
    from pyfatfs.FATDirectoryEntry import FATDirectoryEntry, FATLongDirectoryEntry

    raw = name.encode("utf-16-le")
    if len(raw) % 26:
        raw += b"\0\0"
        raw += b"\xff" * (-len(raw) % 26)
    entry = FATLongDirectoryEntry()
    checksum = short.checksum()
    count = len(raw) // 26
    for index in range(count):
        piece = raw[index * 26:(index + 1) * 26]
        entry.add_lfn_entry(LDIR_Ord=(index + 1) | (0x40 if index == count - 1 else 0), LDIR_Name1=piece[:10],
                            LDIR_Attr=FATDirectoryEntry.ATTR_LONG_NAME, LDIR_Type=0, LDIR_Chksum=checksum,
                            LDIR_Name2=piece[10:22], LDIR_FstClusLO=0, LDIR_Name3=piece[22:])
    return entry


def _scan(folder: str) -> tuple[_Node, list[str]]:
    """The folder's tree of regular files and directories, sorted as HostVolume lists
    them, and notes on what was left out."""
    root_real = os.path.realpath(folder)
    notes: list[str] = []

    def inside(real: str) -> bool:
        return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)

    def walk(node: _Node, shown: str, ancestors: frozenset) -> None:
        try:
            names = sorted(os.listdir(node.host), key=lambda n: (_fold(n), n))
        except OSError as e:
            raise InputError(node.host, f"cannot list: {e.strerror or e}") from None
        taken: dict[str, str] = {}
        for name in names:
            where = _printable(f"{shown}/{name}" if shown else name)
            problem = _fat_name_problem(name)
            if problem:
                notes.append(f"{where}: skipped: the name has {problem}")
                continue
            key = _fold(name)
            if key in taken:
                notes.append(f"{where}: skipped: differs only in case from {taken[key]!r}, which FAT cannot tell apart")
                continue
            host = os.path.join(node.host, name)
            try:
                st = os.lstat(host)
                if _stat.S_ISLNK(st.st_mode):
                    real = os.path.realpath(host)
                    if not inside(real):
                        notes.append(f"{where}: refused: a symbolic link to {real}, outside the folder")
                        continue
                    try:
                        st = os.stat(real)
                    except OSError:
                        notes.append(f"{where}: skipped: a dangling or looping symbolic link")
                        continue
                    host = real
            except OSError as e:
                raise InputError(host, f"cannot look up: {e.strerror or e}") from None
            if _stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(host)
                if real in ancestors:
                    notes.append(f"{where}: skipped: a symbolic link to a directory that contains it (a loop)")
                    continue
                child = _Node(name, host, True, 0, st.st_mtime_ns)
                walk(child, where, ancestors | {real})
            elif _stat.S_ISREG(st.st_mode):
                if st.st_size > FAT_MAX_FILE:
                    notes.append(f"{where}: skipped: {st.st_size} bytes, more than a FAT file can hold (4 GiB - 1)")
                    continue
                child = _Node(name, host, False, st.st_size, st.st_mtime_ns)
            else:
                kind = ("a FIFO" if _stat.S_ISFIFO(st.st_mode) else "a socket" if _stat.S_ISSOCK(st.st_mode)
                        else "a device node" if _stat.S_ISCHR(st.st_mode) or _stat.S_ISBLK(st.st_mode)
                        else "a special file")
                notes.append(f"{where}: skipped: {kind}")
                continue
            taken[key] = name
            node.children.append(child)

    try:
        st = os.stat(folder)
    except OSError as e:
        raise InputError(folder, f"cannot open the ESP folder: {e.strerror or e}") from None
    if not _stat.S_ISDIR(st.st_mode):
        raise InputError(folder, "not a directory (the ESP folder must be one)")
    root = _Node("", root_real, True, 0, st.st_mtime_ns)
    walk(root, "", frozenset({root_real}))
    return root, notes


def _nodes(node: _Node):
    yield node
    for child in node.children:
        yield from _nodes(child)


def _dir_bytes(node: _Node, is_root: bool) -> int:
    """Directory entry bytes of a directory: dot entries (or the volume label), and each
    child's short entry with the long-name entries it may need."""
    slots = 1 if is_root else 2
    for child in node.children:
        units = len(child.name.encode("utf-16-le", "surrogatepass")) // 2
        slots += 1 + -(-(units + 1) // 13)
    return slots * 32


def _fat_size(root: _Node, fat_type: int) -> int:
    """Bytes for a FAT volume of this tree: its clusters (counted at 4 KiB, the largest
    cluster below 8 GiB), the FATs and reserved sectors, and slack (1/16 and 1 MiB)."""
    cluster = 4096
    data = 0
    for node in _nodes(root):
        if node.is_dir:
            if node is not root or fat_type == 32:
                data += max(1, -(-_dir_bytes(node, node is root) // cluster)) * cluster
        else:
            data += -(-node.size // cluster) * cluster
    if data > (8 << 30):  # larger volumes have larger clusters: count at the largest, 16 KiB
        data *= 4
    clusters = data // 512  # the most clusters it can take (512-byte clusters)
    overhead = 2 * (clusters + 2) * (fat_type // 8) + 32 * BLOCK_SIZE + FAT16_ROOT_ENTRIES * 32
    want = data + overhead
    want += want // 16 + MIB
    return -(-want // MIB) * MIB


_SHORT_NAME_INVALID = frozenset(b'"*+,./:;<=>?[\\]|') | frozenset(range(0x20))


def _short_name(name: str, taken: set[str], counters: dict, encoding: str) -> str:
    """The 8.3 name of ``name`` in a directory whose short names are ``taken``.

    An upper-case name that is a valid 8.3 name is its own short name; any other gets its
    characters upper-cased and mapped (spaces dropped, invalid ones and extra dots as
    ``_``) and, when that loses nothing and is free, keeps it (``Boot.efi``: ``BOOT.EFI``),
    else a numeric tail (``LONGNA~1.CON``), counted per prefix. pyfatfs's own generator
    tries every tail against a list of all the names, each time: cubic in a large
    directory, 10 minutes for 5000 similar names.
    """
    def clean(text: str) -> str:
        raw = text.encode(encoding, "replace")
        return bytes(0x5F if b in _SHORT_NAME_INVALID else b for b in raw if b != 0x20).decode(encoding)

    upper = name.upper()
    base, ext = os.path.splitext(upper)
    if base.startswith(".") or not base:  # ".hidden": splitext keeps the dot in the base
        base, ext = upper, ""
    base, ext = clean(base) or "_", clean(ext[1:])
    lossless = len(base) <= 8 and len(ext) <= 3 and base + ("." + ext if ext else "") == upper
    dot_ext = "." + ext[:3] if ext else ""
    if lossless and upper not in taken:
        return upper
    key = (base[:6], dot_ext)
    number = counters.get(key, 1)
    while True:
        tail = f"~{number}"
        candidate = base[:8 - len(tail)] + tail + dot_ext
        number += 1
        if candidate not in taken:
            counters[key] = number
            return candidate


class _RootFull(Exception):
    """The FAT16 root directory cannot hold the folder's top level."""


def _fat_datetime(ns: int):
    """(date, time, tenths) of a host time, in UTC, clamped to FAT's 1980..2107."""
    try:
        moment = _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        moment = _FAT_LATEST if ns > 0 else _FAT_EARLIEST
    moment = min(max(moment, _FAT_EARLIEST), _FAT_LATEST)
    date = (moment.year - 1980) << 9 | moment.month << 5 | moment.day
    time = moment.hour << 11 | moment.minute << 5 | moment.second // 2
    tenths = (moment.second % 2) * 100 + moment.microsecond // 10000
    return date, time, tenths


def _set_times(entry, ns: int) -> None:
    date, time, tenths = _fat_datetime(ns)
    entry.crtdate = entry.wrtdate = entry.lstaccessdate = date
    entry.crttime = entry.wrttime = time
    entry.crttimetenth = tenths


def _copy_range(src: int, dst: int, length: int, src_offset: int, dst_offset: int, state: dict) -> int:
    """Copy ``length`` bytes between host files (copy_file_range when it works); the bytes copied."""
    done = 0
    while done < length:
        want = length - done
        if state.get("copy_file_range", hasattr(os, "copy_file_range")):
            try:
                n = os.copy_file_range(src, dst, want, src_offset + done, dst_offset + done)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM,
                                   errno.ETXTBSY):
                    raise
                state["copy_file_range"] = False
                continue
        else:
            chunk = os.pread(src, min(want, _COPY_CHUNK), src_offset + done)
            n = len(chunk)
            view = memoryview(chunk)
            position = dst_offset + done
            while view:
                written = os.pwrite(dst, view, position)
                view, position = view[written:], position + written
        if n == 0:
            break
        done += n
    return done


def _runs(clusters: list[int]):
    """(first cluster, count) of each run of consecutive clusters."""
    start = previous = clusters[0]
    for cluster in clusters[1:]:
        if cluster != previous + 1:
            yield start, previous - start + 1
            start = cluster
        previous = cluster
    yield start, previous - start + 1


def _build_fat(root: _Node, path: str, offset: int, size: int, fat_type: int, volume_id: int, label: str,
               hidden_sectors: int) -> None:
    """Format ``size`` bytes at ``offset`` of ``path`` with pyfatfs and write the tree into it.

    pyfatfs makes the file system and the directory entries and allocates the clusters
    (the short names are :func:`_short_name`'s, the long-name entries :func:`_lfn_entry`'s);
    file data is copied from the host files straight into the clusters pyfatfs allocated
    (``copy_file_range``), never through Python memory. Every timestamp is the host
    file's mtime, in UTC.
    """
    from pyfatfs import PyFATException
    from pyfatfs.EightDotThree import EightDotThree
    from pyfatfs.FATDirectoryEntry import FATDirectoryEntry
    from pyfatfs.FSInfo import FSInfo
    from pyfatfs.PyFat import PyFat

    fs = PyFat(offset=offset)
    fs.mkfs(path, fat_type, size=size, volume_id=volume_id, label=label)  # leaves the file system open
    try:
        bpb = fs.bpb_header
        bpb["BPB_HiddSec"] = hidden_sectors  # the sectors before the partition, written back at close
        bpb["BPB_SecPerTrk"], bpb["BPB_NumHeads"] = 63, 255  # a nominal LBA geometry (pyfatfs leaves 0: mtools refuses)
        # mkfs leaves the FAT16 root directory out of its in-memory first data sector (a
        # reopened file system has it right): recompute it from the boot sector
        fat_sectors = bpb["BPB_FATSz16"] or bpb["BPB_FATSz32"]
        root_sectors = -(-bpb["BPB_RootEntCnt"] * 32 // bpb["BPB_BytsPerSec"])
        fs.first_data_sector = bpb["BPB_RsvdSecCnt"] + bpb["BPB_NumFATs"] * fat_sectors + root_sectors
        total = bpb["BPB_TotSec16"] or bpb["BPB_TotSec32"]
        count = (total - fs.first_data_sector) // bpb["BPB_SecPerClus"]
        # mkfs keeps a FAT of 512 entries in memory: make it one entry per cluster (close writes it)
        fs.fat[count + 2:] = []
        fs.fat.extend([0] * (count + 2 - len(fs.fat)))
        utc = timezone.utc
        encoding = fs.encoding

        def new_entry(name83: bytes | str, attr: int, ns: int):
            short = EightDotThree(encoding=encoding)
            if isinstance(name83, bytes):
                short.set_byte_name(name83)
            else:
                short.set_str_name(name83)
            entry = FATDirectoryEntry.new(name=short, tz=utc, encoding=encoding, attr=attr)
            _set_times(entry, ns)
            return entry

        def populate(node: _Node, parent: _Node | None) -> None:
            directory = node.entry
            if parent is not None:
                directory.add_subdirectory(new_entry(b".          ", FATDirectoryEntry.ATTR_DIRECTORY, node.mtime_ns))
                directory.add_subdirectory(new_entry(b"..         ", FATDirectoryEntry.ATTR_DIRECTORY,
                                                     parent.mtime_ns))
            # names that are already short names first, so that no generated one takes theirs
            order = sorted(node.children, key=lambda c: not EightDotThree.is_8dot3_conform(c.name, encoding))
            dirs, files, _ = directory.get_entries()
            taken = {e.get_short_name() for e in dirs + files}
            counters: dict = {}
            for child in order:
                short = _short_name(child.name, taken, counters, encoding)
                taken.add(short)
                attr = FATDirectoryEntry.ATTR_DIRECTORY if child.is_dir else FATDirectoryEntry.ATTR_ARCHIVE
                entry = new_entry(short, attr, child.mtime_ns)
                if short != child.name:  # a long name keeps the case and the full name
                    entry.set_lfn_entry(_lfn_entry(child.name, entry.name))
                child.entry = entry
                directory.add_subdirectory(entry)
            # on disk in HostVolume's order: dot entries (or the label) first, then by name
            rank = {id(c.entry): i for i, c in enumerate(node.children)}
            directory._get_entries_raw().sort(key=lambda e: rank.get(id(e), -1))
            for child in node.children:
                if child.is_dir:
                    populate(child, node)

        root.entry = fs.root_dir
        for entry in fs.root_dir._get_entries_raw():  # the volume label pyfatfs wrote, with the time of now
            _set_times(entry, root.mtime_ns)
        populate(root, None)

        def raw_size(directory) -> int:
            return sum(len(bytes(e)) for e in directory._get_entries_raw())

        if fat_type == 16 and raw_size(fs.root_dir) > fs.root_dir_sectors * bpb["BPB_BytsPerSec"]:
            raise _RootFull()
        cluster_bytes = fs.bytes_per_cluster
        dirs = [n for n in _nodes(root) if n.is_dir and n is not root]
        files = [n for n in _nodes(root) if not n.is_dir and n.size]
        chains = {}
        for node in dirs:  # directories first, together at the start of the data area
            chain = fs.allocate_bytes(max(cluster_bytes, raw_size(node.entry)), erase=False)
            node.entry.set_cluster(chain[0])
        for node in files:
            chains[id(node)] = fs.allocate_bytes(node.size)
            node.entry.set_cluster(chains[id(node)][0])
            node.entry.filesize = node.size
        for node in dirs:  # the dot entries point at the directory and its parent (0: the root)
            raw = node.entry._get_entries_raw()
            raw[0].set_cluster(node.entry.get_cluster())
            parent = node.entry.get_parent_dir()
            raw[1].set_cluster(0 if parent is fs.root_dir else parent.get_cluster())

        out = os.open(path, os.O_WRONLY | _O_CLOEXEC | _O_BINARY)
        state: dict = {}
        try:
            for node in files:
                _copy_file(node, chains[id(node)], fs, out, offset, cluster_bytes, state)
            for node in _nodes(root):
                if node.is_dir:
                    fs.update_directory_entry(node.entry)
            if fat_type == 32:  # FSInfo: the free count and next free cluster, in both copies
                used = sum(1 for value in fs.fat[2:] if value)
                info = bytes(FSInfo(free_count=count - used, next_free=2 + used))
                for sector in (bpb["BPB_FSInfo"], bpb["BPB_BkBootSec"] + bpb["BPB_FSInfo"]):
                    os.pwrite(out, info, offset + sector * bpb["BPB_BytsPerSec"])
        finally:
            os.close(out)
    except PyFATException as e:
        if e.errno == errno.ENOSPC:
            raise _NoSpace() from None
        raise
    finally:
        fs.close()  # flushes the FATs and writes the boot sector (and its FAT32 backup)


class _NoSpace(Exception):
    """The volume was too small for the tree."""


def _copy_file(node: _Node, chain: list[int], fs, out: int, offset: int, cluster_bytes: int, state: dict) -> None:
    try:
        src = os.open(node.host, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)
    except OSError as e:
        raise InputError(node.host, f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(src)
        if not _stat.S_ISREG(st.st_mode) or st.st_size != node.size:
            raise InputError(node.host, "changed while efistub was building the ESP image")
        done = 0
        for first, run in _runs(chain):
            length = min(run * cluster_bytes, node.size - done)
            copied = _copy_range(src, out, length, done, offset + fs.get_data_cluster_address(first), state)
            if copied != length:
                raise InputError(node.host, "changed while efistub was building the ESP image")
            done += length
    except OSError as e:
        raise InputError(node.host, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(src)


def fat_image_from_folder(folder: str | os.PathLike, path: str | os.PathLike | None = None, *, offset: int = 0,
                          volume_id: int = 0x45535021, label: str = FAT_LABEL,
                          hidden_sectors: int = ESP_START_LBA) -> FatImage:
    """Build a FAT file system holding the tree of ``folder``, in a host file.

    The image goes to byte ``offset`` of ``path`` (which is created or truncated; a new
    temporary file when None, which the caller then owns and removes). A file, not
    bytes, so that a 100 MiB ESP never sits in memory (see the module docstring).

    FAT16 when the tree fits in less than 33 MiB (at least 8 MiB) and its top level in
    FAT16's 512 root entries, else FAT32 (at least 33 MiB); the size is the content
    plus slack. Files and directories keep their names and case (VFAT long names) and
    their mtimes (UTC). Left out, each with a note: symbolic links that leave the folder
    (refused, as HostVolume refuses them), dangling or looping ones, FIFOs, sockets and
    device nodes, files over 4 GiB - 1, names FAT cannot hold, and names that differ
    only in case from an earlier one. ``hidden_sectors`` is the boot sector's count of
    sectors before the volume (the ESP's start in :func:`gpt_disk_with_esp`).
    """
    folder = os.fspath(folder)
    root, notes = _scan(folder)
    if path is None:
        fd, path = tempfile.mkstemp(prefix="efistub-fat-", suffix=".img")
        os.close(fd)
    path = os.fspath(path)
    fat_type = 16
    size = max(FAT16_MIN_SIZE, _fat_size(root, 16))
    if size >= FAT32_MIN_SIZE:
        fat_type, size = 32, max(FAT32_MIN_SIZE, _fat_size(root, 32))
    for _ in range(6):
        if size > FAT32_MAX_SIZE:
            raise InputError(folder, f"too large for an ESP image (over {FAT32_MAX_SIZE >> 30} GiB)")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _O_CLOEXEC | _O_BINARY, 0o644)
        try:
            os.ftruncate(fd, offset)  # nothing of an earlier image stays behind: the same bytes for the same input
        finally:
            os.close(fd)
        try:
            _build_fat(root, path, offset, size, fat_type, volume_id, label, hidden_sectors)
        except _RootFull:
            fat_type, size = 32, max(FAT32_MIN_SIZE, _fat_size(root, 32))
            continue
        except _NoSpace:
            size = -(-size * 3 // 2 // MIB) * MIB
            if fat_type == 16 and size >= FAT32_MIN_SIZE:
                fat_type, size = 32, max(FAT32_MIN_SIZE, size)
            continue
        return FatImage(path, offset, size, fat_type, notes)
    raise InputError(folder, "could not size a FAT image for it")  # pragma: no cover


def _gpt_tables(total_blocks: int, esp_start: int, esp_blocks: int, disk_guid: Guid, part_guid: Guid):
    """(protective MBR, primary header, backup header, entry array) of a disk with one ESP."""
    return _gpt_tables_of(total_blocks, [(ESP_TYPE, part_guid, ESP_NAME, esp_start, esp_blocks)], disk_guid)


def _gpt_tables_of(total_blocks: int, parts: list, disk_guid: Guid):
    """(protective MBR, primary header, backup header, entry array) of a disk with the partitions
    ``parts``: (type GUID, unique GUID, name, start LBA, blocks)."""
    entry_blocks = layout.GPT_ENTRIES * layout.GPT_ENTRY_SIZE // BLOCK_SIZE
    last = total_blocks - 1
    empty = dict(BootIndicator=0, StartingCHS=bytes(3), OSType=0, EndingCHS=bytes(3), StartingLBA=0, SizeInLBA=0)
    protective = dict(empty, StartingCHS=b"\x00\x02\x00", OSType=layout.MBR_TYPE_PROTECTIVE,
                      EndingCHS=b"\xff\xff\xff", StartingLBA=1, SizeInLBA=min(last, 0xFFFFFFFF))
    mbr = layout.Mbr.build(dict(BootCode=bytes(440), UniqueMBRDiskSignature=0, Unknown=0,
                                Partition=[protective, empty, empty, empty], Signature=layout.MBR_SIGNATURE))
    entries = b"".join(layout.GptPartitionEntry.build(dict(
        PartitionTypeGUID=kind.to_bytes(), UniquePartitionGUID=unique.to_bytes(), StartingLBA=start,
        EndingLBA=start + blocks - 1, Attributes=0,
        PartitionName=name.encode("utf-16-le").ljust(2 * layout.GPT_NAME_CHARS, b"\0")))
        for kind, unique, name, start, blocks in parts)
    entries = entries.ljust(layout.GPT_ENTRIES * layout.GPT_ENTRY_SIZE, b"\0")

    def header(my_lba: int, alternate: int, entry_lba: int) -> bytes:
        fields = dict(Signature=layout.GPT_SIGNATURE, Revision=layout.GPT_REVISION,
                      HeaderSize=layout.GPT_HEADER_SIZE, HeaderCRC32=0, Reserved=0, MyLBA=my_lba,
                      AlternateLBA=alternate, FirstUsableLBA=2 + entry_blocks, LastUsableLBA=last - 1 - entry_blocks,
                      DiskGUID=disk_guid.to_bytes(), PartitionEntryLBA=entry_lba,
                      NumberOfPartitionEntries=layout.GPT_ENTRIES, SizeOfPartitionEntry=layout.GPT_ENTRY_SIZE,
                      PartitionEntryArrayCRC32=_crc32(entries))
        fields["HeaderCRC32"] = _crc32(layout.GptHeader.build(fields))
        return layout.GptHeader.build(fields).ljust(BLOCK_SIZE, b"\0")

    return mbr, header(1, last, 2), header(last, 1, last - entry_blocks), entries


def gpt_disk_with_esp(fat_image: FatImage | bytes, disk_guid: Guid, part_guid: Guid,
                      path: str | os.PathLike | None = None) -> str:
    """Write a GPT disk whose one partition, the ESP, holds ``fat_image``; return its path.

    Layout: a protective MBR at LBA 0, the primary header at LBA 1 and 128 entries at
    LBA 2-33, the ESP from LBA 2048 (type C12A7328-F81F-11D2-BA4B-00A0C93EC93B,
    ``part_guid``, named "EFI System Partition"), 1 MiB after it of which the last 33
    blocks are the backup entries and header; the CRC32s are right. The disk goes to
    ``path`` (a new temporary file when None; the caller removes it). A FatImage already
    at byte 1 MiB of ``path`` (``fat_image_from_folder(folder, path, offset=1 MiB)``) is
    left where it is; any other is copied in (``bytes`` are written).
    """
    if isinstance(fat_image, FatImage):
        size = fat_image.size
    else:
        size = len(fat_image)
    esp_blocks = -(-size // BLOCK_SIZE)
    if not esp_blocks:
        raise ValueError("an empty FAT image")
    tail = MIB // BLOCK_SIZE
    total = ESP_START_LBA + esp_blocks + tail
    if path is None:
        fd, path = tempfile.mkstemp(prefix="efistub-disk-", suffix=".img")
        os.close(fd)
    path = os.fspath(path)
    start = ESP_START_LBA * BLOCK_SIZE
    in_place = (isinstance(fat_image, FatImage) and fat_image.offset == start
                and os.path.exists(path) and os.path.samefile(fat_image.path, path))
    mbr, primary, backup, entries = _gpt_tables(total, ESP_START_LBA, esp_blocks, disk_guid, part_guid)
    flags = os.O_RDWR | _O_CLOEXEC | _O_BINARY | (0 if in_place else os.O_CREAT | os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        if in_place:
            os.ftruncate(fd, start + size)  # keep the image; the rest is rewritten
            os.pwrite(fd, bytes(start), 0)
        elif isinstance(fat_image, FatImage):
            src = os.open(fat_image.path, os.O_RDONLY | _O_CLOEXEC | _O_BINARY)
            try:
                if _copy_range(src, fd, size, fat_image.offset, start, {}) != size:
                    raise ValueError(f"{fat_image.path}: shorter than its FAT image")
            finally:
                os.close(src)
        else:
            os.pwrite(fd, bytes(fat_image), start)
        os.ftruncate(fd, total * BLOCK_SIZE)
        last = total - 1
        os.pwrite(fd, mbr + primary + entries, 0)
        os.pwrite(fd, entries + backup, (last - len(entries) // BLOCK_SIZE) * BLOCK_SIZE)
    finally:
        os.close(fd)
    return path


def gpt_disk(path: str | os.PathLike, partitions: list, disk_guid: Guid) -> str:
    """Write a GPT disk to ``path`` from ``partitions``: (type GUID, unique GUID, name, host file with
    the partition's contents), each placed at the next 1 MiB boundary from LBA 2048, with a 1 MiB
    tail for the backup table; returns the path. For tests and tools that need several partitions
    (an ESP and a Linux /boot, say)."""
    path = os.fspath(path)
    placed, lba = [], ESP_START_LBA
    align = MIB // BLOCK_SIZE
    for kind, unique, name, source in partitions:
        blocks = max(1, -(-os.path.getsize(source) // BLOCK_SIZE))
        placed.append((kind, unique, name, lba, blocks, source))
        lba = -(-(lba + blocks) // align) * align
    total = lba + align
    mbr, primary, backup, entries = _gpt_tables_of(total, [p[:5] for p in placed], disk_guid)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC | _O_BINARY, 0o644)
    try:
        os.ftruncate(fd, total * BLOCK_SIZE)
        for _, _, _, start, _, source in placed:
            src = os.open(source, os.O_RDONLY | _O_CLOEXEC | _O_BINARY)
            try:
                size = os.path.getsize(source)
                if _copy_range(src, fd, size, 0, start * BLOCK_SIZE, {}) != size:
                    raise ValueError(f"{source}: shorter than it was")
            finally:
                os.close(src)
        last = total - 1
        os.pwrite(fd, mbr + primary + entries, 0)
        os.pwrite(fd, entries + backup, (last - len(entries) // BLOCK_SIZE) * BLOCK_SIZE)
    finally:
        os.close(fd)
    return path


def esp_disk_from_folder(folder: str | os.PathLike, *, seed: int | str = 0,
                         path: str | os.PathLike | None = None) -> DiskImage:
    """``--esp DIR`` as a disk: the GPT disk of :func:`gpt_disk_with_esp` with the FAT image
    of ``folder``, built in place, opened as a read-only DiskImage.

    The disk and partition GUIDs (and the FAT volume ID) come from ``seed``
    (:func:`guid_from_seed`). Without ``path`` the disk is a temporary file that is
    removed at once: it lives as long as the DiskImage's open file. ``disk.notes`` has
    the builder's notes (what of the folder was left out).
    """
    folder = os.fspath(folder)
    disk_guid, part_guid = guid_from_seed(seed, "disk"), guid_from_seed(seed, "esp")
    volume_id = int.from_bytes(hashlib.sha256(part_guid.bytes).digest()[:4], "little") or 1
    temporary = path is None
    if temporary:
        fd, path = tempfile.mkstemp(prefix="efistub-esp-", suffix=".img")
        os.close(fd)
    path = os.fspath(path)
    try:
        fat = fat_image_from_folder(folder, path, offset=ESP_START_LBA * BLOCK_SIZE, volume_id=volume_id)
        gpt_disk_with_esp(fat, disk_guid, part_guid, path)
        disk = DiskImage(path, name=f"--esp {folder}")
    finally:
        if temporary:
            try:
                os.unlink(path)
            except OSError:
                pass
    disk.notes.extend(fat.notes)
    return disk


# -- a FAT partition as a volume -----------------------------------------------------------------


class _RegionReader(io.RawIOBase):
    """A read-only, seekable file over a DiskImage (a partition region): what pyfatfs reads."""

    def __init__(self, disk: DiskImage):
        super().__init__()
        self._disk = disk
        self._position = 0
        self.name = disk.name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            offset += self._disk.size
        if offset < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        available = max(0, self._disk.size - self._position)
        size = available if size is None or size < 0 else min(size, available)
        data = self._disk.read_bytes(self._position, size)
        self._position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _datetime(date: int, time: int = 0, tenths: int = 0) -> datetime:
    """A FAT date and time as UTC (the builder stores UTC); an invalid date is 1980-01-01."""
    try:
        moment = datetime(1980 + (date >> 9), (date >> 5) & 15, date & 31, tzinfo=timezone.utc)
    except ValueError:
        return _FAT_EARLIEST
    seconds = ((time >> 11) & 31) * 3600 + ((time >> 5) & 63) * 60 + (time & 31) * 2
    if seconds >= 86400:
        return moment
    return moment + timedelta(seconds=seconds, milliseconds=10 * min(tenths, 199))


class FatVolume:
    """A FAT file system on a partition of a DiskImage (or on the whole disk), as a
    read-only volume with :class:`efistub.volume.HostVolume`'s interface and semantics:
    volume paths such as ``\\EFI\\BOOT\\BOOTX64.EFI``, case-insensitive names, the same
    :class:`~efistub.volume.Entry` and :class:`~efistub.volume.VolumeError`.

    pyfatfs parses the file system from a file-like view of the partition's bytes
    (nothing is copied); file data is read cluster run by cluster run from the disk.
    What differs from HostVolume, as a real FAT driver would have it:

    - :meth:`list` returns the directory's entries in their on-disk order (the ESP
      builder writes HostVolume's order), with ``.`` and ``..`` as stored;
    - times are the FAT ones, read as UTC; ``read_only`` is the READ_ONLY attribute;
    - :meth:`info` reports the cluster size as the block size, as EDK2 does.

    Every change raises EFI_WRITE_PROTECTED. A partition that is not FAT raises
    VolumeError(EFI_UNSUPPORTED) (a FAT driver would not bind to it); broken structures
    found later are EFI_VOLUME_CORRUPTED, host read errors EFI_DEVICE_ERROR.
    """

    read_only = True

    def __init__(self, disk: DiskImage, partition: Partition | None = None):
        from pyfatfs import PyFATException
        from pyfatfs.PyFat import PyFat

        self._region = disk.partition(partition) if partition is not None else disk
        self.name = self._region.name
        self.notes: list[str] = []
        self._fs = PyFat(lazy_load=True)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._fs.set_fp(_RegionReader(self._region))
        except DiskError as e:
            raise VolumeError(Status.EFI_DEVICE_ERROR, f"{self.name}: {e.message}") from None
        except (PyFATException, ValueError, KeyError, IndexError, AssertionError, ZeroDivisionError) as e:
            raise VolumeError(Status.EFI_UNSUPPORTED, f"{self.name}: not a FAT file system ({e})") from None
        self.notes.extend(str(w.message) for w in caught)
        bpb = self._fs.bpb_header
        total = bpb["BPB_TotSec16"] or bpb["BPB_TotSec32"]
        self._clusters = max(0, (total - self._fs.first_data_sector) // bpb["BPB_SecPerClus"])
        self._index: dict[int, dict] = {}
        self._chains: dict[int, list[int]] = {}
        self._free: int | None = None

    @property
    def fat_type(self) -> int:
        return self._fs.fat_type

    @property
    def label(self) -> str:
        """The volume label: the root's volume-ID entry, else the boot sector's; "" for NO NAME."""
        try:
            entry = self._label_entry()
        except VolumeError:
            entry = None
        if entry is not None:
            return bytes(entry.name.name).decode(self._fs.encoding, "replace").rstrip()
        label = bytes(self._fs.bpb_header.get("BS_VolLab", b"")).decode(self._fs.encoding, "replace").rstrip()
        return "" if label == "NO NAME" else label

    # --- internals ----------------------------------------------------------------------

    def _guard(self, action):
        from pyfatfs import PyFATException

        try:
            return action()
        except DiskError as e:
            raise VolumeError(Status.EFI_DEVICE_ERROR, f"{self.name}: {e.message}") from None
        except (PyFATException, ValueError, KeyError, IndexError, AssertionError) as e:
            raise VolumeError(Status.EFI_VOLUME_CORRUPTED, f"{self.name}: {e}") from None

    def _children(self, directory) -> dict:
        """name -> entries of a directory: exact long and short names, and folded ones."""
        index = self._index.get(id(directory))
        if index is None:
            from pyfatfs._exceptions import NotAnLFNEntryException

            dirs, files, _ = self._guard(directory.get_entries)
            exact: dict[str, object] = {}
            folded: dict[str, list] = {}
            for entry in dirs + files:
                short = entry.get_short_name()
                try:
                    long = entry.get_long_name()
                except NotAnLFNEntryException:
                    long = short
                for name in {long, short}:
                    exact.setdefault(name, entry)
                    folded.setdefault(_fold(name), []).append((long, entry))
            index = self._index[id(directory)] = {"exact": exact, "folded": folded, "entry": directory}
        return index

    @staticmethod
    def _name(entry) -> str:
        return repr(entry)  # pyfatfs: the long name, else the short one

    def _find(self, name: str, base: tuple[list[str], list] | None = None):
        """(components as on disk, entries from the root) of ``name``; the last entry is
        None when the last component does not exist."""
        parsed = _parse(name)
        if base is None or parsed.absolute:
            parts, entries = [], [self._fs.root_dir]
        else:
            parts, entries = list(base[0]), list(base[1])
        count = len(parsed.parts)
        for index, part in enumerate(parsed.parts):
            here = ROOT + SEPARATOR.join(parts)
            if entries[-1] is None:
                raise VolumeError(Status.EFI_NOT_FOUND, f"{here}: no such directory")
            if part == ".":
                continue
            if part == "..":
                if not parts:  # as HostVolume and EDK2's FAT driver
                    raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{name}: '..' above the root")
                parts.pop()
                entries.pop()
                continue
            if not entries[-1].is_directory():
                raise VolumeError(Status.EFI_NOT_FOUND, f"{here}: not a directory")
            children = self._children(entries[-1])
            match = children["exact"].get(part)
            if match is None:
                candidates = sorted(children["folded"].get(_fold(part), []), key=lambda c: c[0])
                match = candidates[0][1] if candidates else None
            if match is None:
                if index != count - 1:
                    raise VolumeError(Status.EFI_NOT_FOUND, f"{here}: no such directory")
                parts.append(part)
                entries.append(None)
                continue
            parts.append(self._name(match))
            entries.append(match)
        if parsed.trailing and entries[-1] is not None and not entries[-1].is_directory():
            raise VolumeError(Status.EFI_NOT_FOUND, f"{ROOT + SEPARATOR.join(parts)}: not a directory")
        return parts, entries

    def _existing(self, path: str):
        parts, entries = self._find(path)
        if entries[-1] is None:
            raise VolumeError(Status.EFI_NOT_FOUND, f"{ROOT + SEPARATOR.join(parts)}: no such file or directory")
        return parts, entries

    def _label_entry(self):
        _, _, specials = self._guard(self._fs.root_dir.get_entries)
        return next((e for e in specials if e.is_volume_id() and not e.is_directory()), None)

    def _entry(self, name: str, entry, is_root: bool = False) -> Entry:
        if is_root:  # FAT gives the root no times: those of the volume label (the folder's, when built)
            label = self._label_entry()
            if label is None:
                return Entry(name="", size=0, is_dir=True, read_only=False, created=_FAT_EARLIEST,
                             accessed=_FAT_EARLIEST, modified=_FAT_EARLIEST)
            times = self._entry("", label)
            return Entry(name="", size=0, is_dir=True, read_only=False, created=times.created,
                         accessed=times.accessed, modified=times.modified)
        is_dir = entry.is_directory()
        return Entry(name=name, size=0 if is_dir else entry.filesize, is_dir=is_dir,
                     read_only=entry.is_read_only(),
                     created=_datetime(entry.crtdate, entry.crttime, entry.crttimetenth),
                     accessed=_datetime(entry.lstaccessdate), modified=_datetime(entry.wrtdate, entry.wrttime))

    def _chain(self, first: int) -> list[int]:
        chain = self._chains.get(first)
        if chain is None:
            if len(self._chains) > 256:
                self._chains.clear()
            chain = self._guard(lambda: list(self._fs.get_cluster_chain(first))) if first >= 2 else [first]
            if any(not 2 <= cluster < self._clusters + 2 for cluster in chain):
                raise VolumeError(Status.EFI_VOLUME_CORRUPTED,
                                  f"{self.name}: the cluster chain from {first} leaves the volume's clusters")
            self._chains[first] = chain
        return chain

    # --- reading ----------------------------------------------------------------------

    def resolve(self, directory: str, name: str) -> str:
        """As :meth:`HostVolume.resolve`: the canonical path Open reaches from ``directory``."""
        parts, entries = self._existing(directory)
        if not entries[-1].is_directory():
            raise VolumeError(Status.EFI_NOT_FOUND, f"{ROOT + SEPARATOR.join(parts)}: not a directory")
        parts, _ = self._find(name, (parts, entries))
        return ROOT + SEPARATOR.join(parts)

    def stat(self, path: str) -> Entry:
        """The Entry of an existing file or directory (the root's name is "")."""
        parts, entries = self._existing(path)
        return self._entry(parts[-1] if parts else "", entries[-1], is_root=not parts)

    def list(self, path: str) -> list[Entry]:
        """A directory's entries in on-disk order: ``.`` and ``..`` first in a
        subdirectory, none in the root; no volume label. Listing a file is EFI_ACCESS_DENIED."""
        parts, entries = self._existing(path)
        directory = entries[-1]
        if not directory.is_directory():
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{ROOT + SEPARATOR.join(parts)}: not a directory")
        result = []
        for entry in self._guard(directory._get_entries_raw):
            if entry.is_volume_id() and not entry.is_directory():
                continue
            result.append(self._entry(self._name(entry), entry))
        return result

    def read(self, path: str, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of a file from ``offset`` (short at the end, empty at it);
        an offset beyond the end is EFI_DEVICE_ERROR, a directory EFI_ACCESS_DENIED."""
        if offset < 0 or size < 0:
            raise VolumeError(Status.EFI_INVALID_PARAMETER, f"{path}: negative offset or size")
        parts, entries = self._existing(path)
        entry, where = entries[-1], ROOT + SEPARATOR.join(parts)
        if entry.is_directory() or not parts:
            raise VolumeError(Status.EFI_ACCESS_DENIED, f"{where}: cannot read a directory")
        end = entry.filesize
        if offset > end:
            raise VolumeError(Status.EFI_DEVICE_ERROR, f"{where}: read at {offset}, beyond the end of the file ({end})")
        size = min(size, end - offset)
        if size == 0:
            return b""
        cluster_bytes = self._fs.bytes_per_cluster
        chain = self._chain(entry.get_cluster())
        first, last = offset // cluster_bytes, (offset + size - 1) // cluster_bytes
        if last >= len(chain):
            raise VolumeError(Status.EFI_VOLUME_CORRUPTED,
                              f"{where}: {end} bytes, but a chain of {len(chain)} clusters of {cluster_bytes}")
        chunks = []
        index = first
        while index <= last:
            run = 1
            while index + run <= last and chain[index + run] == chain[index] + run:
                run += 1
            address = self._fs.get_data_cluster_address(chain[index])
            chunks.append(self._guard(lambda: self._region.read_bytes(address, run * cluster_bytes)))
            index += run
        data = b"".join(chunks)
        skip = offset - first * cluster_bytes
        return data[skip:skip + size]

    def info(self) -> VolumeInfo:
        """Volume size and free space from the FAT (in clusters), the cluster size as the
        block size, read-only, and the label."""
        cluster_bytes = self._fs.bytes_per_cluster
        if self._free is None:
            self._free = sum(1 for value in self._fs.fat[2:self._clusters + 2] if value == 0)
        return VolumeInfo(self._clusters * cluster_bytes, self._free * cluster_bytes, cluster_bytes, True, self.label)

    # --- changing: never ---------------------------------------------------------------

    def _protected(self, what: str, path: str = ROOT):
        raise VolumeError(Status.EFI_WRITE_PROTECTED, f"{path}: cannot {what}: the volume is read-only")

    def write(self, path: str, offset: int, data: bytes) -> None:
        self._protected("write", path)

    def create(self, path: str, directory: bool = False) -> Entry:
        self._protected("create", path)

    def delete(self, path: str) -> None:
        self._protected("delete", path)

    def set_size(self, path: str, size: int) -> None:
        self._protected("set the size of", path)

    def set_attributes(self, path: str, read_only: bool) -> None:
        self._protected("set the attributes of", path)

    def set_times(self, path: str, accessed: datetime | None, modified: datetime | None) -> None:
        self._protected("set the times of", path)

    def rename(self, path: str, new_name: str) -> str:
        self._protected("rename", path)

    def set_label(self, label: str) -> None:
        self._protected("set the label")

    def close(self) -> None:
        """Forget the parsed file system (the disk stays open)."""
        self._index.clear()
        self._chains.clear()
