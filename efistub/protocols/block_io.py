"""EFI_BLOCK_IO_PROTOCOL, EFI_DISK_IO_PROTOCOL and EFI_PARTITION_INFO_PROTOCOL over a read-only disk.

A disk is efistub.disk.DiskImage: for --esp, a GPT disk whose ESP partition holds a FAT
image built from the folder when the run starts (as QEMU's vvfat shows a folder), so
boot loaders with file-system drivers of their own (GRUB) find their files. The disk
gets a handle with BLOCK_IO and DISK_IO on PciRoot(0x0)/Pci(0x4,0x0); each partition one
with BLOCK_IO (LogicalPartition), DISK_IO and PARTITION_INFO on .../HD(n,...), as
firmware's partition driver makes them. Disks are read-only: writes give
EFI_WRITE_PROTECTED.
"""

from __future__ import annotations

from .. import device_path, guids
from ..errors import EfiError
from ..layouts import efi
from ..memory import MemoryType
from ..registry import BOOLEAN, POINTER, UINT32, UINT64, UINTN, service
from ..status import Status
from .interface import make_interface

MEDIA_ID = 1


def _disks(fw) -> dict:
    """interface address (BLOCK_IO or DISK_IO) -> DiskImage."""
    return fw.protocol_state.setdefault("disks", {})


def _disk(fw, this: int, media_id: int):
    disk = _disks(fw).get(this)
    if disk is None:
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"0x{this:x} is not a disk's protocol")
    if media_id != MEDIA_ID:
        raise EfiError(Status.EFI_MEDIA_CHANGED, f"MediaId {media_id} is not the disk's ({MEDIA_ID})")
    return disk


@service("BlockIo.Reset", This=POINTER, ExtendedVerification=BOOLEAN)
def BlockReset(fw, this, extended):
    return Status.EFI_SUCCESS


@service("BlockIo.ReadBlocks", This=POINTER, MediaId=UINT32, Lba=UINT64, BufferSize=UINTN, Buffer=POINTER)
def ReadBlocks(fw, this, media_id, lba, size, buffer):
    disk = _disk(fw, this, media_id)
    if not buffer:
        return Status.EFI_INVALID_PARAMETER
    data = disk.read_blocks(lba, size)  # a DiskError carries the spec's status
    if data:
        fw.mem.write(buffer, data)
    return Status.EFI_SUCCESS


@service("BlockIo.WriteBlocks", This=POINTER, MediaId=UINT32, Lba=UINT64, BufferSize=UINTN, Buffer=POINTER)
def WriteBlocks(fw, this, media_id, lba, size, buffer):
    _disk(fw, this, media_id)
    return Status.EFI_WRITE_PROTECTED


@service("BlockIo.FlushBlocks", This=POINTER)
def FlushBlocks(fw, this):
    return Status.EFI_SUCCESS


@service("DiskIo.ReadDisk", This=POINTER, MediaId=UINT32, Offset=UINT64, BufferSize=UINTN, Buffer=POINTER)
def ReadDisk(fw, this, media_id, offset, size, buffer):
    disk = _disk(fw, this, media_id)
    if not size:
        return Status.EFI_SUCCESS
    if not buffer:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write(buffer, disk.read_bytes(offset, size))
    return Status.EFI_SUCCESS


@service("DiskIo.WriteDisk", This=POINTER, MediaId=UINT32, Offset=UINT64, BufferSize=UINTN, Buffer=POINTER)
def WriteDisk(fw, this, media_id, offset, size, buffer):
    _disk(fw, this, media_id)
    return Status.EFI_WRITE_PROTECTED


def _install_disk(fw, disk, nodes: list, handle=None, partition=None) -> int:
    """BLOCK_IO and DISK_IO (and PARTITION_INFO for a partition) for ``disk`` on a handle with
    the device path ``nodes`` (a new handle, or ``handle``); returns the handle."""
    if handle is None:
        path = fw.store(MemoryType.EfiBootServicesData, device_path.encode(nodes))
        handle = fw.handles.install(None, guids.DEVICE_PATH_PROTOCOL, path)
    media = fw.store(MemoryType.EfiBootServicesData, efi.BlockIoMedia.build(dict(
        MediaId=MEDIA_ID, RemovableMedia=0, MediaPresent=1, LogicalPartition=int(partition is not None),
        ReadOnly=1, WriteCaching=0, BlockSize=disk.block_size, IoAlign=0, LastBlock=max(disk.last_lba, 0),
        LowestAlignedLba=0, LogicalBlocksPerPhysicalBlock=1, OptimalTransferLengthGranularity=0)))
    block_io = make_interface(fw, "BlockIo", efi.BLOCK_IO, fw.layout.BlockIo, Revision=efi.BLOCK_IO_REVISION,
                              Media=media)
    disk_io = make_interface(fw, "DiskIo", efi.DISK_IO, fw.layout.DiskIo, Revision=efi.DISK_IO_REVISION)
    _disks(fw).update({block_io: disk, disk_io: disk})
    fw.handles.install(handle, guids.BLOCK_IO_PROTOCOL, block_io)
    fw.handles.install(handle, guids.DISK_IO_PROTOCOL, disk_io)
    if partition is not None:
        info = efi.PartitionInfo.build(dict(
            Revision=efi.PARTITION_INFO_REVISION,
            Type=efi.PARTITION_TYPE_GPT if partition.scheme == "gpt" else efi.PARTITION_TYPE_MBR,
            System=int(partition.is_esp), Info=partition.raw.ljust(128, b"\0")[:128]))
        fw.handles.install(handle, guids.PARTITION_INFO_PROTOCOL, fw.store(MemoryType.EfiBootServicesData, info))
    return handle


def partition_node(partition) -> device_path.Node:
    return device_path.hard_drive_node(partition.number, partition.start_lba, partition.blocks, partition.signature,
                                       partition.mbr_type, partition.signature_type)


# The controller of a --disk: a second virtio disk.
DISK_CONTROLLER = (device_path.pci_root(0), device_path.pci(5, 0))


def install(fw) -> int | None:
    """The run's --disk, if it has one: the disk, its partitions, and SIMPLE_FILE_SYSTEM on each FAT ESP
    partition; without --esp, the first such partition is the image's boot device."""
    if fw.options.disk is None:
        return None
    from ..disk import FatVolume, open_disk
    from ..volume import VolumeError
    from .simple_file_system import install_volume

    disk = open_disk(fw.options.disk)
    fw.notes.extend(f"--disk: {note}" for note in disk.notes + disk.table.notes)
    for number, (handle, _, region) in install_disk(fw, disk, list(DISK_CONTROLLER)).items():
        if not region.partition_info.is_esp:
            continue
        try:
            volume = FatVolume(disk, region.partition_info)
        except VolumeError as e:
            fw.note(f"--disk: partition {number} is an ESP without a FAT file system efistub can read: {e}")
            continue
        install_volume(fw, volume, handle.address)
        if not fw.boot_device:
            fw.boot_device = handle.address
    return fw.boot_device or None


def install_disk(fw, disk, controller: list) -> dict:
    """The disk and its partitions; returns {partition number: (handle, partition nodes, region)}."""
    _install_disk(fw, disk, controller)
    out = {}
    for partition in disk.table.partitions:
        nodes = controller + [partition_node(partition)]
        region = disk.partition(partition)
        out[partition.number] = (_install_disk(fw, region, nodes, partition=partition), nodes, region)
    return out
