"""Boot chains from an ESP folder: efistub boot --esp, LoadImage from a device path, systemd-boot to the kernel.

The ESP folders are built in temporary folders from corpus files (never copied into the project).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import corpus_file
from efistub.machine import Machine
from pe_builder import ukify

GUESTS = Path(__file__).parent / "guests"
ENTRY_OPTIONS = "console=ttyS0 rdinit=/init efistub-entry"
SYSTEMD_BOOT = {  # arch: (systemd-boot, the removable-media name, kernel, initrd)
    "x86_64": ("x86_64/257.13-1~deb13u1_systemd-bootx64.efi", "BOOTX64.EFI",
               "x86_64/vmlinuz-6.12.117+deb13-amd64", "initrd/initrd-busybox.cpio.gz"),
    "aarch64": ("aarch64/257.13-1~deb13u1_systemd-bootaa64.efi", "BOOTAA64.EFI",
                "aarch64/vmlinuz-6.12.117+deb13-arm64", "initrd/initrd-busybox-arm64.cpio.gz"),
    "riscv64": ("riscv64/systemd-bootriscv64.efi", "BOOTRISCV64.EFI",
                "riscv64/vmlinux-6.12.117+deb13-riscv64", "initrd/initrd-busybox-riscv64.cpio.gz"),
}


def systemd_boot_esp(corpus, folder: Path, arch: str) -> Path:
    """An ESP with systemd-boot as the removable-media boot file and one Type #1 entry."""
    loader, boot_name, kernel, initrd = SYSTEMD_BOOT[arch]
    (folder / "EFI" / "BOOT").mkdir(parents=True)
    (folder / "loader" / "entries").mkdir(parents=True)
    shutil.copy(corpus_file(corpus, loader), folder / "EFI" / "BOOT" / boot_name)
    shutil.copy(corpus_file(corpus, kernel), folder / "vmlinuz")
    shutil.copy(corpus_file(corpus, initrd), folder / "initrd.img")
    (folder / "loader" / "loader.conf").write_text("timeout 0\ndefault efistub.conf\n")
    (folder / "loader" / "entries" / "efistub.conf").write_text(
        f"title efistub\nlinux /vmlinuz\ninitrd /initrd.img\noptions {ENTRY_OPTIONS}\n")
    return folder


@pytest.mark.parametrize("arch", sorted(SYSTEMD_BOOT))
def test_systemd_boot_hands_off_to_the_kernel_of_its_loader_entry(corpus, tmp_path, arch):
    esp = systemd_boot_esp(corpus, tmp_path / "esp", arch)
    boot_path = "\\EFI\\BOOT\\" + SYSTEMD_BOOT[arch][1]
    machine = Machine(str(esp / "EFI" / "BOOT" / SYSTEMD_BOOT[arch][1]), esp=str(esp), boot_path=boot_path)
    report = machine.run()
    assert report.outcome == "handoff", report.fault or report.timeout or report.error
    assert report.arch == arch
    initrd = (esp / "initrd.img").read_bytes()
    handoff = report.handoff
    if arch == "x86_64":
        bp = handoff["boot_params"]
        cmdline, initrd_at = bp["cmdline"], (bp["ramdisk_image"], bp["ramdisk_size"])
    else:
        cmdline = handoff["fdt"]["chosen"]["bootargs"]
        media = next(t["initrd"] for t in handoff["configuration_tables"] if "initrd" in t)
        initrd_at = (media["base"], media["size"])
    assert cmdline == f"initrd=\\initrd.img {ENTRY_OPTIONS}"
    # systemd-boot serves the initrd through its own LOAD_FILE2; the stub loads it from there
    assert initrd_at[1] == len(initrd) and machine.fw.mem.read(*initrd_at) == initrd
    calls = [(c.service, c.status) for c in report.calls]
    # the kernel takes over during systemd-boot's StartImage: that call never returns
    assert ("LoadImage", "EFI_SUCCESS") in calls and calls.index(("StartImage", None)) > calls.index(
        ("LoadImage", "EFI_SUCCESS"))
    assert ("ExitBootServices", "EFI_SUCCESS") in calls[-2:]  # riscv64: SetVirtualAddressMap comes after it
    load = next(c for c in report.calls if c.service == "LoadImage")
    assert load.args["SourceBuffer"] == 0  # the kernel came from the device path, through SIMPLE_FILE_SYSTEM
    assert ("File.Open", "EFI_SUCCESS") in calls and ("SimpleFileSystem.OpenVolume", "EFI_SUCCESS") in calls
    assert report.unimplemented == []


def test_efistub_boot_finds_the_removable_media_boot_file(tmp_path):
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(GUESTS / "aarch64" / "exit.efi", esp / "EFI" / "BOOT" / "BOOTAA64.EFI")
    result = subprocess.run([sys.executable, "-m", "efistub", "boot", "--esp", str(esp)], capture_output=True,
                            text=True, timeout=120)
    assert "--- efistub: exit (aarch64) ---" in result.stdout, result.stderr
    assert result.returncode == 1  # exit.efi exits with EFI_INVALID_PARAMETER


@pytest.mark.parametrize("args, problem", [
    ([], "needs --esp DIR"),
    (["--esp", "/nonexistent/esp"], "/nonexistent/esp: no such directory"),
])
def test_efistub_boot_refuses_bad_input_in_one_line(tmp_path, args, problem):
    result = subprocess.run([sys.executable, "-m", "efistub", "boot", *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_run_with_esp_refuses_a_file_as_the_folder(tmp_path):
    image = GUESTS / "x86_64" / "hello.efi"
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(image), "--esp", str(image)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(image) in result.stderr


def test_efistub_boot_says_which_boot_files_it_looked_for(tmp_path):
    (tmp_path / "EFI").mkdir()
    result = subprocess.run([sys.executable, "-m", "efistub", "boot", "--esp", str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "no boot file" in result.stderr and "BOOTX64.EFI" in result.stderr


def test_shim_loads_grub_from_its_own_folder(corpus, tmp_path):
    """shim 16.1 (Secure Boot off) finds grubx64.efi beside itself through SIMPLE_FILE_SYSTEM and runs
    it. Without a disk GRUB finds no configuration and waits at its prompt: a stall, not a hang."""
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(corpus_file(corpus, "x86_64/shimx64.efi"), esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    shutil.copy(corpus_file(corpus, "x86_64/2.06-13+deb12u2_grubx64.efi"), esp / "EFI" / "BOOT" / "grubx64.efi")
    report = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                     timeout=60).run()
    opened = [(c.args["FileName"], c.status) for c in report.calls if c.service == "File.Open"]
    assert ("\\EFI\\BOOT\\grubx64.efi", "EFI_SUCCESS") in opened
    assert ("\\EFI\\BOOT\\fbx64.efi", "EFI_NOT_FOUND") in opened  # shim's fallback loader is not there
    assert "grub>" in report.console
    assert report.outcome == "stalled", report.fault or report.timeout
    assert report.stalled["waiting_for"] == "a key press, and no --keys input is left"


UKI_CMDLINE = "console=ttyS0 rdinit=/init efistub-uki"


def make_uki(corpus, out: Path) -> Path:
    """A UKI from the corpus systemd-stub, the 6.12 kernel, the busybox initrd and a .cmdline, as
    ukify lays one out: the sections after the stub's, at its section alignment (objcopy)."""
    stub = corpus_file(corpus, "x86_64/257.13-1~deb13u1_linuxx64.efi.stub")
    parts = out.parent / "uki-parts"
    parts.mkdir()
    (parts / "osrel").write_text('ID=efistub\nNAME="efistub test"\n')
    (parts / "cmdline").write_text(UKI_CMDLINE)
    sections = {".osrel": parts / "osrel", ".cmdline": parts / "cmdline",
                ".linux": corpus_file(corpus, "x86_64/vmlinuz-6.12.117+deb13-amd64"),
                ".initrd": corpus_file(corpus, "initrd/initrd-busybox.cpio.gz")}
    return ukify(stub, sections, out)


def assert_uki_handoff(machine, report, initrd: bytes):
    assert report.outcome == "handoff", report.fault or report.timeout or report.error
    bp = report.handoff["boot_params"]
    assert bp["cmdline"] == UKI_CMDLINE  # from the UKI's .cmdline
    # systemd-stub hands the kernel its .initrd, with a small cpio of its own appended
    received = machine.fw.mem.read(bp["ramdisk_image"], bp["ramdisk_size"])
    assert received.startswith(initrd) and len(received) - len(initrd) < 4096


def test_a_uki_runs_on_its_own_to_the_handoff(corpus, tmp_path):
    uki = make_uki(corpus, tmp_path / "uki.efi")
    machine = Machine(str(uki))
    report = machine.run()
    assert_uki_handoff(machine, report, corpus_file(corpus, "initrd/initrd-busybox.cpio.gz").read_bytes())
    stub, kernel = report.images
    assert kernel["parent"] == stub["handle"] and kernel["source"].startswith("VenMedia(")  # from .linux, in memory


def test_systemd_boot_runs_a_uki_from_efi_linux(corpus, tmp_path):
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    (esp / "EFI" / "Linux").mkdir()
    (esp / "loader").mkdir()
    shutil.copy(corpus_file(corpus, SYSTEMD_BOOT["x86_64"][0]), esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    make_uki(corpus, esp / "EFI" / "Linux" / "efistub-uki.efi")
    (esp / "loader" / "loader.conf").write_text("timeout 0\n")  # the one Type #2 entry is the default
    machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI")
    report = machine.run()
    assert_uki_handoff(machine, report, corpus_file(corpus, "initrd/initrd-busybox.cpio.gz").read_bytes())
    assert [i["source"] for i in report.images][:2] == ["\\EFI\\BOOT\\BOOTX64.EFI", "\\EFI\\Linux\\efistub-uki.efi"]
    assert len(report.images) == 3  # systemd-boot, the UKI's stub, the kernel


GRUB_OPTIONS = "console=ttyS0 rdinit=/init efistub-grub"


def grub_esp(corpus, esp: Path, grub_name: str) -> Path:
    """An ESP with GRUB 2.06 as \\EFI\\BOOT\\<grub_name>, its grub.cfg beside it, the kernel and the initrd."""
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copy(corpus_file(corpus, "x86_64/2.06-13+deb12u2_grubx64.efi"), esp / "EFI" / "BOOT" / grub_name)
    shutil.copy(corpus_file(corpus, SYSTEMD_BOOT["x86_64"][2]), esp / "vmlinuz")
    shutil.copy(corpus_file(corpus, SYSTEMD_BOOT["x86_64"][3]), esp / "initrd.img")
    (esp / "EFI" / "BOOT" / "grub.cfg").write_text(
        f"set timeout=0\nmenuentry efistub {{\n  linux /vmlinuz {GRUB_OPTIONS}\n  initrd /initrd.img\n}}\n")
    return esp


def test_grub_reads_its_config_through_block_io_and_boots_the_kernel(corpus, tmp_path):
    """GRUB 2.06 never uses SIMPLE_FILE_SYSTEM: it finds its device among the BLOCK_IO handles (the ESP
    folder as a GPT disk with a FAT partition), reads grub.cfg with its own FAT driver, loads the kernel
    and the initrd, calls ExitBootServices itself and jumps to the kernel through its relocator."""
    esp = grub_esp(corpus, tmp_path / "esp", "BOOTX64.EFI")
    machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                      timeout=60)
    report = machine.run()
    assert report.outcome == "handoff", report.fault or report.timeout or report.stalled
    bp = report.handoff["boot_params"]
    assert bp["cmdline"] == f"BOOT_IMAGE=/vmlinuz {GRUB_OPTIONS}"
    initrd = (esp / "initrd.img").read_bytes()
    assert bp["ramdisk_size"] == len(initrd) and machine.fw.mem.read(bp["ramdisk_image"], len(initrd)) == initrd
    services = {c.service for c in report.calls}
    assert "BlockIo.ReadBlocks" in services and "File.Open" not in services
    assert any("a loader's trampoline" in note for note in report.notes)  # GRUB's relocator ran first


def test_shim_grub_kernel_chain(corpus, tmp_path):
    """shim 16.1 -> GRUB 2.06 (grubx64.efi beside shim, its grub.cfg beside it) -> the 6.12 kernel."""
    esp = grub_esp(corpus, tmp_path / "esp", "grubx64.efi")
    shutil.copy(corpus_file(corpus, "x86_64/shimx64.efi"), esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                      timeout=60)
    report = machine.run()
    assert report.outcome == "handoff", report.fault or report.timeout or report.stalled
    assert report.handoff["boot_params"]["cmdline"] == f"BOOT_IMAGE=/vmlinuz {GRUB_OPTIONS}"
    opened = [(c.args["FileName"], c.status) for c in report.calls if c.service == "File.Open"]
    assert ("\\EFI\\BOOT\\grubx64.efi", "EFI_SUCCESS") in opened  # shim read GRUB through SIMPLE_FILE_SYSTEM
    assert "BlockIo.ReadBlocks" in {c.service for c in report.calls}  # GRUB read its files through BLOCK_IO


def test_grub_boots_from_a_disk_image(corpus, tmp_path):
    """--disk FILE: a GPT disk image whose FAT ESP holds GRUB, its grub.cfg, the kernel and the initrd."""
    from efistub.disk import esp_disk_from_folder

    folder = grub_esp(corpus, tmp_path / "esp", "BOOTX64.EFI")
    disk = tmp_path / "disk.img"
    esp_disk_from_folder(folder, path=disk).close()
    result = subprocess.run([sys.executable, "-m", "efistub", "boot", "--disk", str(disk), "--json", "-"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["outcome"] == "handoff"
    assert report["handoff"]["boot_params"]["cmdline"] == f"BOOT_IMAGE=/vmlinuz {GRUB_OPTIONS}"
    assert report["images"][0]["source"] == "\\EFI\\BOOT\\BOOTX64.EFI"  # read from the disk's FAT ESP


@pytest.mark.parametrize("content, problem", [(b"", "empty"), (b"x" * 1000, "multiple of 512")])
def test_a_disk_that_is_not_a_disk_image_is_refused_in_one_line(tmp_path, content, problem):
    disk = tmp_path / "bad.img"
    disk.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUESTS / "x86_64" / "hello.efi"),
                             "--disk", str(disk)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(disk) in result.stderr and problem in result.stderr


def load_option(description: str, nodes: list, data: bytes = b"", active: bool = True) -> bytes:
    from efistub import device_path
    from efistub.layouts import efi

    paths = device_path.encode(nodes)
    return (efi.LoadOptionHeader.build(dict(Attributes=int(active), FilePathListLength=len(paths)))
            + (description + "\0").encode("utf-16-le") + paths + data)


def test_boot_options_in_boot_order_come_before_the_removable_media_file(tmp_path):
    """Boot#### in BootOrder: a missing file is skipped with a note, an inactive option too, the first one
    that loads runs with its OptionalData as LoadOptions and BootCurrent set; the removable-media file
    (hello.efi) is not started. The options use short forms: HD()/File() and File() alone."""
    from efistub import device_path, guids
    from efistub.disk import esp_disk_from_folder
    from efistub.protocols.block_io import partition_node

    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    (esp / "EFI" / "test").mkdir()
    shutil.copy(GUESTS / "x86_64" / "hello.efi", esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    shutil.copy(GUESTS / "x86_64" / "exit.efi", esp / "EFI" / "test" / "exit.efi")
    with esp_disk_from_folder(esp, seed=0) as disk:  # the disk efistub will build: the same ESP partition node
        hd = partition_node(disk.table.esp)
    machine = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI")
    variables = machine.variables
    variables.set("Boot0001", guids.GLOBAL_VARIABLE, data=load_option("missing", [device_path.file_path("\\nope.efi")]))
    variables.set("Boot0003", guids.GLOBAL_VARIABLE, data=load_option(
        "inactive", [device_path.file_path("\\EFI\\BOOT\\BOOTX64.EFI")], active=False))
    variables.set("Boot0002", guids.GLOBAL_VARIABLE, data=load_option(
        "exit test", [hd, device_path.file_path("\\EFI\\test\\exit.efi")], "boot-option-data".encode("utf-16-le")))
    variables.set("BootOrder", guids.GLOBAL_VARIABLE, data=bytes([1, 0, 3, 0, 2, 0]))
    report = machine.run()
    assert report.outcome == "exit" and report.exit_status == "EFI_INVALID_PARAMETER"
    assert report.exit_data == "exit-data-marker"
    assert [i["source"] for i in report.images] == ["\\EFI\\BOOT\\BOOTX64.EFI", "\\EFI\\test\\exit.efi"]
    assert not report.images[0]["started"] and report.images[1]["outcome"] == "exit"
    assert any(n.startswith("Boot0001 (missing): not loaded") for n in report.notes)
    assert variables.get("BootCurrent", guids.GLOBAL_VARIABLE).data == (2).to_bytes(2, "little")
    child = machine.fw.image_chain[1]
    interface = machine.fw.handles.get(child.handle).protocols[guids.LOADED_IMAGE_PROTOCOL]
    loaded = machine.fw.mem.read_struct(machine.fw.layout.LoadedImage, interface)
    assert machine.fw.mem.read(loaded.LoadOptions, loaded.LoadOptionsSize) == "boot-option-data".encode("utf-16-le")


def test_grub_loads_the_kernel_from_an_ext2_partition_of_a_disk(corpus, tmp_path):
    """--disk with two GPT partitions: the FAT ESP with GRUB and its grub.cfg, and an ext2 /boot (made by
    mke2fs -d) with the kernel and the initrd, which GRUB reads with its own ext2 driver through BLOCK_IO."""
    from efistub.disk import ESP_TYPE, fat_image_from_folder, gpt_disk, guid_from_seed
    from efistub.guids import Guid

    mke2fs = shutil.which("mke2fs") or shutil.which("mke2fs", path="/usr/sbin:/sbin")
    if mke2fs is None:
        pytest.skip("mke2fs (e2fsprogs) is not installed: cannot build an ext2 partition")
    esp, boot = tmp_path / "esp", tmp_path / "boot"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    boot.mkdir()
    shutil.copy(corpus_file(corpus, "x86_64/2.06-13+deb12u2_grubx64.efi"), esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    (esp / "EFI" / "BOOT" / "grub.cfg").write_text(
        "set timeout=0\nmenuentry efistub {\n"
        f"  linux (hd0,gpt2)/vmlinuz {GRUB_OPTIONS}\n  initrd (hd0,gpt2)/initrd.img\n}}\n")
    shutil.copy(corpus_file(corpus, SYSTEMD_BOOT["x86_64"][2]), boot / "vmlinuz")
    shutil.copy(corpus_file(corpus, SYSTEMD_BOOT["x86_64"][3]), boot / "initrd.img")
    subprocess.run([mke2fs, "-q", "-t", "ext2", "-d", str(boot), str(tmp_path / "boot.img"), "32M"], check=True)
    fat_image_from_folder(esp, tmp_path / "esp.img")
    linux = Guid("0fc63daf-8483-4772-8e79-3d69d8477de4")  # Linux filesystem data
    disk = gpt_disk(tmp_path / "disk.img", [(ESP_TYPE, guid_from_seed(1, "esp"), "ESP", tmp_path / "esp.img"),
                                            (linux, guid_from_seed(1, "boot"), "boot", tmp_path / "boot.img")],
                    guid_from_seed(1, "disk"))
    bootfile = (esp / "EFI" / "BOOT" / "BOOTX64.EFI").read_bytes()
    machine = Machine(bootfile, disk=disk, boot_path="\\EFI\\BOOT\\BOOTX64.EFI", timeout=60)
    report = machine.run()
    assert report.outcome == "handoff", report.fault or report.timeout or report.stalled
    bp = report.handoff["boot_params"]
    assert bp["cmdline"] == f"BOOT_IMAGE=(hd0,gpt2)/vmlinuz {GRUB_OPTIONS}"
    initrd = (boot / "initrd.img").read_bytes()
    assert machine.fw.mem.read(bp["ramdisk_image"], bp["ramdisk_size"]) == initrd


SHELLS = {"x86_64": ("x86_64/shellx64.efi", "BOOTX64.EFI"), "aarch64": ("aarch64/shellaa64.efi", "BOOTAA64.EFI")}
STARTUP_SCRIPT = ("echo EFISTUB-SHELL-SCRIPT %1 from startup.nsh\r\n"
                  "\\EFI\\tools\\exit.efi\r\n"
                  "echo exit.efi returned %lasterror%\r\n"
                  "reset -s\r\n")


@pytest.mark.parametrize("arch", sorted(SHELLS))
def test_the_uefi_shell_runs_startup_nsh_which_runs_a_second_image(corpus, tmp_path, arch):
    """The EDK2 Shell as the removable-media boot file: HII strings, unicode collation, device path
    utilities, its mapping of fs0:, the 5-second startup delay in virtual time, a script line that
    echoes, one that runs an image from the ESP, and `reset -s` to end the run."""
    shell, boot_name = SHELLS[arch]
    esp = tmp_path / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    (esp / "EFI" / "tools").mkdir()
    shutil.copy(corpus_file(corpus, shell), esp / "EFI" / "BOOT" / boot_name)
    shutil.copy(GUESTS / arch / "exit.efi", esp / "EFI" / "tools" / "exit.efi")
    (esp / "startup.nsh").write_text(STARTUP_SCRIPT)
    report = Machine(str(esp / "EFI" / "BOOT" / boot_name), esp=str(esp),
                     boot_path="\\EFI\\BOOT\\" + boot_name).run()
    assert report.outcome == "reset", report.fault or report.timeout or report.error or report.stalled
    assert report.reset["type"] == "EfiResetShutdown"
    console = report.console.replace("\r", "")
    assert "UEFI Interactive Shell" in console
    # its mapping table (map, at the start): the ESP as FS0 and its disk, in DEVICE_PATH_TO_TEXT's DisplayOnly text
    assert ("\n      FS0: Alias(s):HD0b:;BLK1:\n          PciRoot(0x0)/Pci(0x4,0x0)/HD(1,GPT," in console
            and "\n     BLK0: Alias(s):\n          PciRoot(0x0)/Pci(0x4,0x0)\n" in console)
    assert "\nEFISTUB-SHELL-SCRIPT  from startup.nsh\n" in console  # %1 is empty: the script has no arguments
    # exit.efi's Exit(EFI_INVALID_PARAMETER) reaches the script as %lasterror%: the shell's status,
    # which is the EFI_STATUS without its error bit (SHELL_INVALID_PARAMETER)
    assert "\nexit.efi returned 0x2\n" in console
    assert [i["source"] for i in report.images] == ["\\EFI\\BOOT\\" + boot_name, "\\EFI\\tools\\exit.efi"]
    assert report.images[1]["outcome"] == "exit" and report.images[1]["exit_status"] == "EFI_INVALID_PARAMETER"
    assert {f["path"] for f in report.files} >= {"\\startup.nsh", "\\EFI\\tools\\exit.efi"}
    services = {c.service for c in report.calls}
    assert {"HiiDatabase.NewPackageList", "HiiString.GetString", "UnicodeCollation.StriColl"} <= services
    assert report.unimplemented == []
