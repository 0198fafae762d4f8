"""EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL (UEFI 2.10 §13.4, §13.5) over a volume.

A volume is efistub.volume.HostVolume (a host folder, --esp) or any object with its
interface. Every Open makes a new EFI_FILE_PROTOCOL instance in guest memory; its
address is the file handle, and ``fw.protocol_state["files"]`` keeps what it refers
to. Statuses follow the specification; volume errors (a missing file, an escape
attempt, a read-only volume, a host I/O error) carry theirs (VolumeError.status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .. import device_path, guids
from ..errors import EfiError
from ..layouts import efi
from ..memory import ucs2, ucs2_text
from ..registry import GUID_PTR, POINTER, STRING, UINT64, UINTN, declare, service
from ..status import Status
from .interface import make_interface

if TYPE_CHECKING:  # efistub.volume is imported where a run has a volume (--esp, a FAT disk)
    from ..volume import Entry

MAX_NAME = 1024  # characters of a file name the guest may pass
BLOCK = 512
VALID_MODES = (efi.FILE_MODE_READ, efi.FILE_MODE_READ | efi.FILE_MODE_WRITE,
               efi.FILE_MODE_READ | efi.FILE_MODE_WRITE | efi.FILE_MODE_CREATE)
END_OF_FILE = 0xFFFFFFFFFFFFFFFF  # SetPosition to the end


@dataclass
class OpenFile:
    volume: object
    path: str
    is_dir: bool
    mode: int
    position: int = 0  # a byte offset, or the next entry of a directory
    listing: list = field(default_factory=list)  # a directory's entries, read when it is opened or rewound


def _files(fw) -> dict[int, OpenFile]:
    return fw.protocol_state.setdefault("files", {})


def _file(fw, this: int) -> OpenFile:
    f = _files(fw).get(this)
    if f is None:
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"0x{this:x} is not an open file")
    return f


def _log(fw, path: str) -> dict:
    return fw.protocol_state.setdefault("file_log", {}).setdefault(
        path, {"path": path, "directory": False, "size": 0, "opened": 0, "bytes_read": 0, "bytes_written": 0})


def record_load(fw, path: str, size: int) -> None:
    """LoadImage read a whole file from a volume."""
    log = _log(fw, path)
    log.update(size=size, opened=log["opened"] + 1, bytes_read=log["bytes_read"] + size)


def files_report(fw) -> list[dict]:
    """Every file and directory the guest opened on a volume: its size, and the bytes read and written."""
    return list(fw.protocol_state.get("file_log", {}).values())


def _open(fw, volume, path: str, mode: int) -> int:
    entry = volume.stat(path)
    f = OpenFile(volume, path, entry.is_dir, mode)
    log = _log(fw, path)
    log.update(directory=entry.is_dir, size=entry.size, opened=log["opened"] + 1)
    if f.is_dir:
        f.listing = volume.list(path)
    interface = make_interface(fw, "File", efi.FILE_PROTOCOL, fw.layout.FileProtocol,
                               Revision=efi.FILE_PROTOCOL_REVISION)
    _files(fw)[interface] = f
    return interface


def _efi_time(moment: datetime | None) -> dict:
    t = (moment or datetime(1980, 1, 1, tzinfo=timezone.utc)).astimezone(timezone.utc)
    return dict(Year=t.year, Month=t.month, Day=t.day, Hour=t.hour, Minute=t.minute, Second=t.second,
                Nanosecond=t.microsecond * 1000, TimeZone=efi.UNSPECIFIED_TIMEZONE, Daylight=0)


def file_info(entry: Entry) -> bytes:
    """EFI_FILE_INFO of an entry, with its name."""
    name = ucs2(entry.name)
    size = efi.FileInfo.c_flexible_offset + len(name)
    fixed = efi.FileInfo.build(dict(
        Size=size, FileSize=entry.size, PhysicalSize=-(-entry.size // BLOCK) * BLOCK,
        CreateTime=_efi_time(entry.created), LastAccessTime=_efi_time(entry.accessed),
        ModificationTime=_efi_time(entry.modified), Attribute=entry.attributes))
    return fixed[: efi.FileInfo.c_flexible_offset] + name


def _give(fw, size_ptr: int, buffer: int, data: bytes) -> int:
    """Copy ``data`` to a caller's buffer of *size_ptr bytes; EFI_BUFFER_TOO_SMALL with the size needed."""
    available = fw.mem.read_uintn(size_ptr)
    fw.mem.write_uintn(size_ptr, len(data))
    if available < len(data):
        return Status.EFI_BUFFER_TOO_SMALL
    if not buffer:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write(buffer, data)
    return Status.EFI_SUCCESS


@service("SimpleFileSystem.OpenVolume", This=POINTER, Root=POINTER)
def OpenVolume(fw, this, root_ptr):
    volume = fw.protocol_state.get("volumes", {}).get(this)
    if volume is None or not root_ptr:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write_uintn(root_ptr, _open(fw, volume, "\\", efi.FILE_MODE_READ))
    return Status.EFI_SUCCESS


@service("File.Open", This=POINTER, NewHandle=POINTER, FileName=STRING, OpenMode=UINT64, Attributes=UINT64)
def Open(fw, this, new_handle, name_ptr, mode, attributes):
    f = _file(fw, this)
    if not new_handle or not name_ptr or mode not in VALID_MODES or attributes & ~efi.FILE_VALID_ATTR:
        return Status.EFI_INVALID_PARAMETER
    name = fw.mem.read_ucs2(name_ptr, limit=MAX_NAME)
    volume = f.volume
    directory = f.path if f.is_dir else f.path.rsplit("\\", 1)[0] or "\\"
    path = volume.resolve(directory, name)
    if mode & efi.FILE_MODE_WRITE and volume.read_only:
        return Status.EFI_WRITE_PROTECTED
    from ..volume import VolumeError

    try:
        volume.stat(path)
    except VolumeError as e:
        if e.status != Status.EFI_NOT_FOUND or not mode & efi.FILE_MODE_CREATE:
            raise
        volume.create(path, bool(attributes & efi.FILE_DIRECTORY))
        if attributes & efi.FILE_READ_ONLY:
            volume.set_attributes(path, True)
    entry = volume.stat(path)
    if mode & efi.FILE_MODE_WRITE and entry.read_only:
        return Status.EFI_ACCESS_DENIED
    fw.mem.write_uintn(new_handle, _open(fw, volume, path, mode))
    return Status.EFI_SUCCESS


def close(fw, this: int) -> OpenFile:
    f = _files(fw).pop(this, None)
    if f is None:
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"0x{this:x} is not an open file")
    fw.free_pool(this)
    return f


@service("File.Close", This=POINTER)
def Close(fw, this):
    close(fw, this)
    return Status.EFI_SUCCESS


@service("File.Delete", This=POINTER)
def Delete(fw, this):
    f = close(fw, this)  # Delete closes the handle whatever happens
    if f.volume.read_only or not f.mode & efi.FILE_MODE_WRITE or f.path == "\\":
        return Status.EFI_WARN_DELETE_FAILURE
    from ..volume import VolumeError

    try:
        f.volume.delete(f.path)
    except VolumeError:
        return Status.EFI_WARN_DELETE_FAILURE
    return Status.EFI_SUCCESS


@service("File.Read", This=POINTER, BufferSize=POINTER, Buffer=POINTER)
def Read(fw, this, size_ptr, buffer):
    f = _file(fw, this)
    if not size_ptr:
        return Status.EFI_INVALID_PARAMETER
    if f.is_dir:
        if f.position >= len(f.listing):
            fw.mem.write_uintn(size_ptr, 0)  # the end of the directory
            return Status.EFI_SUCCESS
        status = _give(fw, size_ptr, buffer, file_info(f.listing[f.position]))
        if status == Status.EFI_SUCCESS:
            f.position += 1
        return status
    size = f.volume.stat(f.path).size
    if f.position > size:
        return Status.EFI_DEVICE_ERROR  # the spec's status for a read beyond the end of the file
    wanted = fw.mem.read_uintn(size_ptr)
    data = f.volume.read(f.path, f.position, min(wanted, size - f.position))
    if data and not buffer:
        return Status.EFI_INVALID_PARAMETER
    if data:
        fw.mem.write(buffer, data)
    fw.mem.write_uintn(size_ptr, len(data))
    f.position += len(data)
    _log(fw, f.path)["bytes_read"] += len(data)
    return Status.EFI_SUCCESS


@service("File.Write", This=POINTER, BufferSize=POINTER, Buffer=POINTER)
def Write(fw, this, size_ptr, buffer):
    f = _file(fw, this)
    if not size_ptr:
        return Status.EFI_INVALID_PARAMETER
    if f.is_dir:
        return Status.EFI_UNSUPPORTED
    if f.volume.read_only:
        return Status.EFI_WRITE_PROTECTED
    if not f.mode & efi.FILE_MODE_WRITE:
        return Status.EFI_ACCESS_DENIED
    size = fw.mem.read_uintn(size_ptr)
    data = fw.mem.read(buffer, size) if size else b""
    f.volume.write(f.path, f.position, data)
    f.position += len(data)
    _log(fw, f.path)["bytes_written"] += len(data)
    return Status.EFI_SUCCESS


@service("File.GetPosition", This=POINTER, Position=POINTER)
def GetPosition(fw, this, position_ptr):
    f = _file(fw, this)
    if f.is_dir:
        return Status.EFI_UNSUPPORTED
    if not position_ptr:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write_u64(position_ptr, f.position)  # UINT64 *Position
    return Status.EFI_SUCCESS


@service("File.SetPosition", This=POINTER, Position=UINT64)
def SetPosition(fw, this, position):
    f = _file(fw, this)
    if f.is_dir:
        if position != 0:
            return Status.EFI_UNSUPPORTED
        f.position, f.listing = 0, f.volume.list(f.path)
        return Status.EFI_SUCCESS
    f.position = f.volume.stat(f.path).size if position == END_OF_FILE else position
    return Status.EFI_SUCCESS


@service("File.GetInfo", This=POINTER, InformationType=GUID_PTR, BufferSize=POINTER, Buffer=POINTER)
def GetInfo(fw, this, type_ptr, size_ptr, buffer):
    f = _file(fw, this)
    if not type_ptr or not size_ptr:
        return Status.EFI_INVALID_PARAMETER
    kind = fw.mem.read_guid(type_ptr)
    volume = f.volume
    if kind == guids.FILE_INFO:
        return _give(fw, size_ptr, buffer, file_info(volume.stat(f.path)))
    size, free, block, read_only, label = volume.info()
    if kind == guids.FILE_SYSTEM_INFO:
        name = ucs2(label)
        fixed = efi.FileSystemInfo.build(dict(Size=efi.FileSystemInfo.c_flexible_offset + len(name),
                                              ReadOnly=int(read_only), VolumeSize=size, FreeSpace=free,
                                              BlockSize=block))
        return _give(fw, size_ptr, buffer, fixed[: efi.FileSystemInfo.c_flexible_offset] + name)
    if kind == guids.FILE_SYSTEM_VOLUME_LABEL:
        return _give(fw, size_ptr, buffer, ucs2(label))
    return Status.EFI_UNSUPPORTED


@service("File.SetInfo", This=POINTER, InformationType=GUID_PTR, BufferSize=UINTN, Buffer=POINTER)
def SetInfo(fw, this, type_ptr, size, buffer):
    f = _file(fw, this)
    if not type_ptr or not buffer:
        return Status.EFI_INVALID_PARAMETER
    kind = fw.mem.read_guid(type_ptr)
    volume = f.volume
    if kind not in (guids.FILE_INFO, guids.FILE_SYSTEM_INFO, guids.FILE_SYSTEM_VOLUME_LABEL):
        return Status.EFI_UNSUPPORTED
    if volume.read_only:
        return Status.EFI_WRITE_PROTECTED
    raw = fw.mem.read(buffer, min(size, 1 << 16))
    if kind == guids.FILE_SYSTEM_VOLUME_LABEL:
        volume.set_label(ucs2_text(raw))
        return Status.EFI_SUCCESS
    if kind == guids.FILE_SYSTEM_INFO:
        offset = efi.FileSystemInfo.c_flexible_offset
        volume.set_label(ucs2_text(raw[offset:]))
        return Status.EFI_SUCCESS
    offset = efi.FileInfo.c_flexible_offset
    if len(raw) < offset + 2:
        return Status.EFI_BAD_BUFFER_SIZE
    info = efi.FileInfo.parse(raw)
    if size < info.Size:  # the buffer must hold the whole EFI_FILE_INFO it describes
        return Status.EFI_BAD_BUFFER_SIZE
    if info.Attribute & ~efi.FILE_VALID_ATTR:
        return Status.EFI_INVALID_PARAMETER
    entry = volume.stat(f.path)
    if bool(info.Attribute & efi.FILE_DIRECTORY) != entry.is_dir:
        return Status.EFI_ACCESS_DENIED  # a file cannot become a directory, nor the reverse
    if not f.mode & efi.FILE_MODE_WRITE and (info.FileSize != entry.size):
        return Status.EFI_ACCESS_DENIED
    name = ucs2_text(raw[offset:])
    if not entry.is_dir and info.FileSize != entry.size:
        volume.set_size(f.path, info.FileSize)
    volume.set_attributes(f.path, bool(info.Attribute & efi.FILE_READ_ONLY))
    if name and name != entry.name and f.path != "\\":
        f.path = volume.rename(f.path, name)
    return Status.EFI_SUCCESS


@service("File.Flush", This=POINTER)
def Flush(fw, this):
    f = _file(fw, this)
    if f.volume.read_only:
        return Status.EFI_WRITE_PROTECTED  # as EDK2's FAT driver, whatever the handle's mode
    if not f.mode & efi.FILE_MODE_WRITE:
        return Status.EFI_ACCESS_DENIED
    return Status.EFI_SUCCESS  # writes reach the host file at once


declare("File.OpenEx", This=POINTER, NewHandle=POINTER, FileName=STRING, OpenMode=UINT64, Attributes=UINT64,
        Token=POINTER)
declare("File.ReadEx", This=POINTER, Token=POINTER)
declare("File.WriteEx", This=POINTER, Token=POINTER)
declare("File.FlushEx", This=POINTER, Token=POINTER)


def install_volume(fw, volume, handle: int) -> None:
    """SIMPLE_FILE_SYSTEM for ``volume`` on ``handle`` (a partition's)."""
    interface = make_interface(fw, "SimpleFileSystem", efi.SIMPLE_FILE_SYSTEM, fw.layout.SimpleFileSystem,
                               Revision=efi.SIMPLE_FILE_SYSTEM_REVISION)
    fw.protocol_state.setdefault("volumes", {})[interface] = volume
    fw.handles.install(fw.handles.get(handle), guids.SIMPLE_FILE_SYSTEM_PROTOCOL, interface)


# The disk controller of the ESP, as a virtio disk on the PCI root bridge.
CONTROLLER = (device_path.pci_root(0), device_path.pci(4, 0))


def install(fw) -> int | None:
    """The run's ESP (--esp), if it has one, and the image's boot device: the folder as a volume
    (SIMPLE_FILE_SYSTEM, read-only unless --esp-writable) on the ESP partition of a read-only GPT
    disk that holds a FAT image of the folder (BLOCK_IO, DISK_IO), built as the run starts."""
    if fw.options.esp is None:
        return None
    from ..disk import esp_disk_from_folder
    from ..volume import HostVolume
    from .block_io import install_disk

    volume = HostVolume(fw.options.esp, writable=fw.options.esp_writable)
    disk = esp_disk_from_folder(fw.options.esp, seed=fw.options.seed)
    fw.notes.extend(f"--esp disk: {note}" for note in disk.notes)
    partitions = install_disk(fw, disk, list(CONTROLLER))
    esp = next(number for number, (_, _, region) in partitions.items() if region.partition_info.is_esp)
    handle = partitions[esp][0].address
    install_volume(fw, volume, handle)
    fw.boot_device = handle
    return handle
