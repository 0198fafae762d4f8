"""The guest boundary: the firmware calls guest code (notifications, timers, ExitBootServices groups,
StartImage and Exit), on every architecture and on both dispatch paths."""

import re
from pathlib import Path

import pytest

from efistub import native
from efistub.arch.convention import CallingConvention
from efistub.machine import Machine
from efistub.platform import assemble  # noqa: F401 - the assembly is importable on its own

GUESTS = Path(__file__).parent / "guests"
ARCHES = ["x86_64", "aarch64", "riscv64", "ia32"]
DISPATCH = ["python"] + (["native"] if native.available() else [])


def run(name, arch, **options):
    return Machine(str(GUESTS / arch / f"{name}.efi"), **options).run()


def failures(report):
    return [line for line in report.console.splitlines() if line.startswith("FAIL")]


@pytest.mark.parametrize("dispatch", DISPATCH)
@pytest.mark.parametrize("arch", ARCHES)
def test_notification_functions_timers_and_groups(arch, dispatch):
    report = run("events", arch, dispatch=dispatch)
    assert failures(report) == [], report.console
    assert re.search(r"^DONE 0 failures", report.console, re.M)
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    services = [c.service for c in report.calls]
    # notification functions are guest code: the calls they make appear between the call
    # that ran them and the next call of the program
    assert "SignalEvent" in services and "CheckEvent" in services and "SetTimer" in services


@pytest.mark.parametrize("dispatch", DISPATCH)
@pytest.mark.parametrize("arch", ARCHES)
def test_exit_boot_services_runs_its_event_groups_in_order(arch, dispatch):
    report = run("ebs", arch, dispatch=dispatch)
    assert report.outcome == "reset", report.fault or report.error
    # fn3 (BEFORE_EXIT_BOOT_SERVICES group) first, then the EXIT_BOOT_SERVICES event and group member
    assert report.reset["data"] == "ebs: before=1 exit=2 order=3,1,2 PASS"
    ebs = [c for c in report.calls if c.service == "ExitBootServices"]
    assert ebs[-1].status == "EFI_SUCCESS"


@pytest.mark.parametrize("dispatch", DISPATCH)
@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("child, how", [("exit", "left through Exit"), ("hello", "returned from its entry point")])
def test_start_image_returns_to_the_parent(arch, dispatch, child, how):
    """image.c loads the child from the initrd with LoadImage, StartImages it and checks what comes back."""
    report = run("image", arch, dispatch=dispatch, initrd=(GUESTS / arch / f"{child}.efi").read_bytes())
    assert failures(report) == [], report.console
    assert f"info: the child {how}" in report.console
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    calls = [(c.service, c.status) for c in report.calls]
    start = calls.index(("StartImage", "EFI_INVALID_PARAMETER" if child == "exit" else "EFI_SUCCESS"))
    after = [s for s, _ in calls[start + 1:]]
    assert "UnloadImage" in after  # the parent went on after its child
    if child == "exit":
        # the child's own calls come after the StartImage that ran it, the child's Exit among them
        assert "Exit" in after and after.index("Exit") < after.index("UnloadImage")
    else:
        assert "TextOutput.OutputString" in after


def test_exit_of_an_image_that_is_not_running_is_refused():
    """A program's Exit with a handle that is not its own: EFI_INVALID_PARAMETER, the run goes on."""
    from pe_builder import code_image

    # Exit(ImageHandle + 1, ...) then return EFI_SUCCESS; x86_64, MS x64
    code = (bytes.fromhex("4883ec28")                  # sub rsp, 0x28
            + bytes.fromhex("488b4260")                # mov rax, [rdx+0x60]  BootServices
            + bytes.fromhex("48ffc1")                  # inc rcx
            + bytes.fromhex("31d24d31c04d31c9")        # xor edx, edx; xor r8, r8; xor r9, r9
            + bytes.fromhex("ff90d8000000")            # call [rax+0xd8]  Exit
            + bytes.fromhex("4883c428c3"))             # add rsp, 0x28; ret (rax = Exit's status)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exit-other.efi"
        path.write_bytes(code_image(code))
        report = Machine(str(path)).run()
    assert [(c.service, c.status) for c in report.calls] == [("Exit", "EFI_INVALID_PARAMETER")]
    assert report.outcome == "exit" and report.exit_status == "EFI_INVALID_PARAMETER"


def test_more_than_256_slots_attach_on_both_paths():
    """The C trampoline has no fixed table size: a protocol with 300 members is served on both paths."""

    class Wide:
        members = [f"m{i}" for i in range(300)]

        def __getattr__(self, name):
            if name.startswith("m"):
                return lambda ctx, this: "EFI_SUCCESS"
            raise AttributeError(name)

    for dispatch in DISPATCH:
        machine = Machine(str(GUESTS / "x86_64" / "hello.efi"), dispatch=dispatch)
        machine.install_protocol("01234567-89ab-cdef-0123-456789abcdef", Wide())
        report = machine.run()
        assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
        assert len(machine.dispatcher.services) > 256


@pytest.mark.skipif(not native.available(), reason=native.UNAVAILABLE or "")
def test_the_c_trampoline_works_on_the_firmware_state_python_sees():
    """One firmware state: the C struct the trampoline points at is the object Python services use."""
    from efistub.native import ffi

    machine = Machine(str(GUESTS / "x86_64" / "misc.efi"), dispatch="native")
    report = machine.run()
    assert report.outcome == "exit"
    state = machine.fw.state
    assert machine.platform.native.t.state == state
    assert ffi.cast("uintptr_t", machine.platform.native.t.state) == ffi.cast("uintptr_t", state)
    assert state.monotonic_count > 0  # GetNextMonotonicCount ran in C and counted in this object


def test_each_architecture_has_one_calling_convention_record():
    from efistub import arch as arches

    for machine_type in arches.supported():
        cls = arches.for_machine(machine_type)
        cc = cls.convention
        assert isinstance(cc, CallingConvention)
        assert len(cc.stub()) == cc.stub_stride and len(cc.stub(returns=False)) == cc.stub_stride
        assert cc.width in (4, 8)
    ia32 = arches.for_machine(0x14C).convention
    assert ia32.slots_of(8) == 2 and ia32.slots_of(None) == 1 and ia32.stack_args_offset == 4
    assert arches.for_machine(0x8664).convention.stack_args_offset == 0x28


def test_a_timer_without_notification_is_signaled_once_its_time_has_passed():
    """Timers without notification functions arm nothing in C; they fire when they are looked at."""
    from efistub import events

    machine = Machine(str(GUESTS / "x86_64" / "hello.efi"))
    machine.run()
    fw = machine.fw
    table = fw.events
    timer = table.get(table.create(events.Event(events.EVT_TIMER, events.TPL_APPLICATION, 0, 0)))
    table.arm(timer, 1000, periodic=False)
    assert not fw.state.notify_armed  # nothing for C to hand to Python
    assert not table.ready(timer)
    fw.state.virtual_time_us += 999
    assert not table.ready(timer)
    fw.state.virtual_time_us += 1
    assert table.ready(timer) and timer.trigger_us is None
