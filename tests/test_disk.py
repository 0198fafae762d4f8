"""efistub.disk: host disk images, partition discovery, the --esp GPT disk and FAT volumes on disks."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from efistub import disk as D
from efistub.errors import EfiError, InputError
from efistub.guids import Guid
from efistub.layouts import disk as L
from efistub.status import Status
from efistub.volume import VolumeError

MTIME = 1_700_000_000  # 2023-11-14 22:13:20 UTC: an even second, as FAT stores them
DISK_GUID = Guid("11111111-2222-3333-4444-555555555555")
PART_GUID = Guid("66666666-7777-8888-9999-aaaaaaaaaaaa")
LONG_NAME = "Grub Config With A Long Mixed-Case Name.Conf"


def _data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _touch_tree(folder: Path) -> None:
    """Fixed mtimes for every file and directory, deepest first."""
    for dirpath, dirnames, filenames in sorted(os.walk(folder), key=lambda w: -len(w[0])):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.utime(path, (MTIME, MTIME))
    os.utime(folder, (MTIME, MTIME))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """An ESP folder and the files the volume should have (volume path -> content)."""
    folder = tmp_path / "esp"
    files = {
        "\\EFI\\BOOT\\BOOTX64.EFI": _data(1_536_123, 1),  # > 1 MiB, not a cluster multiple
        "\\EFI\\debian\\grubx64.efi": _data(70_001, 2),
        f"\\EFI\\debian\\{LONG_NAME}": b"set timeout=0\n",
        "\\EFI\\debian\\empty": b"",
        "\\startup.nsh": b"\\EFI\\BOOT\\BOOTX64.EFI\n",
        "\\Caf\u00e9 \u00fcber.txt": b"unicode name\n",
        "\\a\\b\\c\\deep.bin": _data(4097, 3),
        "\\a\\" + "Very Long Name " * 16 + "end.txt": b"a 247-character name\n",
    }
    for vpath, content in files.items():
        host = folder.joinpath(*vpath.split("\\")[1:])
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(content)
    (folder / "EmptyDir").mkdir()
    (folder / "Dup.txt").write_bytes(b"first\n")
    (folder / "DUP.TXT").write_bytes(b"second\n")  # sorts first: "DUP.TXT" < "Dup.txt"
    files["\\DUP.TXT"] = b"second\n"
    os.mkfifo(folder / "pipe")
    os.symlink("/etc/hostname", folder / "outside")
    os.symlink("EFI/BOOT/BOOTX64.EFI", folder / "inside.efi")
    files["\\inside.efi"] = files["\\EFI\\BOOT\\BOOTX64.EFI"]
    os.symlink("missing", folder / "dangling")
    _touch_tree(folder)
    return folder, files


@pytest.fixture
def esp(tree, tmp_path):
    folder, files = tree
    disk = D.esp_disk_from_folder(folder, seed=7, path=tmp_path / "esp.img")
    yield disk, files, tmp_path / "esp.img"
    disk.close()


# -- the built GPT disk ------------------------------------------------------------------------


def test_esp_disk_has_one_esp_at_2048_with_valid_gpt(esp):
    disk, _, _ = esp
    table = disk.table
    assert table.scheme == "gpt" and table.gpt_header == "primary" and table.notes == []
    assert table.disk_guid == D.guid_from_seed(7, "disk")
    [part] = D.partitions(disk)
    assert part.number == 1 and part.start_lba == D.ESP_START_LBA and part.is_esp
    assert part.type == D.ESP_TYPE and part.unique_guid == D.guid_from_seed(7, "esp")
    assert part.name == "EFI System Partition" and part.scheme == "gpt"
    assert part.mbr_type == 2 and part.signature_type == 2 and part.signature == part.unique_guid.bytes_le
    assert disk.blocks == D.ESP_START_LBA + part.blocks + 2048  # 1 MiB after the ESP
    assert len(part.raw) == L.GPT_ENTRY_SIZE

    # both headers and both entry arrays, checked here independently of the parser
    for lba, entries_lba, alternate in ((1, 2, disk.last_lba), (disk.last_lba, disk.last_lba - 32, 1)):
        raw = disk.read(lba)
        header = L.GptHeader.parse(raw)
        assert header.Signature == b"EFI PART" and header.Revision == 0x10000 and header.HeaderSize == 92
        assert header.MyLBA == lba and header.AlternateLBA == alternate
        assert header.PartitionEntryLBA == entries_lba and header.NumberOfPartitionEntries == 128
        assert header.FirstUsableLBA == 34 and header.LastUsableLBA == disk.last_lba - 33
        assert Guid.from_bytes(header.DiskGUID) == table.disk_guid
        assert zlib.crc32(raw[:16] + bytes(4) + raw[20:92]) == header.HeaderCRC32
        entries = disk.read(entries_lba, 32)
        assert zlib.crc32(entries) == header.PartitionEntryArrayCRC32
    mbr = L.Mbr.parse(disk.read(0))
    assert mbr.Signature == 0xAA55 and mbr.Partition[0].OSType == 0xEE
    assert mbr.Partition[0].StartingLBA == 1 and mbr.Partition[0].SizeInLBA == disk.last_lba


def test_esp_files_read_back_byte_exact(esp):
    disk, files, _ = esp
    volume = D.FatVolume(disk, disk.table.esp)
    assert volume.fat_type == 16 and volume.read_only
    for vpath, content in files.items():
        entry = volume.stat(vpath)
        assert not entry.is_dir and entry.size == len(content), vpath
        assert volume.read(vpath, 0, len(content) + 10) == content, vpath
        assert entry.modified == datetime.fromtimestamp(MTIME, timezone.utc), vpath
    big = files["\\EFI\\BOOT\\BOOTX64.EFI"]
    for offset, size in ((0, 1), (1023, 2), (5000, 300_000), (len(big) - 7, 100), (len(big), 5)):
        assert volume.read("\\efi\\boot\\bootx64.efi", offset, size) == big[offset:offset + size]
    assert volume.stat(f"\\EFI\\DEBIAN\\{LONG_NAME.upper()}").name == LONG_NAME  # case kept, lookup folds
    assert volume.resolve("\\EFI\\debian", f"..\\..\\efi\\Debian\\{LONG_NAME.lower()}") == \
        f"\\EFI\\debian\\{LONG_NAME}"


def test_esp_listing_and_notes(esp):
    disk, _, _ = esp
    volume = D.FatVolume(disk, disk.table.esp)
    assert [e.name for e in volume.list("\\a")] == [".", "..", "b", "Very Long Name " * 16 + "end.txt"]
    assert [e.name for e in volume.list("\\")] == [
        "a", "Caf\u00e9 \u00fcber.txt", "DUP.TXT", "EFI", "EmptyDir", "inside.efi", "startup.nsh"]
    assert [e.name for e in volume.list("\\EFI\\debian")] == [".", "..", "empty", LONG_NAME, "grubx64.efi"]
    assert [e.name for e in volume.list("\\EmptyDir")] == [".", ".."]
    assert volume.stat("\\").name == "" and volume.stat("\\EFI").is_dir
    notes = "\n".join(disk.notes)
    assert "pipe: skipped: a FIFO" in notes
    assert "outside: refused: a symbolic link" in notes
    assert "dangling: skipped" in notes
    assert "Dup.txt: skipped: differs only in case from 'DUP.TXT'" in notes
    size, free, block, read_only, label = volume.info()
    assert read_only and label == "EFISTUB" and block == 1024 and 0 < free < size


def test_fat_volume_errors_are_volume_errors(esp):
    disk, _, _ = esp
    volume = D.FatVolume(disk, disk.table.esp)
    cases = [
        (lambda: volume.stat("\\nope"), Status.EFI_NOT_FOUND),
        (lambda: volume.stat("\\nope\\deeper"), Status.EFI_NOT_FOUND),
        (lambda: volume.stat("\\startup.nsh\\x"), Status.EFI_NOT_FOUND),
        (lambda: volume.resolve("\\", ".."), Status.EFI_INVALID_PARAMETER),  # as HostVolume
        (lambda: volume.read("\\startup.nsh", 10_000, 1), Status.EFI_DEVICE_ERROR),
        (lambda: volume.read("\\startup.nsh", -1, 1), Status.EFI_INVALID_PARAMETER),
        (lambda: volume.read("\\EFI", 0, 1), Status.EFI_ACCESS_DENIED),
        (lambda: volume.list("\\startup.nsh"), Status.EFI_ACCESS_DENIED),
        (lambda: volume.stat("bad\0name"), Status.EFI_INVALID_PARAMETER),
        (lambda: volume.write("\\startup.nsh", 0, b"x"), Status.EFI_WRITE_PROTECTED),
        (lambda: volume.create("\\new.txt"), Status.EFI_WRITE_PROTECTED),
        (lambda: volume.delete("\\startup.nsh"), Status.EFI_WRITE_PROTECTED),
        (lambda: volume.rename("\\startup.nsh", "x"), Status.EFI_WRITE_PROTECTED),
        (lambda: volume.set_size("\\startup.nsh", 0), Status.EFI_WRITE_PROTECTED),
        (lambda: volume.set_attributes("\\startup.nsh", True), Status.EFI_WRITE_PROTECTED),
        (lambda: volume.set_times("\\startup.nsh", None, None), Status.EFI_WRITE_PROTECTED),
        (lambda: volume.set_label("X"), Status.EFI_WRITE_PROTECTED),
    ]
    for action, status in cases:
        with pytest.raises(VolumeError) as caught:
            action()
        assert caught.value.status == status, caught.value
    assert volume.read("\\startup.nsh", 22, 5) == b""  # at the end: empty


def test_fat_volume_behaves_as_the_host_volume_of_its_folder(tree, esp):
    from efistub.volume import HostVolume

    folder, files = tree
    disk, _, _ = esp
    fat, host = D.FatVolume(disk, disk.table.esp), HostVolume(str(folder))

    def outcome(volume, method, *args):
        try:
            result = getattr(volume, method)(*args)
        except VolumeError as e:
            return e.status
        if method == "stat":
            return result.name, result.size, result.is_dir, result.modified
        if method == "list":  # the host lists both names that differ only in case; FAT holds the first
            return [(e.name, e.size, e.is_dir) for e in result if e.name != "Dup.txt"]
        return result

    directories = {"\\", "\\EmptyDir"} | {p.rsplit("\\", i)[0] or "\\" for p in files for i in (1, 2, 3)}
    calls = [("stat", p) for p in list(files) + sorted(directories)] + [("list", d) for d in sorted(directories)]
    calls += [("read", p, 3, 1000) for p in files] + [("resolve", "\\EFI", name) for name in
                                                      ("debian\\..\\BOOT\\bootx64.EFI", "..", "\\a\\B\\", ".")]
    calls += [("stat", "\\nope"), ("stat", "\\startup.nsh\\"), ("resolve", "\\", "..\\EFI"),
              ("read", "\\startup.nsh", 1000, 1), ("read", "\\EFI", 0, 1), ("list", "\\startup.nsh"),
              ("stat", "\\dup.txt"), ("resolve", "\\", "")]
    for call in calls:
        assert outcome(fat, *call) == outcome(host, *call), call


def test_a_broken_fat_is_volume_corrupted(tree, tmp_path):
    folder, files = tree
    fat = D.fat_image_from_folder(folder, tmp_path / "fat.img")
    with open(fat.path, "r+b") as f:  # both FATs freed but for their first two entries
        boot = L.Mbr.parse(f.read(512)).BootCode
        reserved, fats = int.from_bytes(boot[14:16], "little"), boot[16]
        sectors = int.from_bytes(boot[22:24], "little")
        f.seek(reserved * 512 + 4)
        f.write(bytes(fats * sectors * 512 - 4))
    with D.DiskImage(fat.path) as disk:
        volume = D.FatVolume(disk)
        assert volume.stat("\\startup.nsh").size == len(files["\\startup.nsh"])  # the FAT16 root is no chain
        for action in (lambda: volume.read("\\startup.nsh", 0, 10), lambda: volume.list("\\EFI")):
            with pytest.raises(VolumeError) as caught:
                action()
            assert caught.value.status == Status.EFI_VOLUME_CORRUPTED


def test_build_is_deterministic(tree, tmp_path):
    folder, _ = tree
    first = D.esp_disk_from_folder(folder, seed=7, path=tmp_path / "one.img")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, symlinks=True, ignore=shutil.ignore_patterns("pipe"))
    os.mkfifo(copy / "pipe")
    _touch_tree(copy)
    second = D.esp_disk_from_folder(copy, seed=7)  # a temporary file, removed at once
    assert second.read(0, second.blocks) == first.read(0, first.blocks)
    third = D.esp_disk_from_folder(folder, seed=8)
    assert D.partitions(third)[0].unique_guid != D.partitions(first)[0].unique_guid
    for d in (first, second, third):
        d.close()


def test_separate_steps_give_the_same_disk(tree, tmp_path, esp):
    folder, _ = tree
    built, _, _ = esp
    disk_guid, part_guid = D.guid_from_seed(7, "disk"), D.guid_from_seed(7, "esp")
    volume_id = int.from_bytes(hashlib.sha256(part_guid.bytes).digest()[:4], "little")
    fat = D.fat_image_from_folder(folder, tmp_path / "fat.img", volume_id=volume_id)
    assert fat.fat_type == 16 and fat.offset == 0 and fat.size % (1 << 20) == 0
    assert any("pipe" in n for n in fat.notes)
    expected = built.read(0, built.blocks)
    copied = D.gpt_disk_with_esp(fat, disk_guid, part_guid, tmp_path / "copied.img")
    assert Path(copied).read_bytes() == expected
    from_bytes = D.gpt_disk_with_esp(fat.read(), disk_guid, part_guid, tmp_path / "bytes.img")
    assert Path(from_bytes).read_bytes() == expected


def _names_folder(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(count):
        (folder / f"a long file name number {i:04d}.txt").write_bytes(b"%d\n" % i)
    _touch_tree(folder)


def test_fat32_when_the_fat16_root_is_full(tmp_path):
    folder = tmp_path / "many"
    _names_folder(folder, 200)  # 200 names of 3 long-name slots each: more than 512 root entries
    with D.esp_disk_from_folder(folder) as disk:
        volume = D.FatVolume(disk, disk.table.esp)
        assert volume.fat_type == 32
        assert len(volume.list("\\")) == 200
        assert volume.read("\\A LONG FILE NAME NUMBER 0123.TXT", 0, 10) == b"123\n"
        assert disk.table.esp.blocks * 512 >= D.FAT32_MIN_SIZE


def test_fat32_for_a_large_folder(tmp_path):
    folder = tmp_path / "large"
    folder.mkdir()
    head = _data(100_000, 9)
    with open(folder / "big.img", "wb") as f:  # 40 MiB, sparse but for its head
        f.write(head)
        f.truncate(40 << 20)
    _touch_tree(folder)
    with D.esp_disk_from_folder(folder) as disk:
        volume = D.FatVolume(disk, disk.table.esp)
        assert volume.fat_type == 32
        assert volume.read("\\big.img", 0, 100_000) == head
        assert volume.read("\\big.img", (40 << 20) - 10, 100) == bytes(10)
        assert volume.stat("\\big.img").size == 40 << 20


def test_a_volume_too_small_is_built_again_larger(tmp_path, monkeypatch):
    folder = tmp_path / "tight"
    folder.mkdir()
    content = _data(10 << 20, 4)
    (folder / "kernel").write_bytes(content)
    _touch_tree(folder)
    monkeypatch.setattr(D, "_fat_size", lambda root, fat_type: D.FAT16_MIN_SIZE)  # 8 MiB: too small
    fat = D.fat_image_from_folder(folder, tmp_path / "fat.img")
    assert fat.fat_type == 16 and fat.size == 12 << 20  # 8 MiB, then half as much again
    with D.DiskImage(fat.path) as disk:
        assert D.FatVolume(disk).read("\\kernel", 0, len(content)) == content


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such|cannot open"):
        D.esp_disk_from_folder(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InputError, match="not a directory"):
        D.esp_disk_from_folder(tmp_path / "file")


# -- checks by other tools --------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)),
                                      None)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install gdisk mtools dosfstools)")
    return path


def test_sgdisk_accepts_the_disk(esp):
    disk, _, path = esp
    out = subprocess.run([_tool("sgdisk"), "-v", str(path)], capture_output=True, text=True, check=True).stdout
    assert "No problems found" in out
    out = subprocess.run([_tool("sgdisk"), "-i", "1", str(path)], capture_output=True, text=True, check=True).stdout
    assert "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in out and "First sector: 2048" in out
    assert D.guid_from_seed(7, "esp").hex.upper()[:8] in out.replace("-", "")


def test_mtools_reads_the_esp(esp, tmp_path):
    disk, files, path = esp
    image = f"{path}@@{D.ESP_START_LBA * 512}"
    out = subprocess.run([_tool("mdir"), "-i", image, "-/", "-b", "::"], capture_output=True, text=True,
                         check=True).stdout
    assert f"::/EFI/debian/{LONG_NAME}" in out and "::/EFI/BOOT/BOOTX64.EFI" in out
    target = tmp_path / "copied.efi"
    subprocess.run([_tool("mcopy"), "-i", image, "::/efi/boot/bootx64.efi", str(target)], check=True)
    assert target.read_bytes() == files["\\EFI\\BOOT\\BOOTX64.EFI"]


def test_fsck_fat_finds_no_problem(esp, tmp_path):
    disk, _, _ = esp
    part = disk.table.esp
    image = tmp_path / "fat.img"
    image.write_bytes(disk.read(part.start_lba, part.blocks))
    result = subprocess.run([_tool("fsck.fat"), "-n", str(image)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


# -- MBR disks --------------------------------------------------------------------------------


def _record(start: int, size: int, kind: int, boot: int = 0) -> dict:
    return dict(BootIndicator=boot, StartingCHS=bytes(3), OSType=kind, EndingCHS=bytes(3), StartingLBA=start,
                SizeInLBA=size)


def _mbr(records: list[dict], signature: int = 0xCAFEF00D) -> bytes:
    records = records + [_record(0, 0, 0)] * (4 - len(records))
    return L.Mbr.build(dict(BootCode=bytes(440), UniqueMBRDiskSignature=signature, Unknown=0, Partition=records,
                            Signature=L.MBR_SIGNATURE))


def test_mbr_disk_with_an_esp_and_logical_partitions(tree, tmp_path):
    folder, files = tree
    fat = D.fat_image_from_folder(folder, tmp_path / "fat.img")
    esp_blocks = fat.blocks
    linux_start = 2048 + esp_blocks
    ext_start = linux_start + 100
    path = tmp_path / "mbr.img"
    with open(path, "wb") as f:
        f.write(_mbr([_record(2048, esp_blocks, L.MBR_TYPE_ESP, boot=0x80), _record(linux_start, 100, 0x83),
                      _record(ext_start, 300, 0x05)]))
        # two logical partitions: EBR at ext_start (logical at +1, 50 blocks), next EBR at ext_start+100
        f.seek(ext_start * 512)
        f.write(_mbr([_record(1, 50, 0x83), _record(100, 101, 0x05)], signature=0))
        f.seek((ext_start + 100) * 512)
        f.write(_mbr([_record(1, 100, 0x82)], signature=0))
        f.seek(2048 * 512)
        f.write(fat.read())
        f.truncate((ext_start + 300) * 512)
    with D.open_disk(path) as disk:
        table = disk.table
        assert table.scheme == "mbr" and table.mbr_signature == 0xCAFEF00D and table.notes == []
        parts = table.partitions
        assert [(p.number, p.start_lba, p.blocks, p.type) for p in parts] == [
            (1, 2048, esp_blocks, 0xEF), (2, linux_start, 100, 0x83),
            (5, ext_start + 1, 50, 0x83), (6, ext_start + 101, 100, 0x82)]
        esp = parts[0]
        assert esp.is_esp and not parts[1].is_esp and esp.scheme == "mbr" and esp.attributes == 0x80
        assert esp.unique_guid is None and esp.mbr_signature == 0xCAFEF00D
        assert esp.mbr_type == 1 and esp.signature_type == 1 and esp.signature == bytes.fromhex("0df0feca") + bytes(12)
        assert L.MbrPartitionRecord.parse(esp.raw).StartingLBA == 2048
        volume = D.FatVolume(disk, esp)
        assert volume.read("\\EFI\\BOOT\\BOOTX64.EFI", 0, 1 << 21) == files["\\EFI\\BOOT\\BOOTX64.EFI"]
        with pytest.raises(VolumeError) as caught:
            D.FatVolume(disk, parts[1])  # zeros: no FAT there
        assert caught.value.status == Status.EFI_UNSUPPORTED


def test_mbr_entries_off_the_disk_are_skipped(tmp_path):
    path = tmp_path / "bad.img"
    path.write_bytes(_mbr([_record(1, 10, 0x83), _record(5, 10, 0x83), _record(100, 10_000, 0x0C)])
                     + bytes(511 * 512))
    with D.open_disk(path) as disk:
        assert [p.number for p in disk.table.partitions] == [1]
        assert any("overlap partition 1" in n for n in disk.notes)
        assert any("not on the disk" in n for n in disk.notes)


# -- GPT recovery -----------------------------------------------------------------------------


def _damaged(source: Path, target: Path, offset: int) -> Path:
    shutil.copyfile(source, target)
    with open(target, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    return target


@pytest.mark.parametrize("offset, problem", [(512 + 24, "says it is at LBA"),  # MyLBA, CRC32 fixed below
                                             (512 + 60, "bad header CRC32"),  # the disk GUID
                                             (2 * 512 + 100, "bad partition entry array CRC32")])
def test_bad_primary_gpt_falls_back_to_the_backup(esp, tmp_path, offset, problem):
    disk, files, path = esp
    damaged = _damaged(path, tmp_path / "damaged.img", offset)
    if problem == "says it is at LBA":  # a consistent header, in the wrong place
        with open(damaged, "r+b") as f:
            f.seek(512)
            raw = bytearray(f.read(92))
            raw[16:20] = bytes(4)
            raw[16:20] = zlib.crc32(raw).to_bytes(4, "little")
            f.seek(512)
            f.write(raw)
    with D.open_disk(damaged) as broken:
        table = broken.table
        assert table.gpt_header == "backup" and table.partitions == disk.table.partitions
        assert problem in table.notes[0] and "using the backup" in table.notes[0]
        assert broken.notes == table.notes
        volume = D.FatVolume(broken, table.esp)
        assert volume.read("\\startup.nsh", 0, 100) == files["\\startup.nsh"]


def test_both_gpt_headers_bad(esp, tmp_path):
    disk, _, path = esp
    damaged = _damaged(path, tmp_path / "one.img", 512 + 60)
    damaged = _damaged(damaged, tmp_path / "two.img", disk.last_lba * 512 + 60)
    with D.DiskImage(damaged) as broken:
        assert broken.table.scheme == "gpt" and broken.table.partitions == []
        assert broken.table.gpt_header is None
    with pytest.raises(InputError, match="protective MBR, but neither"):
        D.open_disk(damaged)


def test_bad_backup_is_noted(esp, tmp_path):
    disk, _, path = esp
    damaged = _damaged(path, tmp_path / "backup.img", disk.last_lba * 512 + 60)
    with D.open_disk(damaged) as broken:
        assert broken.table.gpt_header == "primary" and len(broken.table.partitions) == 1
        assert "backup GPT header not valid" in broken.notes[0]


# -- --disk FILE ------------------------------------------------------------------------------


def test_open_disk_refuses_what_is_not_a_disk_image(tree, tmp_path):
    folder, _ = tree
    (tmp_path / "empty.img").write_bytes(b"")
    (tmp_path / "odd.img").write_bytes(bytes(1000))
    (tmp_path / "zeros.img").write_bytes(bytes(1 << 20))
    (tmp_path / "qcow2.img").write_bytes(b"QFI\xfb" + bytes(1 << 16))
    fat = D.fat_image_from_folder(folder, tmp_path / "superfloppy.img")  # a FAT file system, no table
    assert fat.offset == 0
    cases = {
        tmp_path / "missing.img": "no such file",
        tmp_path: "is a directory",
        tmp_path / "empty.img": "is empty",
        tmp_path / "odd.img": "1000 bytes is not a multiple of 512",
        tmp_path / "zeros.img": "no partition table: neither an MBR",
        tmp_path / "superfloppy.img": "no partition table: a FAT boot sector without a partition table",
        tmp_path / "qcow2.img": "qcow2",
    }
    for path, message in cases.items():
        with pytest.raises(InputError) as caught:
            D.open_disk(path)
        assert message in str(caught.value), str(caught.value)
        assert caught.value.path == str(path) and "\n" not in str(caught.value)
    # only open_disk refuses them: discovery just finds no table
    with D.DiskImage(tmp_path / "superfloppy.img") as floppy:
        assert D.partitions(floppy) == [] and floppy.table.scheme == "none"
        volume = D.FatVolume(floppy)  # the whole disk as a volume
        assert volume.stat("\\startup.nsh").size > 0


def test_open_disk_accepts_a_gpt_without_protective_mbr(esp, tmp_path):
    _, _, path = esp
    target = tmp_path / "nopmbr.img"
    shutil.copyfile(path, target)
    with open(target, "r+b") as f:
        f.write(bytes(512))
    with D.open_disk(target) as disk:
        assert disk.table.scheme == "gpt" and disk.table.partitions[0].is_esp
        assert "without a protective MBR" in disk.notes[0]


# -- reads ------------------------------------------------------------------------------------


def test_reads_and_their_statuses(tmp_path):
    path = tmp_path / "disk.img"
    content = _data(64 * 512, 5)
    path.write_bytes(content)
    with D.DiskImage(path) as disk:
        assert disk.block_size == 512 and disk.blocks == 64 and disk.last_lba == 63 and disk.read_only
        assert disk.read(0) == content[:512] and disk.read(63) == content[-512:]
        assert disk.read(10, 3) == content[10 * 512:13 * 512]
        assert disk.read(64, 0) == b"" and disk.read_blocks(5, 0) == b""
        assert disk.read_blocks(2, 1024) == content[1024:2048]
        assert disk.read_bytes(1000, 3000) == content[1000:4000]
        assert disk.read_bytes(len(content), 0) == b""
        region = disk.region(8, 16)
        assert region.blocks == 16 and region.read(0) == content[8 * 512:9 * 512]
        cases = [
            (lambda: disk.read(64), Status.EFI_INVALID_PARAMETER),
            (lambda: disk.read(63, 2), Status.EFI_INVALID_PARAMETER),
            (lambda: disk.read(-1), Status.EFI_INVALID_PARAMETER),
            (lambda: disk.read_blocks(0, 100), Status.EFI_BAD_BUFFER_SIZE),
            (lambda: disk.read_blocks(64, 100), Status.EFI_BAD_BUFFER_SIZE),  # size is checked first
            (lambda: disk.read_blocks(64, 512), Status.EFI_INVALID_PARAMETER),
            (lambda: disk.read_bytes(len(content) - 1, 2), Status.EFI_INVALID_PARAMETER),
            (lambda: disk.read_bytes(-1, 2), Status.EFI_INVALID_PARAMETER),
            (lambda: region.read(16), Status.EFI_INVALID_PARAMETER),
            (lambda: region.read_bytes(16 * 512 - 1, 2), Status.EFI_INVALID_PARAMETER),
            (lambda: disk.region(60, 8), Status.EFI_INVALID_PARAMETER),
        ]
        for action, status in cases:
            with pytest.raises(D.DiskError) as caught:
                action()
            assert caught.value.status == status and isinstance(caught.value, EfiError)
        os.truncate(path, 32 * 512)  # the host file shrinks under the disk
        with pytest.raises(D.DiskError) as caught:
            disk.read(40)
        assert caught.value.status == Status.EFI_DEVICE_ERROR
    with pytest.raises(D.DiskError) as caught:
        disk.read(0)  # closed
    assert caught.value.status == Status.EFI_DEVICE_ERROR


def test_partition_region_reads_relative_to_the_partition(esp):
    disk, _, _ = esp
    part = disk.table.esp
    region = disk.partition(part)
    assert region.partition_info == part and region.blocks == part.blocks
    assert region.read(0) == disk.read(part.start_lba)
    boot = region.read(0)
    assert boot[510:512] == b"\x55\xaa" and boot[3:11] == b"MSWIN4.1"
    assert int.from_bytes(boot[28:32], "little") == D.ESP_START_LBA  # hidden sectors
