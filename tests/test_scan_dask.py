"""efistub scan on both executors: worker processes here and Dask tasks on a LocalCluster of 2 workers.

Same outcomes, results streamed to the JSON Lines file, a task that kills its worker retried once
and then "crashed", --resume, the usage matrix (CSV and PNG), the one-line errors. One LocalCluster
serves the whole module (it takes a few seconds to start); tests/scan_tasks.py has the task that
kills its worker.
"""

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from efistub import executors
from efistub.scan import MAX_ATTEMPTS, scan

import scan_tasks

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install '.[scan]')")

GUESTS = Path(__file__).parent / "guests"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED = {  # image: (arch, outcome, reason)
    "hello.efi": ("x86_64", "exit", "EFI_SUCCESS: Hello from efistub guest"),
    "exit.efi": ("x86_64", "exit", "EFI_INVALID_PARAMETER: exit: calling Exit(EFI_INVALID_PARAMETER, "
                                   "exit-data-marker)"),
    "misc.efi": ("x86_64", "exit", "EFI_SUCCESS: DONE 0 failures"),
    "sub/exit-arm64.efi": ("aarch64", "exit", "EFI_INVALID_PARAMETER: exit: calling Exit(EFI_INVALID_PARAMETER, "
                                              "exit-data-marker)"),
    "junk.efi": (None, None, "cannot run: truncated: the DOS header needs 64 bytes, the file has 6"),
}


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 worker processes, made as `efistub scan --executor dask` makes its own."""
    cluster = executors.local_cluster(2)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def folder(tmp_path) -> Path:
    """Our guests (x86_64 and aarch64), a file that starts like an image and is none, and one that is not."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for name in ("hello.efi", "exit.efi", "misc.efi"):
        shutil.copy(GUESTS / "x86_64" / name, root / name)
    shutil.copy(GUESTS / "aarch64" / "exit.efi", root / "sub" / "exit-arm64.efi")
    (root / "junk.efi").write_bytes(b"MZjunk")
    (root / "notes.txt").write_text("not an image\n")
    return root


def executor(kind: str, scheduler: str, task=executors.run_task):
    if kind == "dask":
        return executors.DaskExecutor(scheduler=scheduler, task=task)
    return executors.ProcessExecutor(2, task=task)


def run_scan(kind, scheduler, folder, task=executors.run_task, **kwargs):
    with executor(kind, scheduler, task) as chosen:
        return {os.path.relpath(r["image"], folder): r for r in scan(str(folder), {}, chosen, **kwargs)}


def efistub_cli(*args):
    return subprocess.run([sys.executable, "-m", "efistub", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def streamed(journal: Path):
    """A progress callback that checks, at each result, that the JSON Lines file holds every result so far."""
    seen = []

    def progress(done, total, row):
        text = journal.read_text()
        assert text == "" or text.endswith("\n")  # every line complete and flushed
        lines = [json.loads(line) for line in text.splitlines()]
        assert len(lines) == done and total == len(EXPECTED)
        if row is not None:
            assert lines[-1]["image"] == row["image"]
        seen.append(len(lines))

    return progress, seen


def test_dask_gives_the_outcomes_of_the_process_pool_streamed_as_they_finish(scheduler, folder, tmp_path):
    seen = {}
    for kind in ("process", "dask"):
        progress, lines = streamed(tmp_path / f"{kind}.jsonl")
        seen[kind] = run_scan(kind, scheduler, folder, journal=str(tmp_path / f"{kind}.jsonl"), progress=progress)
        assert lines == list(range(len(EXPECTED) + 1))  # the file grew by one line at each result
    for rows in seen.values():
        assert {name: (r["arch"], r["outcome"], r["reason"]) for name, r in rows.items()} == EXPECTED
    summary = lambda rows: {n: (r["calls"], r["services"], r["unimplemented"]) for n, r in rows.items()}  # noqa: E731
    assert summary(seen["dask"]) == summary(seen["process"])
    assert seen["dask"]["hello.efi"]["services"] == {"TextOutput.OutputString": 1}


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_a_task_that_kills_its_worker_is_run_once_more_then_crashed(scheduler, folder, tmp_path, kind):
    shutil.copy(folder / "hello.efi", folder / "crash.efi")
    if kind == "process":  # a Dask worker takes a second or two to come back: the retry that works runs here only
        shutil.copy(folder / "exit.efi", folder / "crash-once.efi")
    journal = tmp_path / "scan.jsonl"
    rows = run_scan(kind, scheduler, folder, task=scan_tasks.run_or_die, journal=str(journal))
    assert (folder / "crash.efi.attempts").read_text().count("attempt") == MAX_ATTEMPTS == 2
    assert rows["crash.efi"]["outcome"] == "crashed"
    assert rows["crash.efi"]["reason"].endswith("its worker died at each of 2 runs")
    if kind == "process":
        assert rows["crash.efi"]["reason"].startswith("its worker process was killed by signal 9 (SIGKILL)")
    else:
        assert rows["crash.efi"]["reason"].startswith("its Dask worker died while running it")
    if kind == "process":
        assert (folder / "crash-once.efi.attempts").read_text().count("attempt") == 2
        assert rows["crash-once.efi"]["outcome"] == "exit"  # the retry ran it
    assert {n: (r["arch"], r["outcome"], r["reason"]) for n, r in rows.items() if "crash" not in n} == EXPECTED
    results = {os.path.basename(r["image"]): r for r in map(json.loads, journal.read_text().splitlines())}
    assert len(results) == len(rows)
    assert results["crash.efi"]["crashed"]["attempts"] == 2 and results["crash.efi"]["outcome"] == "crashed"


def test_resume_runs_only_the_images_not_in_the_file(scheduler, folder, tmp_path):
    journal = tmp_path / "scan.jsonl"
    run_scan("dask", scheduler, folder, journal=str(journal))
    lines = journal.read_bytes().splitlines(keepends=True)
    kept, torn = lines[:2], lines[2][:len(lines[2]) // 2]  # an interruption mid-line
    journal.write_bytes(b"".join(kept) + torn)
    done = {os.path.relpath(json.loads(line)["image"], folder) for line in kept}
    rows = run_scan("dask", scheduler, folder, task=scan_tasks.run_or_die, journal=str(journal), resume=True)
    ran = [line for log in folder.rglob("ran.log") for line in log.read_text().split()]
    assert sorted(ran) == sorted(os.path.basename(n) for n in EXPECTED if n not in done)
    assert {n: (r["arch"], r["outcome"], r["reason"]) for n, r in rows.items()} == EXPECTED
    again = journal.read_bytes().splitlines(keepends=True)
    assert again[:2] == kept and len(again) == len(EXPECTED)  # appended; the torn line is gone
    assert len({json.loads(line)["image"] for line in again}) == len(EXPECTED)


def test_the_cli_on_dask_streams_resumes_and_tabulates(scheduler, folder, tmp_path):
    journal = tmp_path / "scan.jsonl"
    result = efistub_cli("scan", folder, "--scheduler", scheduler, "--json", journal, "--markdown", tmp_path / "t.md")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(rows) == set(EXPECTED)
    for name, (arch, outcome, reason) in EXPECTED.items():
        assert rows[name].split()[1:3] == [arch or "-", outcome or "-"] and rows[name].endswith("  " + reason)
    assert result.stderr.splitlines()[-1].startswith(f"efistub scan: [{'#' * 30}] 5/5 images (dask")
    markdown = (tmp_path / "t.md").read_text().splitlines()
    assert markdown[0].startswith("| image | arch | outcome | reason |") and len(markdown) == 2 + len(EXPECTED)
    assert "| `sub/exit-arm64.efi` | aarch64 | exit | EFI_INVALID_PARAMETER: exit: calling Exit(" in markdown[-1]
    before = journal.read_text()
    result = efistub_cli("scan", folder, "--scheduler", scheduler, "--json", journal, "--resume")
    assert result.returncode == 0, result.stderr
    assert journal.read_text() == before  # nothing left to run
    assert {line.split()[0] for line in result.stdout.splitlines()[1:]} == set(EXPECTED)
    assert "5/5 images" in result.stderr.splitlines()[0]


def test_the_usage_matrix_counts_each_images_calls(scheduler, folder, tmp_path):
    shutil.copy(GUESTS / "x86_64" / "protocols.efi", folder / "protocols.efi")
    out = tmp_path / "usage"
    result = efistub_cli("scan", folder, "--scheduler", scheduler, "--matrix", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == f"efistub scan: usage matrix in {out}.csv and {out}.png"
    with open(f"{out}.csv", newline="") as f:
        matrix = {r["image"]: r for r in csv.DictReader(f)}
    assert set(matrix) == set(EXPECTED) - {"junk.efi"} | {"protocols.efi"}  # images that ran
    hello, exits, misc, protocols = (matrix[n] for n in ("hello.efi", "exit.efi", "misc.efi", "protocols.efi"))
    assert hello["arch"] == "x86_64" and hello["outcome"] == "exit" and hello["TextOutput.OutputString"] == "1"
    assert all(v == "0" for k, v in hello.items() if k not in ("image", "arch", "outcome", "TextOutput.OutputString"))
    assert {k: v for k, v in exits.items() if v not in ("0",)} == {
        "image": "exit.efi", "arch": "x86_64", "outcome": "exit",
        "AllocatePool": "1", "CopyMem": "1", "Exit": "1", "TextOutput.OutputString": "4"}
    assert matrix["sub/exit-arm64.efi"] | {"image": "exit.efi", "arch": "x86_64"} == exits
    assert misc["CalculateCrc32"] == "6" and misc["GetTime"] == "2" and misc["Exit"] == "0"
    assert int(protocols["protocol:EFI_LOADED_IMAGE_PROTOCOL_GUID"]) >= 1
    assert protocols["InstallMultipleProtocolInterfaces"] == "3"
    # two installs and two deletes name the table; a fifth call has a NULL GUID
    assert protocols["table:36f2ca5b-98dd-4f8a-ae40-ccca3419abed"] == "4"
    assert protocols["InstallConfigurationTable"] == "5"
    assert misc["protocol:EFI_LOADED_IMAGE_PROTOCOL_GUID"] == "0"
    header = next(csv.reader(open(f"{out}.csv")))
    kinds = ["table" if c.startswith("table:") else "protocol" if c.startswith("protocol:") else "service"
             for c in header[3:]]
    assert kinds == sorted(kinds, key=["service", "protocol", "table"].index)  # services, protocols, tables
    png = Path(f"{out}.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert 600 <= width <= 4000 and 300 <= height <= 3000, (width, height)
    assert 10_000 < len(png) < 2_000_000


def missing(module: str, *args):
    """The CLI run as if ``module`` were not installed."""
    code = (f"import sys; sys.modules[{module!r}] = None; from efistub.cli import main; "
            f"sys.exit(main({[str(a) for a in args]!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (("--executor", "dask"), "efistub: error: --executor dask: needs dask.distributed, which is not installed: "
                             "pip install 'efistub[scan]'"),
    (("--matrix", "out"), "efistub: error: --matrix: needs matplotlib, which is not installed: "
                          "pip install 'efistub[scan]'"),
])
def test_a_missing_optional_package_is_one_line_naming_it(folder, args, message):
    module = "distributed" if "dask" in args else "matplotlib"
    result = missing(module, "scan", folder, *args)
    assert result.returncode == 2 and result.stderr.splitlines() == [message] and result.stdout == ""


@pytest.mark.parametrize("args, message", [
    (("--resume",), "--resume: needs the JSON Lines file of the scan to resume (--json FILE)"),
    (("--scheduler", "tcp://127.0.0.1:8786", "--executor", "process"),
     "--scheduler: names a Dask scheduler: it needs --executor dask"),
    (("--scheduler", "tcp://127.0.0.1:8786", "--jobs", "2"),
     "--jobs: with --scheduler, the cluster's own workers run the tasks"),
])
def test_bad_scan_options_are_one_line(folder, args, message):
    result = efistub_cli("scan", folder, *args)
    assert result.returncode == 2 and result.stderr.splitlines() == [f"efistub: error: {message}"]


def test_a_json_lines_file_that_is_not_a_scans_is_one_line(folder, tmp_path):
    journal = tmp_path / "scan.jsonl"
    journal.write_text('{"image": "/x.efi"}\nnot json\n{"image": "/y.efi"}\n')
    result = efistub_cli("scan", folder, "--json", journal, "--resume")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"efistub: error: {journal}: line 2 is not a scan result "
                                          "(a JSON object with an image)"]
    result = efistub_cli("scan", tmp_path / "nowhere")
    assert result.returncode == 2 and result.stderr.splitlines() == [f"efistub: error: {tmp_path / 'nowhere'}: "
                                                                     "not a folder"]
