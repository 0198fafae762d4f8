"""Call records keep their arguments raw and render them when the report is made: the report is
the one an eager rendering at each call gives, on both dispatch paths."""

from pathlib import Path

import pytest

from efistub import dispatch, native
from efistub.guids import Guid
from efistub.machine import Machine
from test_dispatch import comparable

GUESTS = Path(__file__).parent / "guests"
MODES = ["native", "python"] if native.available() else ["python"]
OTHER = Guid("0c0ffee0-0000-4000-8000-00000000cafe")


class EagerCall(dispatch.Call):
    """A record that renders its arguments as soon as it is made, as records did before."""

    __slots__ = ()

    @classmethod
    def pending(cls, *args):
        call = super().pending(*args)
        call.args  # noqa: B018 - rendered now
        return call


def eager(monkeypatch):
    monkeypatch.setattr(dispatch, "Call", EagerCall)


# Guests with strings, GUIDs, enums, variable arguments (InstallMultipleProtocolInterfaces) and
# details only a service gives (protocols), C-handled calls (misc, hostile), guest calls (events, image).
CASES = [(arch, name) for arch in ("x86_64", "ia32")
         for name in ("misc", "memory", "protocols", "variables", "hostile", "events", "image", "hii", "devtext")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arch, name", CASES)
def test_a_lazily_rendered_report_equals_the_eager_one(monkeypatch, mode, arch, name):
    path = str(GUESTS / arch / f"{name}.efi")
    options = {"image": {"initrd": GUESTS / arch / "exit.efi"}}.get(name, {})
    lazy = Machine(path, dispatch=mode, **options).run()
    assert not all(call.rendered for call in lazy.calls)  # rendered only when the report asks
    with monkeypatch.context() as m:
        eager(m)
        eagerly = Machine(path, dispatch=mode, **options).run()
    assert all(isinstance(call, EagerCall) and call.rendered for call in eagerly.calls)
    assert not any(isinstance(call, EagerCall) for call in lazy.calls)
    assert lazy.outcome == eagerly.outcome and lazy.outcome != "error", lazy.error
    assert comparable(lazy) == comparable(eagerly)


@pytest.mark.parametrize("mode", MODES)
def test_a_record_keeps_what_the_arguments_pointed_at_when_the_call_was_made(mode):
    """The service overwrites the name and the GUID the guest passed: the record shows what they were
    at the call, and the next call (the guest passes the same buffers) what they became."""
    machine = Machine(str(GUESTS / "x86_64" / "bench.efi"), dispatch=mode, cmdline="getvariable 3")

    @machine.service("GetVariable")
    def overwrite(ctx, name, guid, attributes, size, data):
        ctx.write_string(name, "Overwritten")
        ctx.write_guid(guid, OTHER)
        return "EFI_NOT_FOUND"

    report = machine.run()
    reads = [call for call in report.calls if call.service == "GetVariable"]
    assert not any(call.rendered for call in reads)  # not rendered before the report asks
    shown = [(call.args["VariableName"], call.args["VendorGuid"]) for call in reads]
    assert shown == [("EfistubBenchMissing", "2b0a8f43-5bd7-4c8e-9d31-0e62616e6368")] + \
        [("Overwritten", str(OTHER))] * 2
    assert report.to_dict()["calls"][-1]["args"]["VariableName"] == "Overwritten"


def test_a_pickled_record_carries_its_rendered_arguments():
    import pickle

    report = Machine(str(GUESTS / "x86_64" / "bench.efi"), cmdline="getvariable 1").run()
    call = next(c for c in report.calls if c.service == "GetVariable")
    copy = pickle.loads(pickle.dumps(call))
    assert copy.rendered and copy.args == call.args and copy.as_dict() == call.as_dict()
    assert copy == call
