"""The fixed costs of a run stay low: what a plain run imports, and how its process ends.

Speed itself is measured by benchmarks/startup.py (docs/performance.md); these tests check the
behaviour the speed rests on, in fresh processes: a plain run imports none of the modules that
only other commands, options or images need, every service and protocol is still registered,
and the program ends a run's process at once, after doing what the interpreter's own exit does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import corpus_file

GUESTS = Path(__file__).parent / "guests"
HELLO = GUESTS / "x86_64" / "hello.efi"

# Modules a plain run (no Secure Boot, no --esp/--disk/--vars/--gdb, model TPM) has no use for;
# each is imported where it is needed.
NOT_IMPORTED = (
    "cryptography", "asn1crypto", "signify", "efistub.pkcs7",  # signatures: Secure Boot, authenticated variables
    "multiprocessing", "efistub.parallel", "efistub.scan", "dask",  # efistub scan, minimize --fresh
    "xml", "urllib.request", "http", "ssl",  # gdb's target description (xml.sax imports urllib)
    "socket", "efistub.gdbstub", "efistub.symbols",  # --gdb; swtpm
    "efistub.device_path_text",  # the text protocols' table of node forms, built at the first conversion
    "efistub.volume", "efistub.disk", "pyfatfs",  # --esp, --disk
    "efistub.varstore", "virt",  # --vars
    "efistub.policy", "tomllib", "tomli",  # check, policy
    "efistub.snapshot", "efistub.sweep", "efistub.minimize", "efistub.diff", "efistub.matrix",
    "efistub.handoff_state", "efistub.resume",  # --save-handoff, efistub resume
    "capstone",  # the disassembly of a faulting instruction
    "fdt", "efistub.linux.devicetree",  # an arm64 or riscv64 hand-off's device tree
    "efistub.engine.build",
)
# A run in a fresh interpreter, through the command line's main(); then what it imported, and
# what the registry holds.
RUN = r"""
import contextlib, io, json, sys
from efistub.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
from efistub.catalog import load_all
registry = load_all()
print(json.dumps({"code": code, "modules": sorted(sys.modules),
                  "implemented": sorted(n for n, s in registry.items() if s.implemented)}))
"""
BASELINE = "import json, sys; print(json.dumps(sorted(sys.modules)))"


def fresh(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def interpreter_modules() -> set[str]:
    """What the interpreter imports by itself here (site, .pth files): not the run's doing."""
    return set(json.loads(fresh(BASELINE).stdout))


def imported_by_a_run(image: Path, *options: str) -> dict:
    result = fresh(RUN, "run", str(image), *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def unused(modules: list[str], interpreter: set[str]) -> list[str]:
    return sorted(m for m in set(modules) - interpreter
                  if any(m == name or m.startswith(name + ".") for name in NOT_IMPORTED))


def test_a_plain_run_imports_nothing_it_does_not_use(interpreter_modules):
    run = imported_by_a_run(HELLO)
    assert run["code"] == 0
    assert unused(run["modules"], interpreter_modules) == []
    # the lazily imported modules are still there for what needs them: the services are all registered
    for name in ("DevicePathToText.ConvertDevicePathToText", "DevicePathFromText.ConvertTextToDevicePath",
                 "File.Open", "File.Delete", "LoadImage", "SetVariable", "Tcg2.HashLogExtendEvent"):
        assert name in run["implemented"]


def test_a_kernel_run_to_its_hand_off_imports_nothing_it_does_not_use(interpreter_modules):
    run = imported_by_a_run(GUESTS / "x86_64" / "handoff.efi")
    assert run["code"] == 0  # a hand-off
    assert unused(run["modules"], interpreter_modules) == []


def test_helloworld_with_a_key_imports_nothing_it_does_not_use(corpus, interpreter_modules):
    run = imported_by_a_run(corpus_file(corpus, "x86_64/HelloWorld.efi"), "--keys", "\\r")
    assert run["code"] == 0
    assert unused(run["modules"], interpreter_modules) == []


def test_what_a_run_does_not_import_is_imported_when_the_run_needs_it(tmp_path):
    (tmp_path / "esp").mkdir()
    (tmp_path / "esp" / "file.txt").write_text("x")
    run = imported_by_a_run(GUESTS / "x86_64" / "hello.efi", "--esp", str(tmp_path / "esp"))
    assert {"efistub.volume", "efistub.disk"} <= set(run["modules"])


# The program's end: a global whose __del__ would run in the interpreter's teardown, an exit
# handler and a thread still running when main() returns.
PROGRAM = r"""
import atexit, sys, threading, time
from pathlib import Path
folder = Path(sys.argv.pop(1))

class Teardown:
    def __del__(self):
        (folder / "teardown").write_text("ran")

kept = Teardown()
atexit.register(lambda: (folder / "atexit").write_text("ran"))
threading.Thread(target=lambda: (time.sleep(0.3), (folder / "thread").write_text("done"))).start()
from efistub.cli import entry
entry()
"""


def program(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM, str(folder), *args], capture_output=True, text=True,
                          timeout=120)


def test_the_program_ends_a_run_as_the_interpreter_would_but_without_its_teardown(tmp_path):
    report = tmp_path / "report.json"
    result = program(tmp_path, "run", str(HELLO), "--json", str(report))
    assert result.returncode == 0
    assert "--- efistub: exit (x86_64) ---" in result.stdout and result.stdout.endswith("\n")  # all of it flushed
    assert json.loads(report.read_text())["outcome"] == "exit"
    assert (tmp_path / "thread").read_text() == "done"  # waited for, as at any exit
    assert (tmp_path / "atexit").read_text() == "ran"  # the exit handlers ran
    assert not (tmp_path / "teardown").exists()  # the process ended without tearing the interpreter down


def test_the_program_ends_a_failed_run_with_its_exit_code(tmp_path):
    result = program(tmp_path, "run", str(tmp_path / "missing.efi"))
    assert result.returncode == 2 and result.stderr.startswith("efistub: error:")
    assert (tmp_path / "atexit").read_text() == "ran" and not (tmp_path / "teardown").exists()


def test_other_commands_end_the_ordinary_way(tmp_path):
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "efistub", "run", str(HELLO), "--json", str(report)], check=True,
                   capture_output=True, timeout=120)
    result = program(tmp_path, "diff", str(report), str(report))
    assert result.returncode == 0
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "teardown").read_text() == "ran"


@pytest.mark.parametrize("argv", [
    ["run", "image.efi", "--keys", "\\r", "--json", "-", "--mem", "512M"], ["boot", "--esp", "esp", "--arch", "x86_64"],
    ["check", "image.efi", "--policy", "p.toml"], ["diff", "a.json", "b.json", "--json"], ["sweep", "image.efi"],
    ["scan", "folder", "--jobs", "2"], ["resume", "folder", "--until", "login"], ["engine", "status"],
], ids=lambda argv: argv[0])
def test_the_command_line_builds_only_the_subcommand_it_runs_and_parses_it_as_the_whole_one(argv):
    from efistub.cli import build_parser

    assert vars(build_parser(argv[0]).parse_args(argv)) == vars(build_parser().parse_args(argv))
    one, whole = build_parser(argv[0])._subparsers._group_actions[0], build_parser()._subparsers._group_actions[0]
    assert one.choices.keys() == whole.choices.keys()  # every subcommand is listed, with its help
    assert one.choices[argv[0]].format_help() == whole.choices[argv[0]].format_help()
    others = [name for name in one.choices if name != argv[0]]
    assert all(len(one.choices[name]._actions) == 1 for name in others)  # -h alone: their options are not built
