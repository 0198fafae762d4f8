"""The host stays out of reach (issue 15): a guest reads and writes guest RAM and what the user
handed over (the image, --initrd, --dtb, --esp, --disk, --vars and the files they name), and
nothing else; and what it prints cannot drive the user's terminal.

tests/test_volume.py checks the volume itself (its name rules, symlinks, FIFOs, device nodes,
sockets and races, called directly). These tests come from the guest's side: the firmware's
EFI_FILE_PROTOCOL, SIMPLE_FILE_SYSTEM and LoadImage called as the dispatcher calls them, with
the names in guest memory, on an ESP that holds links, a FIFO, a device node and a hard link
to files outside it; and tests/guests/files.c run on such an ESP.

Hard links. A hard link in the ESP to a file outside it is that file: the folder holds it,
and no one can tell it from any other file in the folder (efistub does not try). The guest
reads it; with --esp-writable it may write and truncate it, and then the file outside changes
too, as it would for any program given the folder. Delete and rename change the ESP's name
only. The guest cannot make a hard link, a symlink, a FIFO or a device node: no operation of
the file protocol creates anything but a regular file or a directory (checked below).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from efistub import cli, device_path, guids
from efistub.device_path import Node
from efistub.disk import esp_disk_from_folder
from efistub.dispatch import Call
from efistub.errors import EfiError, GuestMemoryError
from efistub.layouts import efi
from efistub.machine import Machine
from efistub.memory import MemoryType, ucs2
from efistub.protocols import simple_file_system as sfs
from efistub.services import image as images
from efistub.status import Status
from pe_builder import printing_image
from test_files import files_esp
from test_volume import assert_inside, no_hang, spy_on_host_paths

GUESTS = Path(__file__).parent / "guests"
SECRET = b"host secret outside the ESP\n"
INSIDE = b"a file the ESP holds\n"
REFUSED = {Status.EFI_NOT_FOUND, Status.EFI_INVALID_PARAMETER, Status.EFI_ACCESS_DENIED, Status.EFI_WRITE_PROTECTED}
MODE_READ = efi.FILE_MODE_READ
MODE_CREATE = efi.FILE_MODE_READ | efi.FILE_MODE_WRITE | efi.FILE_MODE_CREATE
# What the ESP holds besides its files: each name reaches outside, or is not a file at all
LINKS = ("out_file", "out_rel", "out_dir", "out_efi", "dangling_out", "up")
INFO_BUFFER = 0x400  # bytes for an EFI_FILE_INFO with its name
MESSAGING, MSG_URI = 0x03, 0x18  # a URI device path node (UEFI 2.10 §10.3.4.31)


# --- the ESP and the host around it -----------------------------------------------------------

def hostile_esp(tmp_path: Path) -> tuple[Path, Path]:
    """(esp, outside): an ESP whose links lead out, with a FIFO, a socket, a device node (when
    this host lets us make one) and a hard link to a file outside; beside it the host folder
    the guest must never reach, with an EFI image in it."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret").write_bytes(SECRET)
    (outside / "dir" / "inner").write_bytes(SECRET)
    shutil.copy(GUESTS / "x86_64" / "exit.efi", outside / "secret.efi")
    (outside / "shared").write_bytes(SECRET)
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(GUESTS / "x86_64" / "hello.efi", esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    (esp / "inside.txt").write_bytes(INSIDE)
    os.symlink(outside / "secret", esp / "out_file")
    os.symlink("../outside/secret", esp / "out_rel")
    os.symlink(outside / "dir", esp / "out_dir")
    os.symlink(outside / "secret.efi", esp / "out_efi")
    os.symlink(outside / "created", esp / "dangling_out")
    os.symlink("..", esp / "up")
    os.mkfifo(esp / "fifo")
    try:
        os.mknod(esp / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError):
        pass  # not root here: test_volume.py skips its device node test too
    os.link(outside / "shared", esp / "hard")
    return esp, outside


def snapshot(folder: Path, times: bool = True) -> dict:
    """Every entry below ``folder``: its kind, bytes and mode, and (``times``) its modification time."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = os.lstat(path)
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) if stat.S_ISLNK(st.st_mode) \
            else None
        out[str(path.relative_to(folder))] = (st.st_mode, data) + ((st.st_mtime_ns,) if times else ())
    return out


class Guest:
    """The firmware of a finished run with the ESP, its file protocol called as the dispatcher
    calls it: names and buffers in guest memory, EfiErrors as the statuses the guest gets."""

    def __init__(self, esp: Path, writable: bool):
        self.machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), esp_writable=writable,
                               boot_path="\\EFI\\BOOT\\BOOTX64.EFI")
        self.report = self.machine.run()
        self.fw = fw = self.machine.fw
        self.sfs = next(iter(fw.protocol_state["volumes"]))
        status, self.root = self.call(sfs.OpenVolume, self.sfs, self.pointer())
        assert status == Status.EFI_SUCCESS

    def pointer(self, value: int = 0) -> int:
        address = self.fw.store(MemoryType.EfiBootServicesData, bytes(8))
        self.fw.mem.write_uintn(address, value)
        return address

    def text(self, name: str | bytes) -> int:
        raw = name if isinstance(name, bytes) else (name + "\0").encode("utf-16-le", errors="surrogatepass")
        return self.fw.store(MemoryType.EfiBootServicesData, raw)

    def call(self, function, *args) -> tuple[Status, int | None]:
        """(status, what the last argument points at) of one call, as the guest sees them."""
        try:
            status = Status(function(self.fw, *args))
        except EfiError as e:
            status = Status(e.status)
        except GuestMemoryError:
            status = Status.EFI_INVALID_PARAMETER
        last = args[-1] if args and isinstance(args[-1], int) and args[-1] > 0x1000 else None
        return status, (self.fw.mem.read_uintn(last) if last is not None and status == Status.EFI_SUCCESS else None)

    def open(self, name: str | bytes, mode: int = MODE_READ, attributes: int = 0, parent: int | None = None):
        handle = self.pointer()
        status, _ = self.call(sfs.Open, self.root if parent is None else parent, handle, self.text(name), mode,
                              attributes)
        return status, (self.fw.mem.read_uintn(handle) if status == Status.EFI_SUCCESS else None)

    def read(self, handle: int, size: int = 4096) -> tuple[Status, bytes]:
        size_ptr, buffer = self.pointer(size), self.fw.allocate_pool(MemoryType.EfiBootServicesData, size)
        status, _ = self.call(sfs.Read, handle, size_ptr, buffer)
        count = self.fw.mem.read_uintn(size_ptr) if status == Status.EFI_SUCCESS else 0
        return status, self.fw.mem.read(buffer, count) if count else b""

    def listing(self, handle: int) -> list[str]:
        names = []
        while True:
            status, record = self.read(handle)
            assert status == Status.EFI_SUCCESS
            if not record:
                return names
            names.append(record[efi.FileInfo.c_flexible_offset:].decode("utf-16-le").split("\0", 1)[0])

    def rename(self, handle: int, new_name: str) -> Status:
        """SetInfo(FILE_INFO) with the file's own info and a new FileName."""
        size_ptr, buffer = self.pointer(INFO_BUFFER), self.fw.allocate_pool(MemoryType.EfiBootServicesData, INFO_BUFFER)
        status, _ = self.call(sfs.GetInfo, handle, self.guid(guids.FILE_INFO), size_ptr, buffer)
        assert status == Status.EFI_SUCCESS
        current = efi.FileInfo.parse(self.fw.mem.read(buffer, INFO_BUFFER))
        name = ucs2(new_name)
        fixed = efi.FileInfo.build(dict(current, Size=efi.FileInfo.c_flexible_offset + len(name)))
        info = fixed[:efi.FileInfo.c_flexible_offset] + name
        status, _ = self.call(sfs.SetInfo, handle, self.guid(guids.FILE_INFO), len(info),
                              self.fw.store(MemoryType.EfiBootServicesData, info))
        return status

    def guid(self, guid) -> int:
        return self.fw.store(MemoryType.EfiBootServicesData, guid.to_bytes())

    def opened_path(self, handle: int) -> str:
        return self.fw.protocol_state["files"][handle].path


@pytest.fixture
def world(tmp_path):
    esp, outside = hostile_esp(tmp_path)
    return esp, outside, snapshot(outside)


@pytest.fixture
def host_spy(monkeypatch):
    """Record every host path the os module is asked about while the test runs."""
    return spy_on_host_paths(monkeypatch)


# --- EFI_FILE_PROTOCOL.Open: every spelling of a way out --------------------------------------

def escape_names(outside: Path) -> list[str | bytes]:
    host = str(outside / "secret")
    return [
        "..", "..\\outside\\secret", "\\..\\outside\\secret", "../outside/secret", "\\EFI/..\\..\\outside\\secret",
        "EFI\\BOOT\\..\\..\\..\\outside\\secret", "\\\\..\\\\..\\\\outside", "./../outside/secret", ".\\..\\..",
        "EFI\\..\\..\\esp\\inside.txt",
        host, host.replace("/", "\\"), "C:\\outside\\secret", "C:..\\outside\\secret", "C:secret", "c:/",
        "\\\\?\\C:\\Windows", "\\\\?\\GLOBALROOT\\Device\\HarddiskVolume1", "\\\\.\\PhysicalDrive0",
        "\\\\server\\share\\secret", "//server/share/secret", "file://" + host, "file:///etc/passwd",
        "file://localhost/etc/passwd", "http://127.0.0.1/secret", "fs0:\\..\\outside\\secret", "FS0:secret",
        "%2e%2e\\outside\\secret", "..%5coutside%5csecret", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "\uff0e\uff0e\\outside\\secret", "..\u2215outside\u2215secret", "..\uff3coutside\uff3csecret",
        "..\u29f5outside", "~/secret", "$HOME/secret", "/proc/self/root/etc/passwd", "/proc/self/cwd/../outside",
        "/dev/zero", "\\dev\\null", "/etc/passwd\0", "x" * 256, "x" * 300 + "\\..\\..\\outside\\secret",
        "a\\" * 600 + "..\\" * 602 + "outside\\secret", "y" * 2000, "inside.txt\\..\\..\\outside\\secret",
        # a NUL inside the name: the guest's string ends there, and what follows is never looked at
        ("inside.txt\0..\\..\\outside\\secret\0").encode("utf-16-le"),
        ("\0\\..\\outside\\secret\0").encode("utf-16-le"),
        # not UTF-16: a lone surrogate, then the way out
        b"\x00\xd8.\x00.\x00\\\x00o\x00\x00\x00",
        *LINKS, "out_dir\\inner", "up\\outside\\secret", "fifo", "null", "FIFO", "Out_File",
    ]


@pytest.mark.parametrize("writable", [False, True], ids=["read-only", "writable"])
def test_no_file_name_opens_or_creates_a_host_file_outside_the_esp(world, host_spy, writable):
    esp, outside, before = world
    guest = Guest(esp, writable)
    del host_spy[:]  # the run itself (it built the ESP's disk image from the folder) is not the question
    for name in escape_names(outside):
        for mode in (MODE_READ, MODE_CREATE):
            for attributes in (0, efi.FILE_DIRECTORY):
                status, handle = no_hang(guest.open, name, mode, attributes)
                if status != Status.EFI_SUCCESS:
                    assert status in REFUSED, (name, mode, status)
                    continue
                path = guest.opened_path(handle)  # opened: a volume path, inside the ESP
                assert path.startswith("\\") and not any(p == ".." for p in path.split("\\")), (name, path)
                if not guest.fw.protocol_state["files"][handle].is_dir:
                    status, data = guest.read(handle)
                    assert SECRET not in data, (name, path)
    assert_inside(host_spy, esp)
    assert snapshot(outside) == before
    assert not (outside / "created").exists()


def test_what_a_nul_ends_and_what_the_volume_opened(world):
    """The name is the guest's string up to its NUL: "inside.txt\\0..\\..\\outside\\secret" is
    inside.txt. A name without a NUL is read up to 1024 characters and refused by length."""
    esp, _, _ = world
    guest = Guest(esp, False)
    status, handle = guest.open(("inside.txt\0..\\..\\outside\\secret\0").encode("utf-16-le"))
    assert status == Status.EFI_SUCCESS and guest.opened_path(handle) == "\\inside.txt"
    assert guest.read(handle) == (Status.EFI_SUCCESS, INSIDE)
    assert guest.open("z" * 5000)[0] == Status.EFI_INVALID_PARAMETER  # 1024 characters read: one too-long name


# --- links, FIFOs, sockets, device nodes and hard links in the ESP ----------------------------------

def test_links_out_fifos_and_device_nodes_are_refused_and_not_listed(world):
    esp, outside, before = world
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(esp / "sock"))
        guest = Guest(esp, True)
        for name in (*LINKS, "fifo", "sock", "out_dir\\inner", "up\\outside\\secret") + (
                ("null",) if (esp / "null").exists() else ()):
            status, _ = no_hang(guest.open, name)
            assert status == Status.EFI_ACCESS_DENIED, name
            status, _ = no_hang(guest.open, name, MODE_CREATE)
            assert status == Status.EFI_ACCESS_DENIED, name
        assert sorted(guest.listing(guest.root)) == ["EFI", "hard", "inside.txt"]
        assert {f["path"] for f in guest.report.files} <= {"\\EFI\\BOOT\\BOOTX64.EFI"}
    finally:
        sock.close()
    assert snapshot(outside) == before and not (outside / "created").exists()


def test_the_esp_disk_image_holds_nothing_from_outside(world):
    """The --esp folder is also served as a GPT disk with a FAT image of it, built as the run
    starts: without blocking on the FIFO, leaving out the links that lead out, and saying so."""
    esp, _, _ = world
    guest = Guest(esp, False)
    notes = "\n".join(guest.report.notes)
    for name in ("out_file", "out_rel", "out_dir", "out_efi"):
        assert f"{name}: refused: a symbolic link to " in notes, notes
    assert "fifo: skipped: a FIFO" in notes
    image = no_hang(esp_disk_from_folder, str(esp))
    try:
        raw = image.read_bytes(0, image.size)
    finally:
        image.close()
    assert raw.count(SECRET) == 1  # the hard link's: the folder holds that file
    assert (GUESTS / "x86_64" / "exit.efi").read_bytes()[:0x400] not in raw  # outside/secret.efi is not there


def test_a_symlink_the_host_makes_during_the_run_is_refused(world):
    """Each Open resolves the name again, and an open file is opened afresh (O_NOFOLLOW) for each
    Read and Write: a link that another host process puts in the ESP later is refused too."""
    esp, outside, before = world
    guest = Guest(esp, True)
    status, handle = guest.open("inside.txt", efi.FILE_MODE_READ | efi.FILE_MODE_WRITE)
    assert status == Status.EFI_SUCCESS
    os.unlink(esp / "inside.txt")
    os.symlink(outside / "secret", esp / "inside.txt")
    os.symlink(outside / "dir", esp / "EFI" / "late")
    status, data = guest.read(handle)
    assert status == Status.EFI_ACCESS_DENIED and SECRET not in data
    size_ptr = guest.pointer(5)
    assert guest.call(sfs.Write, handle, size_ptr, guest.text("pwned"))[0] == Status.EFI_ACCESS_DENIED
    assert guest.open("inside.txt")[0] == Status.EFI_ACCESS_DENIED
    assert guest.open("EFI\\late\\inner")[0] == Status.EFI_ACCESS_DENIED
    assert guest.open("EFI\\late\\new", MODE_CREATE)[0] == Status.EFI_ACCESS_DENIED
    assert snapshot(outside) == before


def test_the_guest_creates_nothing_but_files_and_directories(world):
    """Every way the file protocol makes or renames an entry, with every attribute: what exists
    afterwards is a regular file with one link, or a directory. No symlink, hard link, FIFO or
    device node can come from the guest."""
    esp, outside, before = world
    made_by_host = {p: os.lstat(p).st_ino for p in esp.rglob("*")}
    guest = Guest(esp, True)
    for i, attributes in enumerate(range(0, efi.FILE_VALID_ATTR + 1)):
        if attributes & ~efi.FILE_VALID_ATTR:
            continue
        status, handle = guest.open(f"new{i}", MODE_CREATE, attributes)
        assert status in {Status.EFI_SUCCESS} | REFUSED
        if status == Status.EFI_SUCCESS and i % 3 == 0:
            assert guest.rename(handle, f"moved{i}") in {Status.EFI_SUCCESS} | REFUSED
    status, handle = guest.open("EFI\\made", MODE_CREATE, efi.FILE_DIRECTORY)
    assert status == Status.EFI_SUCCESS
    for target in ("..\\..\\outside\\x", "\\..\\x", str(outside / "x"), "C:\\x", "..\\out_dir\\x", "up\\x"):
        assert guest.rename(handle, target) in REFUSED, target
    for path in esp.rglob("*"):
        if path in made_by_host:
            continue
        st = os.lstat(path)
        assert stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) and st.st_nlink == 1, path
    assert snapshot(outside) == before


def test_a_hard_link_is_the_file_it_links(world):
    """Documented above: the guest reads a hard-linked file; with --esp-writable it writes the
    one file both names share; Delete and rename change the ESP's name only."""
    esp, outside, _ = world
    guest = Guest(esp, True)
    status, handle = guest.open("hard", efi.FILE_MODE_READ | efi.FILE_MODE_WRITE)
    assert status == Status.EFI_SUCCESS
    assert guest.read(handle) == (Status.EFI_SUCCESS, SECRET)
    assert guest.call(sfs.SetPosition, handle, 0)[0] == Status.EFI_SUCCESS
    assert guest.call(sfs.Write, handle, guest.pointer(4), guest.text("ab"))[0] == Status.EFI_SUCCESS
    assert (outside / "shared").read_bytes()[:4] == "ab".encode("utf-16-le")  # the same inode
    assert guest.rename(handle, "renamed") == Status.EFI_SUCCESS
    assert (esp / "renamed").exists() and not (esp / "hard").exists() and (outside / "shared").exists()
    status, _ = guest.call(sfs.Delete, handle)
    assert status == Status.EFI_SUCCESS
    assert not (esp / "renamed").exists() and (outside / "shared").exists()
    assert os.lstat(outside / "shared").st_nlink == 1


# --- --esp-writable: writes that try to leave -----------------------------------------------------

def test_writable_renames_and_deletes_stay_inside(world, host_spy):
    esp, outside, before = world
    guest = Guest(esp, True)
    del host_spy[:]
    status, handle = guest.open("inside.txt", efi.FILE_MODE_READ | efi.FILE_MODE_WRITE)
    assert status == Status.EFI_SUCCESS
    for target in ("..\\x", "\\..\\x", "..\\..\\outside\\x", "../outside/x", str(outside / "x"),
                   str(outside / "x").replace("/", "\\"), "C:\\x", "out_dir\\x", "up\\x", "dangling_out",
                   "out_file", "\\EFI\\..\\..\\x", "x\\..\\..\\x", "fifo", "hard", "file:///tmp/x"):
        assert guest.rename(handle, target) in REFUSED, target
    assert (esp / "inside.txt").read_bytes() == INSIDE
    # the root: neither deleted nor renamed, through OpenVolume's handle or one opened as "." or "\\"
    for name in (None, ".", "\\", "EFI\\.."):
        root = guest.root if name is None else guest.open(name, efi.FILE_MODE_READ | efi.FILE_MODE_WRITE)[1]
        assert guest.rename(root, "elsewhere") in REFUSED | {Status.EFI_SUCCESS}
        assert guest.call(sfs.Delete, root)[0] == Status.EFI_WARN_DELETE_FAILURE
        if name is None:
            status, guest.root = guest.call(sfs.OpenVolume, guest.sfs, guest.pointer())
    # Delete of what a link names removes at most the link, never its target
    for name in ("EFI\\BOOT\\..\\..\\..\\outside\\secret", "out_dir\\inner"):
        status, handle = guest.open(name, efi.FILE_MODE_READ | efi.FILE_MODE_WRITE)
        assert status in REFUSED
    assert_inside(host_spy, esp)
    assert esp.is_dir() and (esp / "inside.txt").exists() and not (esp.parent / "elsewhere").exists()
    assert snapshot(outside) == before


# --- LoadImage: device paths that name host files --------------------------------------------------

def drive(generator):
    """Run a service written as a generator that makes no guest call; its status."""
    try:
        generator.send(None)
    except StopIteration as e:
        return e.value
    raise AssertionError("the service called guest code")


def load_image(guest: Guest, nodes: list[Node]) -> Status:
    fw = guest.fw
    path = fw.store(MemoryType.EfiBootServicesData, device_path.encode(nodes))
    handle_ptr = guest.pointer()
    try:
        status = Status(drive(images.LoadImage(fw, 1, fw.image_handle, path, 0, 0, handle_ptr)))
    except EfiError as e:
        status = Status(e.status)
    if status == Status.EFI_SUCCESS:
        loaded = fw.images[fw.mem.read_uintn(handle_ptr)]
        assert bytes(loaded.image.data) != (GUESTS / "x86_64" / "exit.efi").read_bytes()
        images.unload(fw, loaded)
    return status


def test_load_image_device_paths_naming_host_files(world, host_spy):
    esp, outside, before = world
    guest = Guest(esp, False)
    fw = guest.fw
    del host_spy[:]
    handle = next(h for h in fw.handles.with_protocol(guids.SIMPLE_FILE_SYSTEM_PROTOCOL))
    disk_path, _ = device_path.read(fw.mem, handle.protocols[guids.DEVICE_PATH_PROTOCOL])
    host = str(outside / "secret.efi")
    uri = Node(MESSAGING, MSG_URI, ("file://" + host).encode())
    attempts = [
        disk_path + [device_path.file_path("\\..\\outside\\secret.efi")],
        disk_path + [device_path.file_path("..\\..\\outside\\secret.efi")],
        disk_path + [device_path.file_path(host)],
        disk_path + [device_path.file_path(host.replace("/", "\\"))],
        disk_path + [device_path.file_path("\\EFI"), device_path.file_path("..\\..\\outside\\secret.efi")],
        disk_path + [device_path.file_path("out_efi")],
        disk_path + [device_path.file_path("up\\outside\\secret.efi")],
        disk_path + [device_path.file_path("C:\\outside\\secret.efi")],
        disk_path + [device_path.file_path("fifo")],
        [device_path.file_path(host)],
        [device_path.file_path("\\..\\outside\\secret.efi")],
        [uri], disk_path + [uri],
        [device_path.vendor_media(guids.LINUX_EFI_INITRD_MEDIA)],
    ]
    for nodes in attempts:
        status = no_hang(load_image, guest, nodes)
        assert status in REFUSED | {Status.EFI_UNSUPPORTED, Status.EFI_LOAD_ERROR}, (device_path.text(nodes), status)
    # the file path alone, as a boot option has it, expands to a volume's path only for a file inside
    for nodes in attempts[9:11]:
        assert images.expand_short_path(fw, nodes) == nodes
    assert load_image(guest, disk_path + [device_path.file_path("\\EFI\\BOOT\\BOOTX64.EFI")]) == Status.EFI_SUCCESS
    assert_inside(host_spy, esp)
    assert snapshot(outside) == before


def test_the_guest_side_file_protocol_contract_holds_on_a_hostile_esp(tmp_path):
    """tests/guests/files.c (writable) on its ESP with links out, a FIFO and a hard link added:
    its checks pass, it never sees them, and it leaves nothing behind, outside or in."""
    esp = files_esp(tmp_path / "esp", "x86_64")
    hostile, outside = hostile_esp(tmp_path / "hostile")
    for name in (*LINKS, "fifo", "hard"):
        if name == "up":
            os.symlink("../..", esp / "files" / "up")  # the folder above the ESP
        else:
            os.rename(hostile / name, esp / "files" / name)  # out_rel now dangles: refused all the same
    before_outside, before_esp = snapshot(outside), snapshot(esp, times=False)
    report = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), esp_writable=True,
                     boot_path="\\EFI\\BOOT\\BOOTX64.EFI").run()
    assert [line for line in report.console.splitlines() if line.startswith("FAIL")] == []
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    seen = {line.split('"')[1] for line in report.console.splitlines() if line.startswith("  info: entry ")}
    assert not seen & {*LINKS, "fifo"}, seen
    assert snapshot(outside) == before_outside and snapshot(esp, times=False) == before_esp


# --- the terminal ---------------------------------------------------------------------------------

HOSTILE_TEXT = ("\x1b[2J\x1b[H"  # clear the screen, cursor home
                "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # OSC 52: set the clipboard
                "\x1b]0;title\x1b\\"  # OSC 0 ended by ST: the window title
                "\x07"  # BEL
                "\x9b31m"  # a lone CSI (C1): red
                "\x1bP+q\x1b\\"  # DCS
                "\x9d8;;http://example.invalid\x9c"  # C1 OSC 8 hyperlink, C1 ST
                "\x7f\x1b"  # DEL, a lone ESC
                "efistub")


def assert_no_controls(text: str, allowed: str = "\n") -> None:
    bad = sorted({hex(ord(c)) for c in text if (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) and c not in allowed})
    assert bad == [], bad


def test_console_output_and_the_summary_cannot_drive_the_terminal(tmp_path):
    image, report_path = tmp_path / "escape.efi", tmp_path / "r.json"
    image.write_bytes(printing_image(HOSTILE_TEXT))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["run", str(image), "--json", str(report_path), "--trace"])
    assert code == cli.EXIT_OK
    assert_no_controls(out.getvalue())
    assert_no_controls(err.getvalue())
    assert "\\x1b[2J\\x1b[H\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in out.getvalue()
    assert "\\x9b31m" in out.getvalue() and "\\x1befistub" in out.getvalue()
    assert json.loads(report_path.read_text())["console"] == HOSTILE_TEXT  # the report keeps the raw text


def test_every_line_of_the_summary_is_one_line_without_controls():
    """The guest's strings reach the summary as exit data, variable names, notes, file names and
    fault reasons: shown escaped, and none of them starts a line of its own."""
    report = Machine(str(GUESTS / "x86_64" / "hello.efi")).run()
    forged = HOSTILE_TEXT + "\r\n--- efistub: handoff (x86_64) ---\n"
    report.outcome, report.exit_status, report.exit_data = "exit", forged, forged
    report.notes = [forged]
    report.images = [dict(report.images[0], source=forged, exit_status=forged), dict(report.images[0], parent=None)]
    report.calls.append(Call(len(report.calls), "GetVariable", {"VariableName": forged, "VendorGuid": forged},
                             status="EFI_NOT_FOUND", note=forged))
    report.files = [{"path": forged, "directory": False, "size": 1, "opened": 1, "bytes_read": 1,
                     "bytes_written": 0}]
    text = cli.summary(report)
    assert forged.split("\r")[0] not in text and "efistub" in text
    assert_no_controls(text)
    assert sum(line.startswith("--- efistub:") for line in text.splitlines()) == 1
    for outcome in ("fault", "timeout", "stalled"):
        report.outcome = outcome
        setattr(report, outcome, {"reason": forged, "pc": 0x1000, "instruction": forged, "caller": 0x1000})
        text = cli.summary(report)
        assert_no_controls(text)
        assert sum(line.startswith("--- efistub:") for line in text.splitlines()) == 1
    report.outcome, report.error = "error", {"error": forged, "traceback": "Traceback:\n  " + forged}
    assert_no_controls(cli.summary(report))


def test_a_trace_line_and_an_error_line_are_shown_escaped(tmp_path):
    """--trace shows the guest's strings (a file name, its call's note); a bad input's one-line
    error names the path, which may come from a folder (efistub scan)."""
    call = Call(7, "File.Open", {"FileName": HOSTILE_TEXT, "OpenMode": 1}, status="EFI_NOT_FOUND",
                note=f"\\{HOSTILE_TEXT}\n: no such file or directory")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        cli._print_call(call)
        code = cli.main(["run", str(tmp_path / (HOSTILE_TEXT.replace("/", "_") + ".efi"))])
    assert code == cli.EXIT_INPUT
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("efistub: error: ")
    assert_no_controls(err.getvalue())
