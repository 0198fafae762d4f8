"""Firmware-interface tests of real Linux EFI stubs, written with efistub's pytest plugin.

Run with the corpus: EFISTUB_CORPUS=../shared/corpus python3 -m pytest examples/
(without it every test here skips, saying why).
"""

import pytest

ARM64 = "aarch64/vmlinuz-6.12.117+deb13-arm64"
X86_64 = "x86_64/vmlinuz-6.12.117+deb13-amd64"
EFI_RNG_PROTOCOL = "3152bca5-eade-433d-862e-c01cdc291f44"


@pytest.mark.efistub_image(ARM64)
def test_stub_retries_exit_boot_services_after_a_stale_map_key(efi_machine):
    machine = efi_machine(ARM64, cmdline="console=ttyAMA0")
    machine.inject("ExitBootServices", "EFI_INVALID_PARAMETER", times=1)
    report = machine.run()
    assert report.outcome == "handoff"
    ebs = [c.status for c in report.calls if c.service == "ExitBootServices"]
    assert ebs == ["EFI_INVALID_PARAMETER", "EFI_SUCCESS"]
    # between the two attempts the stub fetched the memory map again
    names = [c.service for c in report.calls]
    first = names.index("ExitBootServices")
    assert "GetMemoryMap" in names[first + 1:]


@pytest.mark.efistub_image(ARM64)
def test_stub_survives_get_variable_device_errors(efi_machine):
    machine = efi_machine(ARM64)
    machine.inject("GetVariable", "EFI_DEVICE_ERROR", times=100)
    report = machine.run()
    assert report.outcome == "handoff"
    statuses = {c.status for c in report.calls if c.service == "GetVariable"}
    assert statuses == {"EFI_DEVICE_ERROR"}


@pytest.mark.efistub_image(X86_64)
def test_x86_stub_exits_when_allocate_pages_fails(efi_machine):
    machine = efi_machine(X86_64)
    machine.inject("AllocatePages", "EFI_OUT_OF_RESOURCES")
    report = machine.run()
    assert report.outcome == "exit"
    assert report.exit_status == "EFI_OUT_OF_RESOURCES"
    assert [c.service for c in report.calls][-2:] == ["AllocatePages", "Exit"]


class CountingRng:
    members = ["GetInfo", "GetRNG"]

    def __init__(self):
        self.given = []

    def GetInfo(self, ctx, this, size_ptr, list_ptr):
        return "EFI_UNSUPPORTED"

    def GetRNG(self, ctx, this, algorithm, length, value):
        data = bytes((len(self.given) * 16 + i + 1) & 0xFF for i in range(length))
        ctx.write(value, data)
        self.given.append(data)
        return "EFI_SUCCESS"


@pytest.mark.efistub_image(ARM64)
def test_a_python_rng_protocol_feeds_the_kaslr_seed(efi_machine):
    rng = CountingRng()
    machine = efi_machine(ARM64, rng=False)
    machine.install_protocol(EFI_RNG_PROTOCOL, rng)
    report = machine.run()
    assert report.outcome == "handoff"
    seed = report.handoff["fdt"]["chosen"]["kaslr-seed"]
    assert seed.to_bytes(8, "big") in [chunk for chunk in rng.given if len(chunk) == 8]


@pytest.mark.efistub_image(ARM64)
def test_observe_every_call_and_override_a_service(efi_machine):
    seen = []
    machine = efi_machine(ARM64)
    machine.on_call(lambda call, when: seen.append((when, call.service)))

    @machine.service("GetVariable")
    def get_variable(ctx, name, vendor, attributes, size, data):
        ctx.note(f"asked for {ctx.read_string(name)}")
        return "EFI_NOT_FOUND"

    report = machine.run()
    assert report.outcome == "handoff"
    assert ("before", "ExitBootServices") in seen and ("after", "ExitBootServices") in seen
    assert len(seen) == 2 * len(report.calls)
    notes = [c.note for c in report.calls if c.service == "GetVariable"]
    assert "asked for SecureBoot" in notes
