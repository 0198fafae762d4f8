"""Real images from the corpus (EFISTUB_CORPUS): the Linux x86_64 stubs to the hand-off, HelloWorld."""

import zlib

import pytest

from conftest import corpus_file
from efistub.machine import Machine

CMDLINE = "console=ttyS0 root=/dev/vda ro efistub-test"
PAGE = 4096
E820_OF_EFI_TYPE = {
    "EfiLoaderCode": "RAM", "EfiLoaderData": "RAM", "EfiBootServicesCode": "RAM",
    "EfiBootServicesData": "RAM", "EfiConventionalMemory": "RAM",
    "EfiRuntimeServicesCode": "RESERVED", "EfiRuntimeServicesData": "RESERVED", "EfiReservedMemoryType": "RESERVED",
    "EfiACPIReclaimMemory": "ACPI", "EfiACPIMemoryNVS": "NVS",
}


def boot(path, **options):
    machine = Machine(str(path), **options)
    return machine, machine.run()


@pytest.fixture(scope="module")
def linux_612(corpus):
    return boot(corpus_file(corpus, "x86_64/vmlinuz-6.12.117+deb13-amd64"), cmdline=CMDLINE)


@pytest.fixture(scope="module")
def linux_61_initrd(corpus):
    initrd = corpus_file(corpus, "initrd/initrd-tiny.cpio").read_bytes()
    path = corpus_file(corpus, "x86_64/vmlinuz-6.1.0-57-amd64")
    return boot(path, cmdline=CMDLINE, initrd=initrd), initrd


def check_handoff(machine, report):
    assert report.outcome == "handoff", report.fault or report.error
    h = report.handoff
    assert h["arch"] == "x86_64"
    bp = h["boot_params"]
    assert bp["cmdline"] == CMDLINE
    assert h["registers"]["rsi"] == bp["address"]
    # the kernel is entered outside the loaded stub image, after ExitBootServices
    base, size = report.image_info["load_address"], report.image_info["size"]
    assert not base <= h["entry"] < base + size
    assert report.calls[-1].service == "ExitBootServices" and report.calls[-1].status == "EFI_SUCCESS"
    assert report.unimplemented == [] and report.violations == []
    info = bp["efi_info"]
    assert info["loader_signature"] == "EL64"
    assert info["systab"] == machine.fw.system_table
    assert info["memdesc_size"] == 48 and info["memdesc_version"] == 1
    memory_map = h["memory_map"]
    assert len(memory_map) * info["memdesc_size"] == info["memmap_size"]
    check_e820_matches_memory_map(bp["e820"], memory_map)


def check_e820_matches_memory_map(e820, memory_map):
    """Every byte of every EFI descriptor lies in an e820 entry of the type Linux maps it to."""
    assert e820
    for d in memory_map:
        start, end = d["start"], d["start"] + d["pages"] * PAGE
        expected = E820_OF_EFI_TYPE[d["type"]]
        covering = [e for e in e820 if e["addr"] <= start and end <= e["addr"] + e["size"]]
        assert len(covering) == 1 and covering[0]["type"] == expected, (d, covering)
    assert sum(e["size"] for e in e820) == sum(d["pages"] * PAGE for d in memory_map)


def test_linux_612_hands_off_with_the_command_line(linux_612):
    machine, report = linux_612
    check_handoff(machine, report)
    names = [c.service for c in report.calls]
    assert names.count("GetMemoryMap") >= 2 and "InstallConfigurationTable" in names
    tables = {t["name"] for t in report.handoff["configuration_tables"]}
    assert "LINUX_EFI_BOOT_MEMMAP_GUID" in tables
    assert report.handoff["boot_params"]["ramdisk_size"] == 0


def test_linux_61_hands_off_with_the_initrd_in_memory(linux_61_initrd):
    (machine, report), initrd = linux_61_initrd
    check_handoff(machine, report)
    bp = report.handoff["boot_params"]
    assert bp["ramdisk_size"] == len(initrd) == 512
    assert machine.fw.mem.read(bp["ramdisk_image"], bp["ramdisk_size"]) == initrd
    tables = {t["name"]: t for t in report.handoff["configuration_tables"]}
    assert tables["LINUX_EFI_INITRD_MEDIA_GUID"]["initrd"] == {"base": bp["ramdisk_image"], "size": 512}
    load_file = [c for c in report.calls if c.service == "LoadFile2.LoadFile"]
    assert [c.status for c in load_file] == ["EFI_BUFFER_TOO_SMALL", "EFI_SUCCESS"]
    assert "Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path" in report.console


def test_helloworld_prints_its_greeting_and_exits(corpus):
    machine, report = boot(corpus_file(corpus, "x86_64/HelloWorld.efi"), keys="\r")
    assert "HelloWorld" in report.console
    assert "To execute an unsigned binary in secure boot mode" in report.console
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"


def test_helloworld_without_a_key_stalls_clearly(corpus, tmp_path):
    machine, report = boot(corpus_file(corpus, "x86_64/HelloWorld.efi"))
    assert report.outcome == "stalled" and report.fault is None
    assert report.stalled["reason"] == "WaitForEvent waits for a key press, and no --keys input is left"
    assert report.stalled["waiting_for"] == "a key press, and no --keys input is left"
    base, size = report.image_info["load_address"], report.image_info["size"]
    assert base <= report.stalled["caller"] < base + size  # the image's own call of WaitForEvent
    assert report.calls[-1].service == "WaitForEvent"
    # the CLI prints the summary without error and exits 1
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(corpus_file(corpus, "x86_64/HelloWorld.efi"))],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "--- efistub: stalled (x86_64) ---" in result.stdout and "called from" in result.stdout
    assert "Traceback" not in result.stderr


FDT_KERNELS = {
    "aarch64": "aarch64/vmlinuz-6.12.117+deb13-arm64",
    "riscv64": "riscv64/vmlinux-6.12.117+deb13-riscv64",
}


def boot_fdt_kernel(corpus, arch):
    initrd = corpus_file(corpus, "initrd/initrd-tiny.cpio").read_bytes()
    machine, report = boot(corpus_file(corpus, FDT_KERNELS[arch]), cmdline=CMDLINE, initrd=initrd, hart_id=2)
    return arch, machine, report, initrd


@pytest.fixture(scope="module")
def arm64_kernel(corpus):
    return boot_fdt_kernel(corpus, "aarch64")


@pytest.fixture(scope="module")
def riscv64_kernel(corpus):
    return boot_fdt_kernel(corpus, "riscv64")


@pytest.fixture(params=["arm64_kernel", "riscv64_kernel"])
def fdt_kernel(request):
    return request.getfixturevalue(request.param)


def test_fdt_kernel_hands_off_with_bootargs_and_its_memory_map(fdt_kernel):
    arch, machine, report, _ = fdt_kernel
    assert report.outcome == "handoff", report.fault or report.error
    h = report.handoff
    assert h["arch"] == arch
    chosen = h["fdt"]["chosen"]
    assert chosen["bootargs"] == CMDLINE
    assert chosen["linux,uefi-system-table"] == machine.fw.system_table
    assert chosen["linux,uefi-mmap-desc-size"] == 48 and chosen["linux,uefi-mmap-desc-ver"] == 1
    memory_map = h["memory_map"]  # decoded at linux,uefi-mmap-start
    assert len(memory_map) * 48 == chosen["linux,uefi-mmap-size"]
    tables = {t["name"]: t for t in h["configuration_tables"]}
    boot_memmap = tables["LINUX_EFI_BOOT_MEMMAP_GUID"]
    # the map the FDT points at is the one in the stub's LINUX_EFI_BOOT_MEMMAP table
    assert chosen["linux,uefi-mmap-start"] == boot_memmap["address"] + 40
    assert boot_memmap["boot_memmap"]["map_size"] == chosen["linux,uefi-mmap-size"]
    base, size = report.image_info["load_address"], report.image_info["size"]
    if not base <= h["entry"] < base + size:  # the stub moved the kernel
        assert any(d["type"] == "EfiLoaderCode" and d["start"] <= h["entry"] < d["start"] + d["pages"] * PAGE
                   for d in memory_map)
    assert report.calls[-1].service in ("ExitBootServices", "SetVirtualAddressMap")
    assert report.unimplemented == [] and report.violations == []


def test_fdt_kernel_gets_the_initrd_through_the_media_table(fdt_kernel):
    _, machine, report, initrd = fdt_kernel
    tables = {t["name"]: t for t in report.handoff["configuration_tables"]}
    media = tables["LINUX_EFI_INITRD_MEDIA_GUID"]["initrd"]
    assert media["size"] == len(initrd)
    assert machine.fw.mem.read(media["base"], media["size"]) == initrd


def test_arm64_kernel_copies_itself_through_copymem(arm64_kernel):
    _, _, report, _ = arm64_kernel
    copies = [c for c in report.calls if c.service == "CopyMem"]
    assert max(c.args["Length"] for c in copies) >= report.image_info["size"] // 2


def test_riscv64_kernel_gets_the_boot_hart_and_sets_the_virtual_map(riscv64_kernel):
    _, machine, report, _ = riscv64_kernel
    h = report.handoff
    assert h["registers"]["a0"] == 2  # --hart-id, through RISCV_EFI_BOOT_PROTOCOL
    assert h["registers"]["satp"] == 0
    assert [c.status for c in report.calls if c.service == "RiscvBoot.GetBootHartId"] == ["EFI_SUCCESS"]
    svam = [c for c in report.calls if c.service == "SetVirtualAddressMap"]
    assert [c.status for c in svam] == ["EFI_SUCCESS"]
    runtime = {(d.start, d.pages) for d in machine.fw.pages.descriptors() if d.attribute >> 63}
    assert {(r["start"], r["pages"]) for r in h["virtual_address_map"]} >= runtime
    rt = machine.fw.mem.read_struct(machine.fw.layout.RuntimeServices, machine.fw.runtime_services)
    stub = machine.fw.stub_address["GetTime"]
    region = next(r for r in h["virtual_address_map"] if r["start"] <= stub < r["start"] + r["pages"] * PAGE)
    assert rt.GetTime == stub - region["start"] + region["virtual"]  # runtime pointers moved to virtual
    header = machine.fw.layout.RuntimeServices.build(dict(rt, Hdr=dict(rt.Hdr, CRC32=0)))
    assert zlib.crc32(header) == rt.Hdr.CRC32


@pytest.mark.parametrize("relative", ["x86_64/grub-mkimage-minimal-x64.efi", "aarch64/grub-mkimage-minimal-aa64.efi"])
def test_grub_runs_its_embedded_config_to_the_halt(corpus, relative):
    """GRUB calibrates its TSC on the PIT (x86), runs modules it loads into EfiLoaderCode
    memory, prints the corpus marker and halts through ResetSystem."""
    _, report = boot(corpus_file(corpus, relative), timeout=30)
    assert "EFI-CORPUS-GRUB: minimal grub-mkimage image reached" in report.console
    assert report.outcome == "reset", report.fault or report.timeout
    assert report.reset["type"] == "EfiResetShutdown"
    assert any("in EfiLoaderCode memory; execute granted" in note for note in report.notes)


def test_a_device_tree_given_with_dtb_is_the_one_the_kernel_receives(corpus, tmp_path):
    import fdt

    tree = fdt.FDT()
    tree.add_item(fdt.PropStrings("model", "efistub-test-board"))
    tree.add_item(fdt.PropWords("#address-cells", 2))
    tree.add_item(fdt.PropWords("#size-cells", 2))
    chosen = fdt.Node("chosen")
    chosen.append(fdt.PropStrings("efistub,marker", "kept"))
    tree.add_item(chosen)
    machine, report = boot(corpus_file(corpus, FDT_KERNELS["aarch64"]), cmdline=CMDLINE,
                           dtb=tree.to_dtb(version=17))
    assert "Using DTB from configuration table" in report.console
    received = report.handoff["fdt"]["chosen"]
    assert received["efistub,marker"] == "kept" and received["bootargs"] == CMDLINE
    blob = machine.fw.mem.read(report.handoff["fdt_address"], report.handoff["fdt"]["size"])
    assert fdt.parse_dtb(blob).get_property("model").value == "efistub-test-board"


def test_memtest86plus_ia32_runs_like_its_x86_64_build(corpus):
    """The corpus memtest86+ 7.20 for IA32 (PE32, cdecl, INT 0x80 traps) makes the same service calls as
    the x86_64 build up to ExitBootServices, then both read guest page 0 (a NULL pointer of theirs, or
    the BIOS data area a PC has there): with --null-page fault that ends both runs."""
    runs = {}
    for arch, relative in (("ia32", "ia32/7.20-1_memtest86+ia32.efi"), ("x86_64", "x86_64/7.20-1_memtest86+x64.efi")):
        report = Machine(str(corpus_file(corpus, relative)), cmdline="console=ttyS0", timeout=30,
                         null_page="fault").run()
        assert report.arch == arch
        runs[arch] = report
    calls = {arch: [(c.service, c.status) for c in r.calls] for arch, r in runs.items()}
    assert calls["ia32"] == calls["x86_64"]
    assert calls["ia32"][-1] == ("ExitBootServices", "EFI_SUCCESS")
    assert ("GetMemoryMap", "EFI_SUCCESS") in calls["ia32"]
    for report in runs.values():
        assert report.outcome == "fault" and report.fault["access"]["address"] < 0x1000
    assert runs["ia32"].image_info["load_address"] == 0x200000  # its ImageBase, below 4 GiB
