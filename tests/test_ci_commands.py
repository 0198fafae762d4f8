"""efistub check, policy, diff, minimize and scan; the usage section of reports."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import efistub
from efistub.layouts import pe
from pe_builder import code_image

GUESTS = Path(__file__).parent / "guests" / "x86_64"
HELLO = GUESTS / "hello.efi"


def efistub_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "efistub", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_check_passes_inside_the_policy(tmp_path):
    policy = write(tmp_path / "p.toml", 'outcome = "exit"\nservices = ["TextOutput.OutputString"]\n')
    result = efistub_cli("check", HELLO, "--policy", policy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: exit, 1 calls inside the policy")


def test_check_lists_each_violation(tmp_path):
    policy = write(tmp_path / "p.toml", 'services = []\n')  # outcome defaults to handoff
    result = efistub_cli("check", HELLO, "--policy", policy)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["outcome: exit, expected handoff",
                                          "not allowed: service TextOutput.OutputString"]


def test_check_of_protocols_tables_and_variables(tmp_path):
    policy = write(tmp_path / "p.toml", 'outcome = "exit"\nservices = []\n')
    result = efistub_cli("check", GUESTS / "variables.efi", "--policy", policy)
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert "not allowed: service SetVariable" in lines
    assert "not allowed: variable 0e86f127-3ab8-4b42-b1df-0f867808139f/EfistubTestVar" in lines
    result = efistub_cli("check", GUESTS / "protocols.efi", "--policy", policy)
    assert "not allowed: protocol EFI_LOADED_IMAGE_PROTOCOL_GUID" in result.stdout.splitlines()
    assert "not allowed: configuration table 36f2ca5b-98dd-4f8a-ae40-ccca3419abed" in result.stdout.splitlines()


@pytest.mark.parametrize("text, problem", [
    ("services = [", "not valid TOML"),
    ('services = "all"', "services must be a list of strings"),
    ('outcome = "maybe"', "outcome 'maybe' is not one of"),
    ('allow = []', "unknown keys ['allow']"),
])
def test_a_bad_policy_is_a_one_line_input_error(tmp_path, text, problem):
    policy = write(tmp_path / "p.toml", text)
    result = efistub_cli("check", HELLO, "--policy", policy)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"efistub: error: {policy}: ") and problem in result.stderr


def test_policy_writes_what_the_run_needs_and_check_accepts_it(tmp_path):
    result = efistub_cli("policy", GUESTS / "protocols.efi")
    assert result.returncode == 0
    policy = write(tmp_path / "p.toml", result.stdout)
    import tomllib

    data = tomllib.loads(result.stdout)
    assert data["outcome"] == "exit" and "LocateProtocol" in data["services"]
    assert "EFI_LOADED_IMAGE_PROTOCOL_GUID" in data["protocols"]
    assert efistub_cli("check", GUESTS / "protocols.efi", "--policy", policy).returncode == 0


def test_diff(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert efistub_cli("run", HELLO, "--json", a).returncode == 0
    assert efistub_cli("run", GUESTS / "exit.efi", "--json", b).returncode == 1
    same = efistub_cli("diff", a, a)
    assert same.returncode == 0 and same.stdout == "no changes\n"
    changed = efistub_cli("diff", a, b)
    assert changed.returncode == 1
    lines = changed.stdout.splitlines()
    assert "exit_status: EFI_SUCCESS -> EFI_INVALID_PARAMETER" in lines
    assert "service added: Exit (1 calls)" in lines
    as_json = json.loads(efistub_cli("diff", a, b, "--json").stdout)
    assert as_json["services"]["Exit"]["added"]["count"] == 1
    bad = efistub_cli("diff", a, write(tmp_path / "x.json", "{}"))
    assert bad.returncode == 2 and "not an efistub report" in bad.stderr


@pytest.mark.parametrize("arch", ["x86_64", "ia32"])
def test_minimize_finds_the_known_minimal_set(tmp_path, arch):
    out = tmp_path / "m.json"
    result = efistub_cli("minimize", GUESTS.parent / arch / "needs.efi", "--jobs", "2", "--json", out)
    assert result.returncode == 0, result.stderr
    found = json.loads(out.read_text())
    assert found["services"] == ["AllocatePool", "CopyMem"]
    assert sorted(found["optional"]) == ["FreePool", "GetVariable", "LocateProtocol", "SetWatchdogTimer"]
    assert found["optional"]["GetVariable"]["console"] == "needs: done\r\n"
    assert found["runs"] > 2
    assert "outcome exit (EFI_SUCCESS) needs 2 of the 6 boot and runtime services" in result.stdout


def test_only_restricts_the_implemented_set():
    report = efistub.Machine(GUESTS / "needs.efi", only=["AllocatePool"]).run()
    assert report.exit_status == "EFI_LOAD_ERROR"  # CopyMem is absent
    absent = {c.service: c.status for c in report.calls if c.unimplemented}
    assert absent["LocateProtocol"] == "EFI_NOT_FOUND"  # a look-up: not found, as the Linux stub needs
    assert absent["GetVariable"] == "EFI_UNSUPPORTED"
    with pytest.raises(ValueError, match="unknown services"):
        efistub.Machine(HELLO, only=["NoSuchService"])


def test_scan_runs_every_image_and_lists_the_ones_it_cannot(tmp_path):
    shutil.copy(HELLO, tmp_path / "hello.efi")
    (tmp_path / "sub").mkdir()
    shutil.copy(GUESTS.parent / "aarch64" / "exit.efi", tmp_path / "sub" / "exit-arm64.efi")
    shutil.copy(GUESTS.parent / "ia32" / "exit.efi", tmp_path / "sub" / "exit-ia32.efi")
    (tmp_path / "pe32.efi").write_bytes(code_image(b"\xc3", magic=pe.PE32_MAGIC))
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "scan.jsonl"
    result = efistub_cli("scan", tmp_path, "--jobs", "2", "--json", out)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(rows) == {"hello.efi", "pe32.efi", "sub/exit-arm64.efi", "sub/exit-ia32.efi"}
    assert rows["hello.efi"].split()[1:4] == ["x86_64", "exit", "1"]
    assert rows["sub/exit-arm64.efi"].split()[1:3] == ["aarch64", "exit"]
    assert rows["sub/exit-ia32.efi"].split()[1:3] == ["ia32", "exit"]
    assert "cannot run: PE32 (32-bit) image" in rows["pe32.efi"]
    reports = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(reports) == 4 and sum("input_error" in r for r in reports) == 1


def test_usage_of_variables_and_protocols():
    usage = efistub.Machine(GUESTS / "variables.efi").run().usage
    var = next(v for v in usage["variables"] if v["name"] == "EfistubTestVar")
    assert var["vendor"] == "0e86f127-3ab8-4b42-b1df-0f867808139f"
    assert var["reads"] >= 2 and var["writes"] >= 2 and var["attributes"] == 7
    usage = efistub.Machine(GUESTS / "protocols.efi").run().usage
    assert usage["protocols"]["EFI_LOADED_IMAGE_PROTOCOL_GUID"]["opened"] >= 1
    assert usage["services"]["InstallMultipleProtocolInterfaces"]["count"] == 3
