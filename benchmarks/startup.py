#!/usr/bin/env python3
"""The fixed costs of an `efistub run` process: start-up, imports, set-up, the end of the run, exit.

Each row is a fresh process, timed from before it is started to after it has been reaped
(wall), with its CPU time (user + system, from wait4); medians of --repeat runs, the rows
alternating within each round:

- `python3 -c pass`: the interpreter's own start-up on this machine (site, .pth files);
- `import efistub.cli`: the import alone, timed inside the process (and the whole process);
- `efistub run IMAGE ...`: the whole process, as a user runs it (`python3 -m efistub`);
- the same run split into phases, from timestamps the process takes (CLOCK_MONOTONIC, the
  clock this script reads too): to `efistub.cli` imported; to the first guest instruction
  (the run loop starts: arguments parsed, image read, machine assembled); the guest's run;
  to `main()` returned (the report, the summary, the output); to the process reaped (the end
  of the process: efistub.cli.entry's exit, the kernel freeing the process's memory). Each
  phase's CPU time comes from the process's own CPU clock at those points (and wait4's total);
- with --save-handoff, the runs save their hand-off (a new folder each, removed after), and
  `efistub resume DIR --print-command` on the first one is timed too: the SHA-256 check of the
  segments and the QEMU command line, all the work efistub resume does before QEMU starts.

By default the processes use a bytecode cache of their own (PYTHONPYCACHEPREFIX in a
temporary folder, written by a first run that is not counted), as an installed efistub has
its .pyc files; --compile makes every process compile efistub's sources again, as an editable
install does in an environment that sets PYTHONDONTWRITEBYTECODE=1 (this one does): the
variable is set, and the source tree must hold no __pycache__ folders.

    python3 benchmarks/startup.py [--corpus DIR] [--repeat N] [--image FILE] [--args TEXT] [--compile]
                                  [--save-handoff] [--json]

The default image is the corpus's x86_64/HelloWorld.efi with --keys '\\r'. For a kernel:
    python3 benchmarks/startup.py --image ../shared/corpus/x86_64/vmlinuz-6.12.117+deb13-amd64 --args ''
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import resource
import tempfile
import time
from pathlib import Path

DEFAULT_IMAGE = "x86_64/HelloWorld.efi"
DEFAULT_ARGS = "--keys '\\r'"
MARKS = "efistub-startup-marks "  # the line the phased process ends its stderr with

# The phased process: efistub's own command line, with timestamps taken at the phase boundaries.
# The run loop is timed by wrapping RunLoop.run once efistub.runloop is imported, so that no
# module is imported earlier than in a plain run.
PHASED = r"""
import sys, time, os, json
marks = {"started": time.perf_counter()}
cpu = {}  # the process's CPU time (user + system) at each mark

def mark(name, keep_first=False):
    if keep_first and name in marks:
        return
    marks[name] = time.perf_counter()
    cpu[name] = time.process_time()

class _Timer:
    def find_spec(self, name, path, target=None):
        if name != "efistub.runloop":
            return None
        sys.meta_path.remove(self)
        import importlib.machinery
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        exec_module = spec.loader.exec_module
        def patched(module):
            exec_module(module)
            run = module.RunLoop.run
            def timed_run(self):
                mark("first_instruction", keep_first=True)
                try:
                    return run(self)
                finally:
                    mark("run_loop_end")
            module.RunLoop.run = timed_run
        spec.loader.exec_module = patched
        return spec

sys.meta_path.insert(0, _Timer())
import efistub.cli as cli
mark("cli_imported")
main = cli.main

def timed_main(argv=None):
    rc = main(argv)
    mark("main_returned")
    sys.stderr.write("\n" + MARKS + json.dumps({"wall": marks, "cpu": cpu}) + "\n")
    return rc

cli.main = timed_main
if hasattr(cli, "entry"):
    cli.entry()  # the program's own end of the process
else:  # an efistub from before entry()
    sys.exit(cli.main())
""".replace("MARKS", repr(MARKS))
IMPORT = ("import time; t = time.perf_counter(); import efistub.cli; "
          "print(time.perf_counter() - t)")


def timed(command: list[str], env: dict) -> dict:
    """Run ``command`` to its end: its wall time (to the process reaped), stdout and stderr (text)."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, env=env)
    end = time.perf_counter()
    return {"start": start, "end": end, "wall_s": end - start, "out": proc.stdout.decode(errors="replace"),
            "err": proc.stderr.decode(errors="replace"), "returncode": proc.returncode}


def with_cpu(command: list[str], env: dict) -> dict:
    """``timed``, plus the CPU time of the process (the children's rusage before and after)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = timed(command, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run["rss_mib"] = after.ru_maxrss / 1024  # the largest of any child so far
    return run


def phases(run: dict) -> dict:
    """The phase durations of a phased run (wall, and CPU with a _cpu suffix), from its marks and the
    parent's clock and rusage."""
    line = next((l for l in reversed(run["err"].splitlines()) if l.startswith(MARKS)), None)
    if line is None:
        raise SystemExit(f"the phased run left no marks (exit {run['returncode']}):\n{run['err'][-2000:]}")
    out = {}
    marks = json.loads(line[len(MARKS):])
    for clock, start, end, suffix in (("wall", run["start"], run["end"], ""), ("cpu", 0.0, run["cpu_s"], "_cpu")):
        m = marks[clock]
        first = m.get("first_instruction", m["main_returned"])
        loop_end = m.get("run_loop_end", first)
        out.update({"to_cli_imported_s" + suffix: m["cli_imported"] - start,
                    "to_first_instruction_s" + suffix: first - start, "guest_run_s" + suffix: loop_end - first,
                    "report_and_output_s" + suffix: m["main_returned"] - loop_end,
                    "shutdown_s" + suffix: end - m["main_returned"], "whole_s" + suffix: end - start})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=os.environ.get("EFISTUB_CORPUS", "../shared/corpus"))
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--image", help=f"the image to run (default: CORPUS/{DEFAULT_IMAGE})")
    parser.add_argument("--args", default=None, help=f"efistub run's options (default with HelloWorld: "
                                                     f"{DEFAULT_ARGS})")
    parser.add_argument("--compile", action="store_true", help="every process compiles efistub's sources again")
    parser.add_argument("--save-handoff", action="store_true",
                        help="the runs save their hand-off (--save-handoff into a new folder each), and one more row "
                             "times `efistub resume DIR --print-command`: the check of the saved segments and the "
                             "QEMU command line, all of efistub resume's own work before QEMU starts")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    image = Path(args.image) if args.image else Path(args.corpus) / DEFAULT_IMAGE
    if not image.is_file():
        parser.error(f"{image}: no such file (--corpus DIR or --image FILE)")
    run_args = shlex.split(args.args if args.args is not None else (DEFAULT_ARGS if not args.image else ""))
    cache = tempfile.mkdtemp(prefix="efistub-startup-pyc-")
    if args.compile:  # the interpreter's own .pyc files as installed, efistub's compiled again by every process
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env = dict(os.environ, PYTHONPYCACHEPREFIX=cache)
        env.pop("PYTHONDONTWRITEBYTECODE", None)

    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="efistub-startup-"))
    saved = work / "saved"  # the hand-off efistub resume checks (--save-handoff): the first run's
    counter = iter(range(1 << 30))

    def handoff_folder() -> list[str]:
        return ["--save-handoff", str(work / f"run-{next(counter)}")] if args.save_handoff else []

    commands = {
        "floor": lambda: [py, "-c", "pass"],
        "import": lambda: [py, "-c", IMPORT],
        "run": lambda: [py, "-m", "efistub", "run", str(image), *run_args, *handoff_folder()],
        "phased": lambda: [py, "-c", PHASED, "run", str(image), *run_args, *handoff_folder()],
    }
    if args.save_handoff:
        commands["resume"] = lambda: [py, "-m", "efistub", "resume", str(saved), "--print-command"]

    def tidy() -> None:  # the saved folders of the runs, and the work folders --print-command leaves
        for folder in work.glob("run-*"):
            if not saved.exists():
                folder.rename(saved)
            else:
                shutil.rmtree(folder)
        for folder in Path(tempfile.gettempdir()).glob("efistub-resume-*"):
            shutil.rmtree(folder, ignore_errors=True)

    for name, command in commands.items():  # a first run of each, not counted: the bytecode cache is written
        timed(command(), env)
        tidy()
    results: dict[str, list] = {name: [] for name in commands}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for name, command in commands.items():
            run = with_cpu(command(), env)
            tidy()
            if name == "import":
                run["import_s"] = float(run["out"].strip().splitlines()[-1])
            if name == "phased":
                run.update(phases(run))
            if name == "resume" and run["returncode"] != 0:
                raise SystemExit(f"efistub resume failed: {run['err'][-2000:]}")
            results[name].append(run)
        load.append(os.getloadavg()[0])
    shutil.rmtree(work)
    shutil.rmtree(cache)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    out = {
        "image": str(image), "args": run_args, "repeat": args.repeat, "bytecode": "compiled" if args.compile else
        "cached", "load_average": [round(min(load), 2), round(max(load), 2)],
        "python_floor": {"wall_s": median("floor", "wall_s"), "cpu_s": median("floor", "cpu_s")},
        "import_efistub_cli": {"import_s": median("import", "import_s"), "wall_s": median("import", "wall_s"),
                               "cpu_s": median("import", "cpu_s")},
        "run": {"wall_s": median("run", "wall_s"), "cpu_s": median("run", "cpu_s"),
                "rss_mib": max(r["rss_mib"] for r in results["run"]),
                "exit": sorted({r["returncode"] for r in results["run"]})},
        "resume": {"wall_s": median("resume", "wall_s"), "cpu_s": median("resume", "cpu_s")} if args.save_handoff
        else None,
        "phases": {key + suffix: median("phased", key + suffix)
                   for key in ("to_cli_imported_s", "to_first_instruction_s", "guest_run_s", "report_and_output_s",
                               "shutdown_s", "whole_s") for suffix in ("", "_cpu")},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    ms = lambda s: f"{s * 1000:.0f}"  # noqa: E731
    p = out["phases"]
    print(f"{image.name} {' '.join(run_args)}: median of {args.repeat}, bytecode {out['bytecode']}, "
          f"load average {out['load_average'][0]}-{out['load_average'][1]}")
    print()
    print("| what | wall ms | CPU ms |")
    print("|---|---|---|")
    print(f"| `python3 -c pass` (the interpreter's floor) | {ms(out['python_floor']['wall_s'])} | "
          f"{ms(out['python_floor']['cpu_s'])} |")
    print(f"| `import efistub.cli` (in the process; the whole process: {ms(out['import_efistub_cli']['wall_s'])} "
          f"ms) | {ms(out['import_efistub_cli']['import_s'])} | {ms(out['import_efistub_cli']['cpu_s'])} (process) |")
    print(f"| `efistub run` whole process (exit {', '.join(map(str, out['run']['exit']))}, peak RSS "
          f"{out['run']['rss_mib']:.0f} MiB) | {ms(out['run']['wall_s'])} | {ms(out['run']['cpu_s'])} |")
    if out["resume"]:
        print(f"| `efistub resume DIR --print-command` (the check, the QEMU command line) | "
              f"{ms(out['resume']['wall_s'])} | {ms(out['resume']['cpu_s'])} |")
    for key, what in (("to_cli_imported_s", "phases: from the start to `efistub.cli` imported"),
                      ("to_first_instruction_s", "from the start to the first guest instruction"),
                      ("guest_run_s", "the guest's run (the run loop)"),
                      ("report_and_output_s", "the report, the summary, the output"),
                      ("shutdown_s", "the end of the process, to it reaped"),
                      ("whole_s", "the phased process, whole")):
        print(f"| {what} | {ms(p[key])} | {ms(p[key + '_cpu'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
