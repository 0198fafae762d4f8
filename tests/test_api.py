"""The public library API (docs/api.md), including its misuse."""

from pathlib import Path

import pytest

import efistub

GUESTS = Path(__file__).parent / "guests" / "x86_64"
BENCH_VENDOR = "2b0a8f43-5bd7-4c8e-9d31-0e62616e6368"  # tests/guests/bench.c's vendor GUID


def bench(calls: int = 3, **options) -> efistub.Machine:
    return efistub.Machine(GUESTS / "bench.efi", cmdline=f"getvariable {calls}", **options)


def test_public_names():
    for name in ("Machine", "Report", "Call", "Context", "Status", "Guid", "VariableStore", "InputError"):
        assert hasattr(efistub, name)
    with pytest.raises(AttributeError):
        efistub.NoSuchThing  # noqa: B018


def test_report_fields_and_json():
    report = efistub.Machine(GUESTS / "hello.efi").run()
    assert isinstance(report, efistub.Report)
    assert report.outcome == "exit" and report.exit_status == "EFI_SUCCESS"
    assert report.console == "Hello from efistub guest\r\n"
    call = report.calls[0]
    assert (call.service, call.status) == ("TextOutput.OutputString", "EFI_SUCCESS")
    assert call.args["String"] == "Hello from efistub guest\r\n"
    assert report.usage["services"] == {"TextOutput.OutputString": {"count": 1, "statuses": {"EFI_SUCCESS": 1}}}
    assert report.handoff is None
    import json

    assert json.loads(report.to_json())["outcome"] == "exit"


def test_override_receives_decoded_arguments_and_its_status_reaches_the_guest():
    machine = bench()
    seen = []

    @machine.service("GetVariable")
    def get_variable(ctx, name, vendor, attributes, size, data):
        seen.append((ctx.read_string(name), str(ctx.read_guid(vendor)), ctx.read_u64(size)))
        return efistub.Status.EFI_DEVICE_ERROR

    report = machine.run()
    assert seen == [("EfistubBenchMissing", BENCH_VENDOR, 16)] * 3
    assert [c.status for c in report.calls if c.service == "GetVariable"] == ["EFI_DEVICE_ERROR"] * 3


def test_injection_counts_calls_that_ran_normally():
    machine = bench(5)
    machine.inject("GetVariable", "EFI_DEVICE_ERROR", times=2, after=1)
    report = machine.run()
    calls = [c for c in report.calls if c.service == "GetVariable"]
    assert [c.status for c in calls] == ["EFI_NOT_FOUND", "EFI_DEVICE_ERROR", "EFI_DEVICE_ERROR", "EFI_NOT_FOUND",
                                         "EFI_NOT_FOUND"]
    injected = "failure injected by Machine.inject"
    assert [c.note for c in calls] == [None, injected, injected, None, None]


def test_injection_reaches_c_handled_services():
    machine = efistub.Machine(GUESTS / "bench.efi", cmdline="copymem 2")
    machine.inject("CopyMem", "EFI_ABORTED")
    report = machine.run()
    assert [c.status for c in report.calls if c.service == "CopyMem"] == ["EFI_ABORTED", None]


def test_variables_before_and_after_the_run():
    machine = bench(1)
    machine.variables.set("EfistubBenchMissing", BENCH_VENDOR, data=b"\x01\x02")
    report = machine.run()
    assert [c.status for c in report.calls if c.service == "GetVariable"] == ["EFI_SUCCESS"]
    variables = efistub.Machine(Path(__file__).parent / "guests" / "x86_64" / "variables.efi")
    variables.run()
    assert len(variables.variables) == 0  # variables.c deletes what it creates


def test_on_call_sees_each_call_before_and_after():
    events = []
    machine = efistub.Machine(GUESTS / "hello.efi")
    machine.on_call(lambda call, when: events.append((when, call.service, call.status)))
    machine.run()
    assert events == [("before", "TextOutput.OutputString", None),
                      ("after", "TextOutput.OutputString", "EFI_SUCCESS")]


def test_unknown_service_names_are_refused_with_the_known_ones():
    machine = bench()
    with pytest.raises(ValueError, match="unknown service 'GetVariables'.*GetVariable"):
        machine.inject("GetVariables", "EFI_NOT_FOUND")
    with pytest.raises(ValueError, match="unknown service"):
        machine.service("NoSuchService")


def test_wrong_status_names_are_refused():
    with pytest.raises(ValueError, match="unknown EFI status name 'EFI_NOPE'"):
        bench().inject("GetVariable", "EFI_NOPE")
    assert efistub.Status.parse("not_found") == efistub.Status.EFI_NOT_FOUND


def test_an_override_with_the_wrong_parameters_is_refused():
    with pytest.raises(TypeError, match="must take 6 positional parameters"):
        bench().service("GetVariable")(lambda ctx, name: "EFI_SUCCESS")


def test_an_override_returning_nonsense_ends_the_run_with_an_error():
    machine = bench(1)
    machine.service("GetVariable")(lambda ctx, a, b, c, d, e: "EFI_PERHAPS")
    report = machine.run()
    assert report.outcome == "error"
    assert "unknown EFI status name 'EFI_PERHAPS'" in report.error["error"]


def test_a_protocol_object_needs_its_members():
    with pytest.raises(TypeError, match="members"):
        bench().install_protocol("3152bca5-eade-433d-862e-c01cdc291f44", object())


def test_a_python_protocol_is_found_and_called():
    class Answer:
        members = [42, "Get"]  # a UINT64 field, then a function

        def Get(self, ctx, this, out):
            ctx.write_u64(out, ctx.read_u64(this))  # returns its own first field
            return "EFI_SUCCESS"

    guid = "0c5a2f5e-3bb6-4b83-a9ac-6b9e1a7e0042"
    machine = efistub.Machine(GUESTS / "hello.efi")
    machine.install_protocol(guid, Answer())
    machine.run()
    fw = machine.fw
    interface = fw.handles.find_interface(efistub.Guid(guid))
    assert fw.mem.read_u64(interface) == 42
    assert fw.mem.read_u64(interface + 8) == fw.stub_address[f"Answer.{guid}.Get"]


def test_arch_mismatch_and_running_twice():
    with pytest.raises(efistub.InputError, match="is an x86_64 image, not aarch64"):
        efistub.Machine(GUESTS / "hello.efi", arch="aarch64")
    machine = efistub.Machine(GUESTS / "hello.efi", arch="x86_64")
    machine.run()
    with pytest.raises(RuntimeError, match="runs once"):
        machine.run()
    with pytest.raises(RuntimeError, match="already run"):
        machine.inject("GetVariable", "EFI_NOT_FOUND")


def _without_timing(report) -> dict:
    data = report.to_dict()
    data.pop("timing")
    return data


def test_close_frees_the_engine_and_guest_ram_and_keeps_the_report():
    rendered_open = bench(calls=5)
    expected = _without_timing(rendered_open.run())  # rendered while its engine and RAM are there
    rendered_open.close()
    machine = bench(calls=5)
    report = machine.run()
    fw, address = machine.fw, machine.load_address
    assert fw.mem.read(address, 2) == b"MZ"
    machine.close()
    assert _without_timing(report) == expected  # rendered only now, with the engine closed
    with pytest.raises(efistub.GuestMemoryError):
        fw.mem.read(address, 2)  # the host buffers of guest RAM are unmapped
    with pytest.raises(efistub.GuestMemoryError):
        fw.mem.write(address, b"XX")
    for name in ("fw", "uc", "dispatcher"):
        with pytest.raises(RuntimeError, match=f"was closed: its {name} is gone"):
            getattr(machine, name)
    with pytest.raises(RuntimeError, match="was closed; make a new one"):
        machine.run()
    machine.close()  # twice: nothing more happens


def test_a_machine_closes_as_a_context_manager_even_before_it_ran():
    with bench() as machine:
        pass
    with pytest.raises(RuntimeError, match="was closed"):
        machine.run()
    with bench() as machine:
        assert machine.run().outcome == "exit"
    with pytest.raises(RuntimeError, match="was closed"):
        machine.fw  # noqa: B018


def test_close_during_the_run_is_refused_and_ends_the_run_with_an_error():
    machine = bench(calls=1)

    @machine.service("GetVariable")
    def close_now(ctx, *args):
        machine.close()
        return "EFI_SUCCESS"

    report = machine.run()
    assert report.outcome == "error"
    assert "cannot be closed while it runs" in report.error["error"]
    assert machine.fw.mem.read(machine.load_address, 2) == b"MZ"  # still open
    machine.close()


def test_the_pytest_plugin_closes_the_machines_it_made(pytester):
    pytester.makepyfile(f"""
        import pytest
        made = []

        def test_make(efi_machine):
            machine = efi_machine({str(GUESTS / "hello.efi")!r})
            assert machine.run().outcome == "exit"
            made.append(machine)

        def test_closed_after_the_test():
            with pytest.raises(RuntimeError, match="was closed"):
                made[0].fw
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
