"""The host-folder volume (efistub/volume.py): FAT name rules, the calls, and above all
that a guest never reaches a host file outside the folder."""

import errno
import os
import socket
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import efistub.volume as volume
from efistub.errors import EfiError, InputError
from efistub.status import Status
from efistub.volume import (EFI_FILE_ARCHIVE, EFI_FILE_DIRECTORY, EFI_FILE_READ_ONLY, Entry, HostVolume,
                            VolumeError, VolumeInfo)

BOOT = b"MZ" + bytes(range(256)) * 4
SECRET = b"host secret outside the ESP\n"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def status_of(fn, *args, **kwargs) -> Status:
    with pytest.raises(VolumeError) as e:
        fn(*args, **kwargs)
    assert isinstance(e.value.status, Status)
    return e.value.status


def no_hang(fn, *args, timeout=5.0):
    """Run fn in a thread: a call that opened a FIFO would block; fail instead of hanging."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn.__name__}{args} blocked"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An ESP folder and, next to it, a host folder the guest must never reach."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    (outside / "dir").mkdir()
    (outside / "dir" / "inner").write_bytes(SECRET)
    root = tmp_path / "esp"
    (root / "EFI" / "BOOT").mkdir(parents=True)
    (root / "EFI" / "BOOT" / "BOOTX64.EFI").write_bytes(BOOT)
    (root / "EFI" / "systemd").mkdir()
    (root / "EFI" / "systemd" / "systemd-bootx64.efi").write_bytes(b"MZ systemd-boot")
    (root / "loader" / "entries").mkdir(parents=True)
    (root / "loader" / "loader.conf").write_text("timeout 3\n")
    (root / "vmlinuz").write_bytes(b"kernel" * 100)
    (root / "empty").mkdir()
    return root


@pytest.fixture
def ro(tree) -> HostVolume:
    return HostVolume(str(tree))


@pytest.fixture
def rw(tree) -> HostVolume:
    return HostVolume(str(tree), writable=True)


def case_sensitive(folder: Path) -> bool:
    probe = folder / "CaseProbe"
    probe.write_bytes(b"")
    try:
        return not (folder / "caseprobe").exists()
    finally:
        probe.unlink()


# --- construction -----------------------------------------------------------------------


def test_root_must_exist_and_be_a_directory(tmp_path):
    with pytest.raises(InputError) as e:
        HostVolume(str(tmp_path / "missing"))
    assert e.value.path == str(tmp_path / "missing")
    assert "\n" not in str(e.value) and "no such directory" in str(e.value)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InputError) as e:
        HostVolume(str(tmp_path / "file"))
    assert "not a directory" in e.value.problem and "\n" not in str(e.value)


def test_defaults(ro, tree):
    assert ro.read_only is True
    assert ro.label == "EFISTUB"
    assert ro.root == os.path.realpath(tree)
    assert HostVolume(tree, writable=True, label="ESP").read_only is False


def test_volume_error_is_an_efi_error_with_status_and_message(ro):
    with pytest.raises(VolumeError) as e:
        ro.stat("\\nope")
    assert isinstance(e.value, EfiError) and isinstance(e.value, Exception)
    assert e.value.status is Status.EFI_NOT_FOUND
    assert "\\nope" in e.value.message
    assert e.value.note == e.value.message
    assert str(e.value).startswith("EFI_NOT_FOUND: ")
    assert VolumeError(int(Status.EFI_ACCESS_DENIED), "x").status is Status.EFI_ACCESS_DENIED


# --- resolve: the FAT name rules --------------------------------------------------------


def test_resolve_case_insensitive_gives_on_disk_case(ro):
    assert ro.resolve("\\", "efi\\boot\\bootx64.efi") == "\\EFI\\BOOT\\BOOTX64.EFI"
    assert ro.resolve("\\", "\\Efi\\Boot") == "\\EFI\\BOOT"
    assert ro.resolve("\\efi\\boot", ".") == "\\EFI\\BOOT"


def test_resolve_separators(ro):
    assert ro.resolve("\\", "EFI/BOOT/BOOTX64.EFI") == "\\EFI\\BOOT\\BOOTX64.EFI"
    assert ro.resolve("\\", "\\\\EFI\\\\\\BOOT\\\\") == "\\EFI\\BOOT"
    assert ro.resolve("\\", "EFI\\/BOOT/") == "\\EFI\\BOOT"
    assert ro.resolve("\\EFI", "\\") == "\\"
    assert ro.resolve("\\", "\\") == "\\"


def test_resolve_relative_dot_and_dotdot(ro):
    assert ro.resolve("\\EFI", "BOOT") == "\\EFI\\BOOT"
    assert ro.resolve("\\EFI\\BOOT", "..\\systemd\\.\\systemd-bootx64.efi") == "\\EFI\\systemd\\systemd-bootx64.efi"
    assert ro.resolve("\\EFI\\BOOT", "..\\..") == "\\"
    assert ro.resolve("\\EFI\\BOOT", ".") == "\\EFI\\BOOT"
    assert ro.resolve("\\EFI\\BOOT", "\\loader\\loader.conf") == "\\loader\\loader.conf"
    assert ro.resolve("EFI", "BOOT") == "\\EFI\\BOOT"  # a directory without the leading separator


def test_resolve_keeps_a_missing_last_component_as_given(ro):
    assert ro.resolve("\\efi", "NewFile.TXT") == "\\EFI\\NewFile.TXT"
    assert ro.resolve("\\", "loader\\entries\\Arch.conf") == "\\loader\\entries\\Arch.conf"
    assert ro.resolve("\\", "brand-new\\") == "\\brand-new"


def test_resolve_not_found(ro):
    assert status_of(ro.resolve, "\\", "nope\\x") == Status.EFI_NOT_FOUND
    assert status_of(ro.resolve, "\\", "vmlinuz\\x") == Status.EFI_NOT_FOUND  # a file as a directory
    assert status_of(ro.resolve, "\\", "vmlinuz\\") == Status.EFI_NOT_FOUND  # trailing separator on a file
    assert status_of(ro.resolve, "\\", "nope\\..") == Status.EFI_NOT_FOUND
    assert status_of(ro.resolve, "\\", "nope\\.") == Status.EFI_NOT_FOUND
    assert status_of(ro.resolve, "\\nope", "x") == Status.EFI_NOT_FOUND
    assert status_of(ro.resolve, "\\vmlinuz", "x") == Status.EFI_NOT_FOUND


def test_resolve_dotdot_at_the_root_is_invalid_as_on_edk2(ro):
    assert status_of(ro.resolve, "\\", "..") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "\\..\\x") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\EFI", "..\\..\\etc\\passwd") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\EFI\\BOOT", "\\..\\EFI") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "EFI\\..\\..\\esp\\vmlinuz") == Status.EFI_INVALID_PARAMETER


def test_dotdot_escapes_stay_inside(tree, ro):
    # Two levels up from \EFI\BOOT is the root: \etc\passwd is the volume's own file.
    assert status_of(ro.resolve, "\\EFI\\BOOT", "..\\..\\etc\\passwd") == Status.EFI_NOT_FOUND
    (tree / "etc").mkdir()
    (tree / "etc" / "passwd").write_bytes(b"volume passwd")
    path = ro.resolve("\\EFI\\BOOT", "..\\..\\etc\\passwd")
    assert path == "\\etc\\passwd"
    assert ro.read(path, 0, 100) == b"volume passwd"
    assert ro.read("/etc/passwd", 0, 100) == b"volume passwd"


def test_host_paths_are_names_inside_the_volume(ro, rw, tree):
    assert ro.resolve("\\", "C:\\") == "\\C:"
    assert status_of(ro.stat, "C:\\") == Status.EFI_NOT_FOUND
    assert status_of(ro.resolve, "\\", "C:\\Windows\\System32") == Status.EFI_NOT_FOUND
    assert status_of(ro.resolve, "\\", "/etc/passwd") == Status.EFI_NOT_FOUND
    assert status_of(ro.read, "/etc/passwd", 0, 10) == Status.EFI_NOT_FOUND
    outside = str(tree.parent / "outside" / "secret")
    assert status_of(ro.read, outside, 0, 10) == Status.EFI_NOT_FOUND
    # FAT has no ':' in names: a guest cannot make one either.
    assert status_of(rw.create, "C:\\") == Status.EFI_INVALID_PARAMETER


def test_resolve_refuses_bad_names_without_the_host(ro, monkeypatch):
    monkeypatch.setattr(volume, "os", Bomb())
    assert status_of(ro.resolve, "\\", "") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "a\0b") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "EFI\\\0") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "x" * 256) == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "EFI\\" + "x" * 300 + "\\y") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "\U0001F600" * 128) == Status.EFI_INVALID_PARAMETER  # 256 UCS-2 units
    assert status_of(ro.resolve, "\\", "bad\ud800name") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.resolve, "\\", "bad\udcffname") == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.stat, "") == Status.EFI_INVALID_PARAMETER


def test_longest_name_is_255(ro, rw):
    name = "n" * 255
    assert ro.resolve("\\", name) == "\\" + name
    assert rw.create("\\" + name).name == name
    assert ro.stat("\\" + name.upper()).name == name


def test_case_duplicates_exact_first_then_first_sorted(tree, ro):
    if not case_sensitive(tree):
        pytest.skip("the host file system folds case")
    d = tree / "dups"
    d.mkdir()
    for name in ("boot", "BOOT", "Boot"):
        (d / name).write_text(name)
    assert ro.resolve("\\", "dups\\boot") == "\\dups\\boot"
    assert ro.resolve("\\", "dups\\Boot") == "\\dups\\Boot"
    assert ro.resolve("\\", "DUPS\\bOOt") == "\\dups\\BOOT"  # "BOOT" < "Boot" < "boot"
    assert ro.read("\\dups\\BoOt", 0, 10) == b"BOOT"
    assert [e.name for e in ro.list("\\dups")] == [".", "..", "BOOT", "Boot", "boot"]


def test_non_ascii_names_fold_case(tree, ro):
    (tree / "Ärger").write_bytes(b"umlaut")
    (tree / "straße").write_bytes(b"sharp s")
    assert ro.resolve("\\", "äRGER") == "\\Ärger"
    assert ro.resolve("\\", "STRAßE") == "\\straße"
    assert ro.resolve("\\", "STRASSE") == "\\STRASSE"  # no one-to-many folding: a new name


# --- what the guest may not reach -------------------------------------------------------


@pytest.fixture
def links(tree) -> Path:
    outside = tree.parent / "outside"
    os.symlink("/etc", tree / "etc_link")
    os.symlink(outside / "secret", tree / "secret_abs")
    os.symlink("../outside/secret", tree / "secret_rel")
    os.symlink("../outside/dir", tree / "dir_rel")
    os.symlink("../../..", tree / "EFI" / "up3")
    os.symlink("..", tree / "up1")
    os.symlink("/dev/null", tree / "null")
    os.symlink("vmlinuz", tree / "kernel_link")
    os.symlink("EFI/BOOT", tree / "boot_link")
    os.symlink(str(tree / "loader" / "loader.conf"), tree / "conf_abs")
    os.symlink("../BOOT/BOOTX64.EFI", tree / "EFI" / "systemd" / "to_boot")
    os.symlink("kernel_link", tree / "chain")
    os.symlink("secret_rel", tree / "chain_out")
    os.symlink("EFI/../../outside/secret", tree / "dotdot_out")
    os.symlink("EFI/../vmlinuz", tree / "dotdot_in")
    os.symlink("nowhere", tree / "dangling")
    os.symlink("loop_b", tree / "loop_a")
    os.symlink("loop_a", tree / "loop_b")
    os.symlink("self", tree / "self")
    os.symlink("vmlinuz/x", tree / "through_file")
    return tree


OUTSIDE_LINKS = ["etc_link", "secret_abs", "secret_rel", "dir_rel", "up1", "null", "chain_out", "dotdot_out"]
BROKEN_LINKS = ["dangling", "loop_a", "loop_b", "self", "through_file"]


@pytest.mark.parametrize("name", OUTSIDE_LINKS + BROKEN_LINKS)
def test_links_out_of_the_root_or_broken_are_access_denied(links, name):
    ro = HostVolume(str(links))
    rw = HostVolume(str(links), writable=True)
    assert status_of(ro.resolve, "\\", name) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.stat, name) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.read, name, 0, 10) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.list, name) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.resolve, "\\", name + "\\passwd") == Status.EFI_ACCESS_DENIED
    assert status_of(ro.resolve, "\\", name + "\\..\\vmlinuz") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.create, name + "\\new") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.create, name) == Status.EFI_ACCESS_DENIED
    assert status_of(rw.write, name, 0, b"x") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.delete, name) == Status.EFI_ACCESS_DENIED
    assert status_of(rw.rename, "\\vmlinuz", name + "\\vmlinuz") == Status.EFI_ACCESS_DENIED
    assert name not in [e.name for e in ro.list("\\")]
    assert os.path.lexists(links / name)
    assert (links.parent / "outside" / "secret").read_bytes() == SECRET
    assert sorted(os.listdir(links.parent / "outside")) == ["dir", "secret"]


def test_link_out_as_an_intermediate_component(links, ro):
    assert status_of(ro.read, "\\etc_link\\passwd", 0, 100) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.read, "\\dir_rel\\inner", 0, 100) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.resolve, "\\EFI", "up3\\outside\\secret") == Status.EFI_ACCESS_DENIED
    assert status_of(ro.resolve, "\\", "EFI\\UP3") == Status.EFI_ACCESS_DENIED


def test_links_inside_the_root_work(links, ro):
    assert ro.read("\\kernel_link", 0, 6) == b"kernel"
    assert ro.stat("\\kernel_link") == Entry("kernel_link", 600, False, False, *times_of(links / "vmlinuz"))
    assert ro.read("\\chain", 0, 6) == b"kernel"
    assert ro.read("\\dotdot_in", 0, 6) == b"kernel"
    assert ro.read("\\conf_abs", 0, 100) == b"timeout 3\n"
    assert ro.read("\\EFI\\systemd\\to_boot", 0, 2) == b"MZ"
    assert ro.resolve("\\", "BOOT_LINK\\bootx64.efi") == "\\boot_link\\BOOTX64.EFI"
    assert ro.read("\\boot_link\\BOOTX64.EFI", 0, len(BOOT)) == BOOT
    # ".." is the parent along the volume path, not the link target's.
    assert ro.resolve("\\", "boot_link\\..\\vmlinuz") == "\\vmlinuz"
    assert ro.stat("\\boot_link").is_dir
    names = [e.name for e in ro.list("\\")]
    assert {"kernel_link", "chain", "dotdot_in", "conf_abs", "boot_link"} <= set(names)
    assert [e.name for e in ro.list("\\boot_link")] == [".", "..", "BOOTX64.EFI"]


def test_root_given_through_a_symlink(tree, tmp_path):
    os.symlink(tree, tmp_path / "esp_link")
    os.symlink(str(tmp_path / "esp_link" / "vmlinuz"), tree / "via_given")
    v = HostVolume(str(tmp_path / "esp_link"))
    assert v.root == os.path.realpath(tree)
    assert v.read("\\via_given", 0, 6) == b"kernel"
    assert v.read("\\EFI\\BOOT\\BOOTX64.EFI", 0, 2) == b"MZ"


def test_a_symlink_is_deleted_and_renamed_itself_never_its_target(links, rw):
    rw.delete("\\kernel_link")
    assert not os.path.lexists(links / "kernel_link")
    assert (links / "vmlinuz").read_bytes() == b"kernel" * 100
    rw.create("\\emptylink_target", directory=True)
    os.symlink("emptylink_target", links / "dirlink")
    rw.delete("\\dirlink")
    assert not os.path.lexists(links / "dirlink") and (links / "emptylink_target").is_dir()
    assert status_of(rw.delete, "\\boot_link") == Status.EFI_ACCESS_DENIED  # points at a non-empty directory
    assert rw.rename("\\conf_abs", "conf2") == "\\conf2"
    assert os.path.islink(links / "conf2") and (links / "loader" / "loader.conf").exists()


def test_exponential_symlinks_are_cut_short(tree, ro):
    os.symlink(".", tree / "l0")
    for i in range(1, 30):
        os.symlink(f"l{i - 1}/l{i - 1}", tree / f"l{i}")
    start = time.monotonic()
    assert status_of(ro.resolve, "\\", "l29") == Status.EFI_ACCESS_DENIED
    assert ro.resolve("\\", "l3") == "\\l3"
    assert time.monotonic() - start < 5


HOST_PATH_FUNCTIONS = ("lstat", "stat", "listdir", "readlink", "open", "mkdir", "rmdir", "unlink", "rename", "chmod",
                       "utime", "statvfs", "scandir", "link", "symlink", "mkfifo", "mknod", "truncate", "replace")


def spy_on_host_paths(monkeypatch) -> list[str]:
    """Record every host path the os module is asked about (until ``monkeypatch`` is undone)."""
    touched: list[str] = []
    for name in HOST_PATH_FUNCTIONS:
        original = getattr(os, name, None)
        if original is None:
            continue

        def spy(path, *args, _original=original, **kwargs):
            if isinstance(path, (str, bytes, os.PathLike)):
                touched.append(os.fsdecode(path))
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    return touched


def assert_inside(touched: list[str], root: Path) -> None:
    """Every path in ``touched`` is ``root`` or below it."""
    paths = list(touched)  # before realpath, which the spy sees too
    real = os.path.realpath(root)
    stray = [p for p in paths if p != real and not p.startswith(real + os.sep)]
    assert stray == [], stray


def test_the_host_outside_the_root_is_never_touched(links, monkeypatch):
    v = HostVolume(str(links), writable=True)
    touched = spy_on_host_paths(monkeypatch)
    attempts = [
        (v.resolve, "\\EFI\\BOOT", "..\\..\\..\\outside\\secret"),
        (v.resolve, "\\", "\\..\\outside"),
        (v.read, "/etc/passwd", 0, 10),
        (v.read, "C:\\Windows", 0, 10),
        (v.create, "..\\outside\\new"),
        (v.rename, "\\vmlinuz", "..\\outside\\vmlinuz"),
        (v.rename, "\\vmlinuz", "\\..\\vmlinuz"),
    ] + [(v.stat, f"\\{name}\\x") for name in OUTSIDE_LINKS + BROKEN_LINKS] \
      + [(v.create, f"\\{name}\\x") for name in OUTSIDE_LINKS]
    for fn, *args in attempts:
        with pytest.raises(VolumeError):
            fn(*args)
    v.list("\\")
    v.info()
    monkeypatch.undo()
    assert touched
    assert_inside(touched, links)
    assert sorted(os.listdir(links.parent / "outside")) == ["dir", "secret"]


def test_fifo_is_refused_and_never_opened(tree, ro, rw):
    os.mkfifo(tree / "fifo")
    os.mkfifo(tree / "EFI" / "pipe")
    for fn, args in [(ro.stat, ("\\fifo",)), (ro.read, ("\\fifo", 0, 10)), (ro.resolve, ("\\", "FIFO")),
                     (ro.list, ("\\fifo",)), (rw.write, ("\\fifo", 0, b"x")), (rw.set_size, ("\\fifo", 0)),
                     (rw.create, ("\\fifo",)), (rw.delete, ("\\fifo",)), (rw.rename, ("\\fifo", "x")),
                     (rw.set_attributes, ("\\fifo", True)), (rw.set_times, ("\\fifo", None, None)),
                     (ro.read, ("\\EFI\\pipe", 0, 1)), (ro.resolve, ("\\", "EFI\\pipe\\x"))]:
        with pytest.raises(VolumeError) as e:
            no_hang(fn, *args)
        assert e.value.status == Status.EFI_ACCESS_DENIED, (fn.__name__, args)
    assert "fifo" not in [e.name for e in no_hang(ro.list, "\\")]
    assert stat.S_ISFIFO(os.lstat(tree / "fifo").st_mode)


def test_a_fifo_swapped_in_after_resolving_is_not_opened(tree, rw, monkeypatch):
    """The race: resolution saw a regular file, the host then put a FIFO there."""
    found = rw._existing("\\vmlinuz")
    os.unlink(tree / "vmlinuz")
    os.mkfifo(tree / "vmlinuz")
    monkeypatch.setattr(rw, "_file", lambda path, what: found)
    for fn, args in [(rw.read, ("\\vmlinuz", 0, 10)), (rw.write, ("\\vmlinuz", 0, b"x"))]:
        with pytest.raises(VolumeError) as e:
            no_hang(fn, *args)
        assert e.value.status == Status.EFI_ACCESS_DENIED


def test_a_symlink_swapped_in_after_resolving_is_not_followed(tree, rw, monkeypatch):
    found = rw._existing("\\vmlinuz")
    os.unlink(tree / "vmlinuz")
    os.symlink(tree.parent / "outside" / "secret", tree / "vmlinuz")
    monkeypatch.setattr(rw, "_file", lambda path, what: found)
    assert status_of(rw.read, "\\vmlinuz", 0, 100) == Status.EFI_ACCESS_DENIED
    assert status_of(rw.write, "\\vmlinuz", 0, b"pwned") == Status.EFI_ACCESS_DENIED
    assert (tree.parent / "outside" / "secret").read_bytes() == SECRET


def test_device_node_is_refused(tree, ro):
    try:
        os.mknod(tree / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except (PermissionError, AttributeError, OSError) as e:
        pytest.skip(f"cannot make a device node here: {e}")
    assert status_of(ro.stat, "\\zero") == Status.EFI_ACCESS_DENIED
    assert status_of(ro.read, "\\zero", 0, 10) == Status.EFI_ACCESS_DENIED
    assert "zero" not in [e.name for e in ro.list("\\")]


def test_socket_is_refused(tree, ro):
    path = str(tree / "sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(path)
        except OSError as e:
            pytest.skip(f"cannot bind a socket at {path}: {e}")
        assert status_of(ro.stat, "\\sock") == Status.EFI_ACCESS_DENIED
        assert status_of(ro.read, "\\sock", 0, 1) == Status.EFI_ACCESS_DENIED
        assert "sock" not in [e.name for e in ro.list("\\")]
    finally:
        sock.close()


def test_host_names_the_guest_cannot_spell_are_not_listed(tree, ro):
    (tree / "back\\slash").write_bytes(b"x")
    try:
        with open(os.path.join(os.fsencode(tree), b"bad\xffname"), "wb"):
            pass
    except OSError:
        pass  # a file system that insists on UTF-8
    names = [e.name for e in ro.list("\\")]
    assert "back\\slash" not in names
    assert all(not any("\udc80" <= c <= "\udcff" for c in n) for n in names)
    assert status_of(ro.stat, "\\back\\slash") == Status.EFI_NOT_FOUND


# --- stat and list ----------------------------------------------------------------------


def times_of(path: Path):
    st = os.stat(path)

    def t(ns):
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)

    return t(min(st.st_ctime_ns, st.st_mtime_ns)), t(st.st_atime_ns), t(st.st_mtime_ns)


def test_stat_file(tree, ro):
    e = ro.stat("\\efi\\boot\\bootx64.efi")
    assert e.name == "BOOTX64.EFI"
    assert e.size == len(BOOT) and not e.is_dir and not e.read_only
    assert e.attributes == EFI_FILE_ARCHIVE
    assert e.modified.tzinfo is not None and e.modified.utcoffset() == timedelta(0)
    assert (e.created, e.accessed, e.modified) == times_of(tree / "EFI" / "BOOT" / "BOOTX64.EFI")
    assert e.created <= e.modified


def test_stat_directory_and_root(ro):
    e = ro.stat("\\EFI\\")
    assert (e.name, e.size, e.is_dir, e.attributes) == ("EFI", 0, True, EFI_FILE_DIRECTORY)
    root = ro.stat("\\")
    assert root.name == "" and root.is_dir and root.size == 0


def test_read_only_from_host_permission_bits(tree, ro):
    os.chmod(tree / "vmlinuz", 0o444)
    os.chmod(tree / "empty", 0o555)
    e = ro.stat("\\vmlinuz")
    assert e.read_only and e.attributes == EFI_FILE_READ_ONLY | EFI_FILE_ARCHIVE
    assert ro.stat("\\empty").attributes == EFI_FILE_READ_ONLY | EFI_FILE_DIRECTORY
    os.chmod(tree / "empty", 0o755)


def test_entry_attributes():
    t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert Entry("a", 1, False, False, t, t, t).attributes == 0x20
    assert Entry("a", 1, False, True, t, t, t).attributes == 0x21
    assert Entry("a", 0, True, False, t, t, t).attributes == 0x10
    assert Entry("a", 0, True, True, t, t, t).attributes == 0x11


def test_extreme_host_times_are_clamped(tree, ro):
    os.utime(tree / "vmlinuz", ns=(0, -(10**9) * 86400 * 365 * 200))  # 1770
    e = ro.stat("\\vmlinuz")
    assert e.accessed == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert e.modified == times_of(tree / "vmlinuz")[2]  # before 1970 (as far as the file system keeps it)
    assert e.modified.year < 1970
    assert volume._time(10**30).year == 9999  # beyond datetime's range
    assert volume._time(-(10**30)).year == 1900


def test_list_root_sorted_without_dot_entries(tree, ro):
    (tree / "Zeta").write_bytes(b"")
    (tree / "alpha").write_bytes(b"")
    names = [e.name for e in ro.list("\\")]
    assert names == ["alpha", "EFI", "empty", "loader", "vmlinuz", "Zeta"]


def test_list_subdirectory_starts_with_dot_entries(tree, ro):
    entries = ro.list("\\efi")
    assert [e.name for e in entries] == [".", "..", "BOOT", "systemd"]
    dot, dotdot = entries[0], entries[1]
    assert dot.is_dir and dotdot.is_dir and dot.attributes == dotdot.attributes == EFI_FILE_DIRECTORY
    assert dot.modified == ro.stat("\\EFI").modified
    assert dotdot.modified == ro.stat("\\").modified
    deep = ro.list("\\EFI\\BOOT")
    assert [e.name for e in deep] == [".", "..", "BOOTX64.EFI"]
    assert deep[2].size == len(BOOT)
    assert [e.name for e in ro.list("\\empty")] == [".", ".."]


def test_list_errors(ro):
    assert status_of(ro.list, "\\vmlinuz") == Status.EFI_ACCESS_DENIED
    assert status_of(ro.list, "\\nope") == Status.EFI_NOT_FOUND


@pytest.mark.skipif(IS_ROOT, reason="root reads and lists everything")
def test_unreadable_host_files_are_device_errors(tree, ro):
    os.chmod(tree / "vmlinuz", 0)
    os.chmod(tree / "loader", 0o300)
    try:
        with pytest.raises(VolumeError) as e:
            ro.read("\\vmlinuz", 0, 10)
        assert e.value.status == Status.EFI_DEVICE_ERROR and "Permission denied" in e.value.message
        assert status_of(ro.list, "\\loader") == Status.EFI_DEVICE_ERROR
    finally:
        os.chmod(tree / "vmlinuz", 0o644)
        os.chmod(tree / "loader", 0o755)


def test_host_io_errors_are_device_errors_naming_the_problem(ro, monkeypatch):
    def failing(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(volume.os, "pread", failing)
    with pytest.raises(VolumeError) as e:
        ro.read("\\vmlinuz", 0, 10)
    assert e.value.status == Status.EFI_DEVICE_ERROR
    assert "\\vmlinuz" in e.value.message and "Input/output error" in e.value.message
    monkeypatch.setattr(volume.os, "listdir", failing)
    assert status_of(ro.list, "\\") == Status.EFI_DEVICE_ERROR


# --- read -------------------------------------------------------------------------------


def test_read(ro):
    assert ro.read("\\EFI\\BOOT\\BOOTX64.EFI", 0, len(BOOT)) == BOOT
    assert ro.read("\\EFI\\BOOT\\BOOTX64.EFI", 2, 4) == bytes([0, 1, 2, 3])
    assert ro.read("\\EFI\\BOOT\\BOOTX64.EFI", len(BOOT) - 3, 100) == BOOT[-3:]  # short at the end
    assert ro.read("\\EFI\\BOOT\\BOOTX64.EFI", len(BOOT), 100) == b""  # at the end
    assert ro.read("\\vmlinuz", 0, 0) == b""


def test_read_errors(ro):
    assert status_of(ro.read, "\\vmlinuz", 601, 1) == Status.EFI_DEVICE_ERROR  # beyond the end
    assert status_of(ro.read, "\\EFI", 0, 1) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.read, "\\", 0, 1) == Status.EFI_ACCESS_DENIED
    assert status_of(ro.read, "\\nope", 0, 1) == Status.EFI_NOT_FOUND
    assert status_of(ro.read, "\\vmlinuz", -1, 1) == Status.EFI_INVALID_PARAMETER
    assert status_of(ro.read, "\\vmlinuz", 0, -1) == Status.EFI_INVALID_PARAMETER


# --- a read-only volume -----------------------------------------------------------------


class Bomb:
    """Stands in for the os module: any use of the host fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the host was touched: os.{name}")


MUTATIONS = [
    ("write", ("\\vmlinuz", 0, b"x")),
    ("create", ("\\new",)),
    ("create", ("\\newdir", True)),
    ("delete", ("\\vmlinuz",)),
    ("set_size", ("\\vmlinuz", 0)),
    ("set_attributes", ("\\vmlinuz", True)),
    ("set_times", ("\\vmlinuz", None, datetime(2000, 1, 1, tzinfo=timezone.utc))),
    ("rename", ("\\vmlinuz", "linux")),
    ("set_label", ("NEW",)),
    ("write", ("\\nope\\..\\..\\bad\0", 0, b"x")),
    ("delete", ("\\",)),
]


@pytest.mark.parametrize("method,args", MUTATIONS, ids=[f"{m}{i}" for i, (m, _) in enumerate(MUTATIONS)])
def test_read_only_volume_refuses_every_change_before_touching_the_host(ro, monkeypatch, method, args):
    monkeypatch.setattr(volume, "os", Bomb())
    assert status_of(getattr(ro, method), *args) == Status.EFI_WRITE_PROTECTED


def test_read_only_volume_changes_nothing(tree, ro):
    before = sorted((str(p.relative_to(tree)), p.stat().st_mtime_ns) for p in tree.rglob("*"))
    for method, args in MUTATIONS:
        with pytest.raises(VolumeError):
            getattr(ro, method)(*args)
    after = sorted((str(p.relative_to(tree)), p.stat().st_mtime_ns) for p in tree.rglob("*"))
    assert before == after
    assert ro.label == "EFISTUB"


# --- write, create, delete, set_size ----------------------------------------------------


def test_write(tree, rw):
    rw.write("\\vmlinuz", 0, b"KERNEL")
    assert (tree / "vmlinuz").read_bytes()[:12] == b"KERNELkernel"
    rw.write("\\VMLINUZ", 600, b"tail")
    assert (tree / "vmlinuz").read_bytes()[596:] == b"rnel" + b"tail"
    rw.write("\\vmlinuz", 700, bytearray(b"gap"))
    data = (tree / "vmlinuz").read_bytes()
    assert len(data) == 703 and data[604:700] == bytes(96) and data[700:] == b"gap"
    assert rw.read("\\vmlinuz", 604, 96) == bytes(96)
    rw.write("\\vmlinuz", 0, memoryview(b""))
    assert len((tree / "vmlinuz").read_bytes()) == 703


def test_write_errors(tree, rw):
    assert status_of(rw.write, "\\EFI", 0, b"x") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.write, "\\", 0, b"x") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.write, "\\nope", 0, b"x") == Status.EFI_NOT_FOUND
    assert status_of(rw.write, "\\vmlinuz", -1, b"x") == Status.EFI_INVALID_PARAMETER
    os.chmod(tree / "vmlinuz", 0o444)
    assert status_of(rw.write, "\\vmlinuz", 0, b"x") == Status.EFI_ACCESS_DENIED
    assert (tree / "vmlinuz").read_bytes() == b"kernel" * 100


def test_full_host_file_system_is_volume_full(rw, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(volume.os, "pwrite", full)
    assert status_of(rw.write, "\\vmlinuz", 0, b"x") == Status.EFI_VOLUME_FULL


def test_read_only_host_mount_is_write_protected(rw, monkeypatch):
    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(volume.os, "mkdir", erofs)
    assert status_of(rw.create, "\\newdir", True) == Status.EFI_WRITE_PROTECTED


def test_create_file_and_directory(tree, rw):
    e = rw.create("\\efi\\Linux")
    assert (e.name, e.size, e.is_dir, e.attributes) == ("Linux", 0, False, EFI_FILE_ARCHIVE)
    assert (tree / "EFI" / "Linux").read_bytes() == b""
    d = rw.create("\\EFI\\NewDir", directory=True)
    assert d.is_dir and d.name == "NewDir" and (tree / "EFI" / "NewDir").is_dir()
    assert rw.create("\\EFI\\NewDir\\..\\..\\top.txt").name == "top.txt"
    assert (tree / "top.txt").is_file()
    assert rw.resolve("\\", "efi\\newdir") == "\\EFI\\NewDir"


def test_create_existing_opens_it(tree, rw):
    e = rw.create("\\VMLINUZ")
    assert e.name == "vmlinuz" and e.size == 600
    assert (tree / "vmlinuz").read_bytes() == b"kernel" * 100  # not truncated
    assert rw.create("\\efi", directory=True).name == "EFI"
    assert status_of(rw.create, "\\vmlinuz", True) == Status.EFI_ACCESS_DENIED
    assert status_of(rw.create, "\\EFI") == Status.EFI_ACCESS_DENIED


def test_create_errors(tree, rw):
    assert status_of(rw.create, "\\nope\\file") == Status.EFI_NOT_FOUND
    assert status_of(rw.create, "\\vmlinuz\\file") == Status.EFI_NOT_FOUND
    assert status_of(rw.create, "\\..\\file") == Status.EFI_INVALID_PARAMETER
    for bad in ("a:b", "a*b", "a?b", 'a"b', "a<b", "a>b", "a|b", "a\x01b", "tab\tname"):
        assert status_of(rw.create, "\\" + bad) == Status.EFI_INVALID_PARAMETER, bad
    assert status_of(rw.create, "\\" + "x" * 256) == Status.EFI_INVALID_PARAMETER
    assert status_of(rw.create, "\\a\0b") == Status.EFI_INVALID_PARAMETER
    assert not (tree.parent / "file").exists()
    assert sorted(os.listdir(tree)) == ["EFI", "empty", "loader", "vmlinuz"]


def test_delete(tree, rw):
    rw.delete("\\Vmlinuz")
    assert not (tree / "vmlinuz").exists()
    rw.delete("\\EMPTY\\")
    assert not (tree / "empty").exists()
    assert status_of(rw.stat, "\\vmlinuz") == Status.EFI_NOT_FOUND


def test_delete_refusals(tree, rw):
    assert status_of(rw.delete, "\\EFI") == Status.EFI_ACCESS_DENIED  # not empty
    assert status_of(rw.delete, "\\") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.delete, "\\nope") == Status.EFI_NOT_FOUND
    os.chmod(tree / "vmlinuz", 0o444)
    assert status_of(rw.delete, "\\vmlinuz") == Status.EFI_ACCESS_DENIED
    os.mkfifo(tree / "empty" / "hidden_fifo")  # not listed, but the directory is not empty
    assert [e.name for e in rw.list("\\empty")] == [".", ".."]
    assert status_of(rw.delete, "\\empty") == Status.EFI_ACCESS_DENIED
    assert (tree / "EFI" / "BOOT" / "BOOTX64.EFI").exists() and (tree / "vmlinuz").exists()


def test_set_size(tree, rw):
    rw.set_size("\\vmlinuz", 6)
    assert (tree / "vmlinuz").read_bytes() == b"kernel"
    rw.set_size("\\vmlinuz", 10)
    assert (tree / "vmlinuz").read_bytes() == b"kernel" + bytes(4)
    rw.set_size("\\vmlinuz", 0)
    assert rw.stat("\\vmlinuz").size == 0


def test_set_size_refusals(tree, rw):
    assert status_of(rw.set_size, "\\EFI", 4096) == Status.EFI_ACCESS_DENIED
    rw.set_size("\\EFI", 0)  # a directory's size is 0: unchanged
    assert status_of(rw.set_size, "\\vmlinuz", -1) == Status.EFI_INVALID_PARAMETER
    assert status_of(rw.set_size, "\\nope", 1) == Status.EFI_NOT_FOUND
    os.chmod(tree / "vmlinuz", 0o444)
    rw.set_size("\\vmlinuz", 600)  # unchanged: fine even when read-only
    assert status_of(rw.set_size, "\\vmlinuz", 1) == Status.EFI_ACCESS_DENIED
    assert (tree / "vmlinuz").stat().st_size == 600


# --- attributes, times, rename ----------------------------------------------------------


def test_set_attributes(tree, rw):
    rw.set_attributes("\\vmlinuz", True)
    assert stat.S_IMODE((tree / "vmlinuz").stat().st_mode) & 0o222 == 0
    assert rw.stat("\\vmlinuz").read_only
    assert status_of(rw.write, "\\vmlinuz", 0, b"x") == Status.EFI_ACCESS_DENIED
    rw.set_attributes("\\vmlinuz", True)  # unchanged
    rw.set_attributes("\\vmlinuz", False)
    assert not rw.stat("\\vmlinuz").read_only
    rw.write("\\vmlinuz", 0, b"K")
    rw.set_attributes("\\EFI", True)
    assert rw.stat("\\EFI").attributes == EFI_FILE_DIRECTORY | EFI_FILE_READ_ONLY
    rw.set_attributes("\\EFI", False)
    assert status_of(rw.set_attributes, "\\", True) == Status.EFI_ACCESS_DENIED
    assert status_of(rw.set_attributes, "\\nope", True) == Status.EFI_NOT_FOUND


def test_metadata_of_a_file_the_host_will_not_open(tree, rw, monkeypatch):
    """Without read permission there is no descriptor: the resolved path is used."""
    real_open = os.open

    def no_read(path, flags, *args, **kwargs):
        if not flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    os.chmod(tree / "vmlinuz", 0o200)
    monkeypatch.setattr(volume.os, "open", no_read)
    rw.set_attributes("\\vmlinuz", True)
    assert stat.S_IMODE((tree / "vmlinuz").stat().st_mode) == 0
    rw.set_attributes("\\vmlinuz", False)
    rw.set_times("\\vmlinuz", None, datetime(2003, 1, 1, tzinfo=timezone.utc))
    assert rw.stat("\\vmlinuz").modified == datetime(2003, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(VolumeError) as e:
        rw.read("\\vmlinuz", 0, 1)
    assert e.value.status == Status.EFI_DEVICE_ERROR and "Permission denied" in e.value.message


def test_set_times(tree, rw):
    accessed = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=timezone.utc)
    modified = datetime(2002, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    rw.set_times("\\vmlinuz", accessed, modified)
    e = rw.stat("\\vmlinuz")
    assert e.accessed == accessed
    assert e.modified == modified and e.modified.tzinfo == timezone.utc
    rw.set_times("\\vmlinuz", None, datetime(2010, 1, 1))  # naive is UTC; None keeps
    e = rw.stat("\\vmlinuz")
    assert e.accessed == accessed and e.modified == datetime(2010, 1, 1, tzinfo=timezone.utc)
    rw.set_times("\\EFI", None, modified)
    assert rw.stat("\\EFI").modified == modified
    assert status_of(rw.set_times, "\\", None, modified) == Status.EFI_ACCESS_DENIED


def test_set_times_on_a_read_only_file_keeps_them(tree, rw):
    os.chmod(tree / "vmlinuz", 0o444)
    before = rw.stat("\\vmlinuz")
    rw.set_times("\\vmlinuz", datetime(2001, 1, 1), datetime(2001, 1, 1))
    assert rw.stat("\\vmlinuz") == before


def test_rename_in_place(tree, rw):
    assert rw.rename("\\vmlinuz", "linux") == "\\linux"
    assert not (tree / "vmlinuz").exists() and (tree / "linux").read_bytes() == b"kernel" * 100
    assert rw.rename("\\EFI\\BOOT\\BOOTX64.EFI", "old.efi") == "\\EFI\\BOOT\\old.efi"
    assert rw.rename("\\loader", "Loader2") == "\\Loader2"
    assert (tree / "Loader2" / "loader.conf").exists()


def test_rename_case_only_and_same_name(tree, rw):
    assert rw.rename("\\vmlinuz", "VMLINUZ") == "\\VMLINUZ"
    assert os.listdir(tree).count("VMLINUZ") == 1 and "vmlinuz" not in os.listdir(tree)
    assert rw.rename("\\vmlinuz", "VMLINUZ") == "\\VMLINUZ"  # unchanged
    assert status_of(rw.rename, "\\VMLINUZ", ".") == Status.EFI_ACCESS_DENIED  # the root exists


def test_rename_moves(tree, rw):
    # A path is resolved from the directory holding the file, or from the root.
    assert rw.rename("\\EFI\\BOOT\\BOOTX64.EFI", "..\\systemd\\x.efi") == "\\EFI\\systemd\\x.efi"
    assert (tree / "EFI" / "systemd" / "x.efi").read_bytes() == BOOT
    assert rw.rename("\\vmlinuz", "\\efi\\vmlinuz") == "\\EFI\\vmlinuz"
    assert rw.rename("\\EFI\\vmlinuz", "\\vmlinuz") == "\\vmlinuz"
    assert rw.rename("\\empty", "\\loader\\entries\\moved") == "\\loader\\entries\\moved"
    assert (tree / "loader" / "entries" / "moved").is_dir()


def test_rename_refusals(tree, rw):
    assert status_of(rw.rename, "\\vmlinuz", "EFI") == Status.EFI_ACCESS_DENIED  # exists
    assert status_of(rw.rename, "\\vmlinuz", "\\loader\\LOADER.CONF") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.rename, "\\", "x") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.rename, "\\EFI", "BOOT\\inner") == Status.EFI_NOT_FOUND  # \BOOT is not there
    assert status_of(rw.rename, "\\EFI", "EFI\\BOOT\\x") == Status.EFI_ACCESS_DENIED  # below itself
    assert status_of(rw.rename, "\\EFI", "\\EFI\\BOOT\\EFI") == Status.EFI_ACCESS_DENIED  # below itself
    assert status_of(rw.rename, "\\EFI", "\\efi\\x") == Status.EFI_ACCESS_DENIED
    assert status_of(rw.rename, "\\vmlinuz", "\\nope\\vmlinuz") == Status.EFI_NOT_FOUND
    assert status_of(rw.rename, "\\vmlinuz", "a:b") == Status.EFI_INVALID_PARAMETER
    assert status_of(rw.rename, "\\vmlinuz", "") == Status.EFI_INVALID_PARAMETER
    assert status_of(rw.rename, "\\vmlinuz", "x\0") == Status.EFI_INVALID_PARAMETER
    assert status_of(rw.rename, "\\nope", "x") == Status.EFI_NOT_FOUND
    os.chmod(tree / "vmlinuz", 0o444)
    assert status_of(rw.rename, "\\vmlinuz", "linux") == Status.EFI_ACCESS_DENIED
    assert sorted(os.listdir(tree)) == ["EFI", "empty", "loader", "vmlinuz"]


def test_rename_through_links_inside(tree, rw):
    os.symlink("EFI", tree / "efi_alias")
    assert rw.rename("\\vmlinuz", "\\efi_alias\\vmlinuz") == "\\efi_alias\\vmlinuz"
    assert (tree / "EFI" / "vmlinuz").is_file()
    # \EFI below itself by way of the alias: the host refuses, and so does the volume.
    assert status_of(rw.rename, "\\EFI", "\\efi_alias\\moved") == Status.EFI_ACCESS_DENIED
    assert (tree / "EFI").is_dir()


def test_a_link_to_the_root_itself(tree, ro):
    os.symlink(".", tree / "here")
    assert ro.resolve("\\", "here\\HERE\\vmlinuz") == "\\here\\here\\vmlinuz"
    assert ro.read("\\here\\here\\vmlinuz", 0, 6) == b"kernel"
    assert ro.resolve("\\here\\here", "..\\..") == "\\"
    assert status_of(ro.resolve, "\\here\\here", "..\\..\\..") == Status.EFI_INVALID_PARAMETER


def test_rename_never_leaves_the_root(tree, rw):
    for target in ("..\\vmlinuz", "\\..\\vmlinuz", "..\\..\\outside\\vmlinuz", "\\..\\..\\..\\tmp\\vmlinuz"):
        assert status_of(rw.rename, "\\vmlinuz", target) == Status.EFI_INVALID_PARAMETER, target
    assert status_of(rw.rename, "\\EFI\\BOOT\\BOOTX64.EFI", "..\\..\\..\\x") == Status.EFI_INVALID_PARAMETER
    assert status_of(rw.rename, "\\vmlinuz", "/tmp/vmlinuz") == Status.EFI_NOT_FOUND
    assert (tree / "vmlinuz").exists()
    assert sorted(os.listdir(tree.parent / "outside")) == ["dir", "secret"]
    assert "vmlinuz" not in os.listdir(tree.parent)


# --- the volume -------------------------------------------------------------------------


def test_info(tree, ro):
    info = ro.info()
    assert isinstance(info, VolumeInfo)
    vfs = os.statvfs(tree)
    assert info.volume_size == vfs.f_blocks * vfs.f_frsize > 0
    assert 0 <= info.free_space <= info.volume_size
    assert (info.block_size, info.read_only, info.label) == (512, True, "EFISTUB")


def test_set_label(rw, tree):
    before = sorted(os.listdir(tree))
    rw.set_label("MY ESP")
    assert rw.label == "MY ESP" and rw.info().label == "MY ESP" and rw.info().read_only is False
    assert sorted(os.listdir(tree)) == before
    assert status_of(rw.set_label, "bad\0") == Status.EFI_INVALID_PARAMETER
    assert rw.label == "MY ESP"
