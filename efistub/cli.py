"""The efistub command line. The terminal belongs here: nothing below the CLI prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .errors import InputError
from .executors import EXECUTORS
from .options import RunOptions, parse_size  # noqa: F401 - parse_size is part of the CLI's API

EXIT_OK, EXIT_GUEST, EXIT_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it
SCAN_PROGRESS_WIDTH = 30  # characters of the scan's progress bar
SCAN_PROGRESS_STEPS = 20  # without a terminal, the progress bar is printed at each twentieth of the scan
SWEEP_QUIET_S = 2.0  # a sweep says how far it is once it has taken this long


class _NotBuilt:
    """The options of a subcommand the command line does not use: taken and dropped (build_parser)."""

    def add_argument(self, *args, **kwargs) -> None:
        return None

    def add_subparsers(self, **kwargs) -> "_NotBuilt":
        return self

    def add_parser(self, *args, **kwargs) -> "_NotBuilt":
        return self


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. With ``command``, the options of that subcommand alone are built; every other
    subcommand is there with its help (``efistub --help`` lists them all), its options are not: building
    all of them costs every run milliseconds. Without ``command`` (or one that is no subcommand), all."""
    parser = argparse.ArgumentParser(
        prog="efistub",
        description="Run an EFI image (such as a Linux kernel's EFI stub) on emulated firmware and "
                    "report what it did.",
    )
    parser.add_argument("--version", action="version", version=f"efistub {__import__('efistub').__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)

    def add_command(name: str, **kwargs):
        subparser = subparsers.add_parser(name, **kwargs)
        return subparser if command is None or name == command else _NotBuilt()

    run = add_command(
        "run", help="run an EFI image to its hand-off, exit, reset, fault or timeout",
        description="Run IMAGE headless. The guest's console output is printed as it happens, then a "
                    "summary. Exit code: 0 for a hand-off to a kernel or an Exit with EFI_SUCCESS, 1 for "
                    "any other outcome, 2 for bad input.",
    )
    add_image_options(run)
    run.add_argument("--only", type=_service_list, metavar="SERVICE,...",
                     help="implement only these boot and runtime services; every other one answers as an absent "
                          "firmware would (EFI_NOT_FOUND for look-ups, EFI_UNSUPPORTED otherwise)")
    run.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE ('-' for stdout)")
    run.add_argument("--save-handoff", metavar="DIR", help="after a hand-off, save the machine state the kernel "
                                                         "is entered with into DIR (a new or empty folder): "
                                                         "manifest.json and the RAM it needs; efistub resume "
                                                         "boots it (docs/handoff-state.md)")
    run.add_argument("--trace", action="store_true", help="print each service call as it happens (stderr)")
    add_debug_options(run)

    boot = add_command(
        "boot", help="boot from an ESP as firmware does without boot options",
        description="Run the removable-media boot file of the ESP, \\EFI\\BOOT\\BOOTX64.EFI (BOOTAA64.EFI, "
                    "BOOTRISCV64.EFI, BOOTIA32.EFI), with the ESP as its device, to its hand-off, exit, reset, "
                    "fault or timeout. The ESP is the --esp folder, or the FAT ESP partition of --disk. Exit codes "
                    "as for 'efistub run'.")
    add_image_options(boot, image=False)
    boot.add_argument("--arch", choices=sorted(_arch_names()),
                      help="whose boot file to run (default: the first present of x86_64, aarch64, riscv64, ia32)")
    boot.add_argument("--only", type=_service_list, metavar="SERVICE,...", help="as for 'efistub run'")
    boot.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE ('-' for stdout)")
    boot.add_argument("--trace", action="store_true", help="print each service call as it happens (stderr)")
    add_debug_options(boot)

    check = add_command(
        "check", help="run an image and check it against a policy (for CI)",
        description="Run IMAGE and check that it stays inside the policy: every service, protocol, configuration "
                    "table and variable it uses is allowed, and it reaches the expected outcome. Exit 0 when it "
                    "does; 1 otherwise, printing each violation on its own line; 2 for bad input.")
    add_image_options(check)
    check.add_argument("--policy", required=True, metavar="FILE", help="the policy (TOML; see docs/ci.md)")
    check.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")

    policy = add_command("policy", help="write the policy a run of IMAGE needs (TOML, to stdout)",
                         description="Run IMAGE and print, as TOML, the policy that allows exactly what the run "
                                     "used: a starting point for 'efistub check'.")
    add_image_options(policy)

    diff = add_command("diff", help="what changed between two JSON reports",
                       description="Compare two reports written by --json: services, protocols, configuration "
                                   "tables and variables added or gone, counts and statuses that changed, "
                                   "outcome and hand-off differences. Exit 0 when nothing changed, 1 otherwise.")
    diff.add_argument("old", metavar="OLD.json")
    diff.add_argument("new", metavar="NEW.json")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")

    minimize = add_command(
        "minimize", help="find the smallest set of boot and runtime services an image needs",
        description="Delta debugging over repeated runs: the smallest set of implemented services with which "
                    "IMAGE still reaches the outcome of a full run, every other service answering as an absent "
                    "firmware would. Candidate runs resume from copies of earlier runs forked where they diverge "
                    "(--fresh: each from the start, in parallel worker processes).")
    add_image_options(minimize)
    minimize.add_argument("--jobs", type=int, default=None, metavar="N",
                          help="candidate runs at a time (default: cores; through snapshots, runs started "
                               "ahead on idle cores may add one)")
    minimize.add_argument("--fresh", action="store_true",
                          help="run every candidate set from the start in a worker process, instead of resuming "
                               "copies of earlier runs forked where they diverge (the default; docs/sweep.md)")
    minimize.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE")

    sweep = add_command(
        "sweep", help="fail every service call of a run in turn, each in a copy of the run forked at that call",
        description="Run IMAGE once (the baseline); at each service call it makes, fork the run once per status "
                    "and fail that call with it in the copy, which runs to its own outcome. Prints one row per "
                    "forked run: the call, its arguments, the injected status, the outcome and whether the image "
                    "handled it (a clean Exit, hand-off or reset) or misbehaved (a fault, a hang, boot services "
                    "after ExitBootServices, a stale map key, memory it allocated and never freed). Exit 0 when "
                    "every failure was handled, 1 when any made the image misbehave, 2 for bad input "
                    "(docs/sweep.md).")
    add_image_options(sweep)
    sweep.add_argument("--status", type=_service_list, metavar="STATUS,...",
                       help="the statuses to inject into each call (default: for each service, the error statuses "
                            "the UEFI specification lists for it)")
    sweep.add_argument("--services", type=_service_list, metavar="SERVICE,...",
                       help="fail only the calls of these services (boot, runtime or protocol services, as the "
                            "report names them)")
    sweep.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="forked runs at a time (default: cores)")
    sweep.add_argument("--json", metavar="FILE", help="write the rows as JSON to FILE ('-' for stdout)")

    scan = add_command(
        "scan", help="run every EFI image below a folder and tabulate the outcomes",
        description="Run every EFI image below DIR as tasks, in worker processes here or on a Dask cluster (the PE "
                    "machine field picks each image's architecture), and print one table: each image's outcome and "
                    "the reason for it; images efistub cannot run are listed with the reason. Results go to the "
                    "--json file as they finish; a task whose worker dies is run once more, then reported as "
                    "'crashed'. Progress on stderr (docs/ci.md).")
    scan.add_argument("folder", metavar="DIR")
    add_image_options(scan, image=False)
    scan.add_argument("--jobs", type=int, default=None, metavar="N",
                      help="worker processes here, or of the Dask LocalCluster (default: cores)")
    scan.add_argument("--json", metavar="FILE", help="write one JSON report per line (JSON Lines) to FILE, each as "
                                                     "its image finishes")
    scan.add_argument("--resume", action="store_true",
                      help="go on with an interrupted scan: images the --json FILE holds are not run again, and "
                           "FILE is appended to")
    scan.add_argument("--executor", choices=EXECUTORS, default=None,
                      help="how the tasks run: 'process', worker processes here (the default), or 'dask', Dask "
                           "tasks through dask.distributed (pip install 'efistub[scan]')")
    scan.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                      help="with --executor dask (which it implies): the scheduler of an existing Dask cluster; "
                           "without it a LocalCluster of --jobs workers starts")
    scan.add_argument("--matrix", metavar="OUT", help="write the usage matrix, images x services, protocols and "
                                                      "configuration tables (calls of each), as OUT.csv and a heat "
                                                      "map OUT.png (matplotlib)")
    scan.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown to FILE")

    resume = add_command(
        "resume", help="boot a hand-off saved by run --save-handoff in QEMU, without UEFI firmware",
        description="Boot the machine state saved by 'efistub run KERNEL --save-handoff DIR' in QEMU (TCG) on the "
                    "board it was saved on: QEMU loads the saved RAM and starts efistub's resume trampoline, which "
                    "restores the saved CPU state and jumps to the kernel's entry. The guest's console goes to "
                    "stdout. Exit code: 0 when --until TEXT appeared (without --until: when QEMU exited by "
                    "itself), 1 at the timeout or when QEMU exited first, 2 for bad input "
                    "(docs/handoff-state.md).")
    resume.add_argument("folder", metavar="DIR")
    resume.add_argument("--until", metavar="TEXT", help="stop QEMU when the console shows TEXT")
    resume.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="stop QEMU after S seconds (default 120)")
    resume.add_argument("--print-command", action="store_true",
                        help="print the QEMU command line instead of running it")

    eng = add_command("engine", help="build, check or remove the fast unicorn engine (docs/engine.md)",
                      description="The fast engine is libunicorn built from the installed unicorn release with "
                                  "efistub's patch that keeps guest stores to memory without execute on the fast "
                                  "path. pip install builds it (once per unicorn version and patch, in the "
                                  "cache folder; EFISTUB_ENGINE_BUILD=0 skips that), and efistub uses it when it "
                                  "is built and matches the unicorn binding.")
    eng_sub = eng.add_subparsers(dest="engine_command", required=True)
    build = eng_sub.add_parser("build", help="build it again: download unicorn's source with pip, patch, build "
                                             "(cmake), self-test, install in the cache folder")
    build.add_argument("--jobs", type=int, default=None, metavar="N", help="parallel compile jobs (default: cores)")
    eng_sub.add_parser("status", help="say which engine a run would use and why")
    eng_sub.add_parser("remove", help="delete the fast engine")
    if command is not None and command not in subparsers.choices:  # no subcommand: argparse says so, with all
        return build_parser()
    return parser


def add_image_options(parser: argparse.ArgumentParser, image: bool = True) -> None:
    """The options that describe a run, shared by run, check, policy, minimize and scan."""
    if image:
        parser.add_argument("image", metavar="IMAGE", help="an EFI image: PE32+ for x86_64, aarch64 or riscv64, "
                                                           "PE32 for IA32 (the PE machine field picks the "
                                                           "architecture)")
    RunOptions.add_arguments(parser)
    parser.add_argument("--engine", choices=("fast", "stock"),
                        help="the unicorn library: the fast engine that pip install or 'efistub engine build' "
                             "builds (the default when it is built) or the stock one of the unicorn wheel; "
                             "EFISTUB_ENGINE sets the default")


def add_debug_options(parser: argparse.ArgumentParser) -> None:
    """--gdb and --symbols, for run and boot (docs/debugging.md)."""
    parser.add_argument("--gdb", metavar="[HOST:]PORT",
                        help="serve gdb's remote protocol on HOST:PORT (HOST default 127.0.0.1; 0.0.0.0 for every "
                             "interface; PORT 0 picks a free one) and wait for gdb before the image's first "
                             "instruction; prints the gdb-multiarch command that connects and loads the symbols. "
                             "--timeout does not count the time the guest waits stopped in gdb (docs/debugging.md)")
    parser.add_argument("--symbols", metavar="FILE",
                        help="with --gdb: the ELF file with the image's symbols (a vmlinux, the ELF file the image "
                             "was made from, a .debug file); the printed command loads it where the image lies")


def _debugger(args):
    """The gdb server --gdb asks for, listening (None without --gdb); a one-line InputError when it cannot."""
    if getattr(args, "gdb", None) is None:
        if getattr(args, "symbols", None) is not None:
            raise InputError("--symbols", "needs --gdb (the symbols are for gdb)")
        return None
    from . import engine, gdbstub, symbols

    elf = symbols.ElfFile(args.symbols) if args.symbols is not None else None  # bad input fails before the run

    def ready(server, platform) -> None:
        found = (symbols.from_elf(args.symbols, platform.image, platform.load_address) if elf is not None
                 else symbols.of_image(platform.image, platform.load_address))
        where = f"image at 0x{platform.load_address:x}, entry point 0x{platform.entry:x}"
        if found is None:
            where += "; it has no symbols (--symbols FILE gives them)"
        else:
            where += f"; symbols from {found.path}, {found.how}"
        command = symbols.gdb_command_line(server.address, [f for f in (server.firmware_symbols, found) if f])
        if engine.loaded().engine == "stock":
            print("efistub: gdb: note: on the stock engine, an interrupt (Ctrl-C) can stop inside an instruction, "
                  "which then runs twice when the guest goes on (docs/debugging.md)", file=sys.stderr, flush=True)
        print(terminal_safe(f"efistub: gdb: waiting on {server.address} before the image's first instruction "
                            f"({where}); connect with:", one_line=True), file=sys.stderr)
        print(f"  {terminal_safe(command, one_line=True)}", file=sys.stderr, flush=True)

    return gdbstub.GdbServer(*gdbstub.parse_address(args.gdb), on_ready=ready)


def _service_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def machine_options(args) -> dict:
    """Machine keyword arguments from the image options (plain data, for worker processes too)."""
    return RunOptions.from_args(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        if args.command == "engine":
            return _engine(args)
        if args.command == "diff":
            return _diff(args)
        if args.command == "resume":
            return _resume(args)
        from . import engine

        try:
            choice = engine.activate(args.engine)
        except ValueError as e:
            raise InputError("--engine", str(e)) from None
        _say_if_stock_fallback(choice, args.engine)
        if args.engine:
            os.environ["EFISTUB_ENGINE"] = args.engine  # worker processes of minimize and scan follow it
        _say_if_python_fallback(args.dispatch)
        return {"run": _run, "boot": _boot, "check": _check, "policy": _policy, "minimize": _minimize,
                "scan": _scan, "sweep": _sweep}[
            args.command](args)
    except InputError as e:
        print(f"efistub: error: {terminal_safe(str(e), one_line=True)}", file=sys.stderr)  # a path from a folder
        return EXIT_INPUT


def _machine(cls, args, **extra):
    try:
        return cls(args.image, **machine_options(args), **extra)
    except ValueError as e:  # for example an unknown name in --only
        raise InputError(args.image, str(e)) from None


def _write_json(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text + "\n")
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None


def _check(args) -> int:
    from . import policy as policies
    from .machine import Machine

    try:
        policy = policies.load(args.policy)
    except OSError as e:
        raise InputError(args.policy, e.strerror or str(e)) from None
    except ValueError as e:
        raise InputError(args.policy, str(e)) from None
    report = _machine(Machine, args).run()
    if args.json:
        _write_json(args.json, report.to_json())
    if _store_not_saved(report):
        return EXIT_INPUT
    problems = policies.violations(policy, report.to_dict())
    for line in problems:
        print(terminal_safe(line, one_line=True))  # names of the guest's variables and protocols
    if not problems:
        print(f"ok: {report.outcome}, {len(report.calls)} calls inside the policy")
    return EXIT_GUEST if problems else EXIT_OK


def _policy(args) -> int:
    from . import policy as policies
    from .machine import Machine

    report = _machine(Machine, args).run()
    comment = (f"efistub policy for {os.path.basename(args.image)}, written by 'efistub policy'.\n"
               f"It allows what one run used{' with --cmdline ' + repr(args.cmdline) if args.cmdline else ''}.")
    sys.stdout.write(policies.to_toml(policies.from_report(report.to_dict()), comment))
    return EXIT_OK


def _load_report(path: str) -> dict:
    try:
        with open(path) as f:
            report = json.load(f)
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    except ValueError as e:
        raise InputError(path, f"not JSON: {e}") from None
    from .report import READABLE_SCHEMAS

    if not isinstance(report, dict) or report.get("schema") not in READABLE_SCHEMAS or "usage" not in report:
        raise InputError(path, f"not an efistub report (schema {' or '.join(map(str, READABLE_SCHEMAS))})")
    return report


def _diff(args) -> int:
    from .diff import as_text, diff

    changes = diff(_load_report(args.old), _load_report(args.new))
    sys.stdout.write(json.dumps(changes, indent=2) + "\n" if args.json else as_text(changes))
    return EXIT_GUEST if changes else EXIT_OK


def _minimize(args) -> int:
    from .loader import read_image
    from .minimize import Minimizer

    from . import arch

    read_image(args.image, arch.supported())  # bad input fails here, once, not in every worker
    say = lambda message: print(f"efistub minimize: {message}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        result = Minimizer(args.image, machine_options(args), args.jobs, log=say, fresh=args.fresh).minimize()
    except ValueError as e:  # a run that cannot be forked (--esp-writable, ...)
        raise InputError("efistub minimize", f"{e} (or use --fresh)") from None
    if "input_error" in result:
        raise InputError(args.image, result["input_error"])
    if args.json:
        _write_json(args.json, json.dumps(result, indent=2))
    outcome = result["outcome"] + (f" ({result['exit_status']})" if result.get("exit_status") else "")
    print(f"outcome {outcome} needs {len(result['services'])} of the {len(result['called'])} "
          f"boot and runtime services it calls:")
    for name in result["services"]:
        print(f"  {name}")
    print("optional (how the image behaves without each):")
    for name, behaviour in result["optional"].items():
        console = behaviour["console"].strip().splitlines()
        status = f" ({behaviour['exit_status']})" if behaviour.get("exit_status") else ""
        print(f"  {name}: {behaviour['outcome']}{status}" + (f"; console: {console[-1]!r}" if console else ""))
    how = "forked from snapshots, some on idle cores ahead of need" if result["snapshots"] else "from the start"
    print(f"runs: {result['runs']} (the full run and the candidate sets); emulated: {result['executions']} ({how})")
    return EXIT_OK


def _sweep(args) -> int:
    from .machine import Machine
    from .sweep import format_table

    machine = _machine(Machine, args)

    def say(state):
        if state["seconds"] < SWEEP_QUIET_S:
            return
        where = "" if state["baseline_done"] else ", the baseline still running"
        print(f"efistub sweep: {state['done']}/{state['forked']} forked runs done{where} ({state['seconds']:.0f} s)",
              file=sys.stderr, flush=True)

    try:
        result = machine.sweep(statuses=args.status, services=args.services, jobs=args.jobs, progress=say)
    except ValueError as e:  # an unknown status or service, a run that cannot be forked
        raise InputError("efistub sweep", str(e)) from None
    text = json.dumps(result.to_dict(), indent=2)
    if args.json == "-":
        print(text)
    else:
        if args.json:
            _write_json(args.json, text)
        sys.stdout.write(terminal_safe(format_table(result)))
        base = result.baseline
        ending = base.outcome + (f" {base.exit_status}" if base.exit_status else "")
        handled = len(result.rows) - len(result.misbehaved)
        print(f"{len(result.rows)} forked runs ({result.statuses} statuses): {handled} "
              f"handled, {len(result.misbehaved)} misbehaved; baseline: {ending}, {len(base.calls)} calls; "
              f"{result.seconds:.1f} s")
    return EXIT_GUEST if result.misbehaved else EXIT_OK


def _scan(args) -> int:
    from . import executors
    from .scan import CRASHED, markdown, scan

    if args.scheduler and args.executor is None:
        args.executor = "dask"
    if args.scheduler and args.jobs is not None:
        raise InputError("--jobs", "with --scheduler, the cluster's own workers run the tasks")
    if args.matrix:
        from . import matrix

        matrix.require()  # before the scan, not after it
    name = args.executor or "process"
    if name == "dask":
        executors.require_dask()
    progress = _ScanProgress(sys.stderr, name)
    try:
        with executors.make(name, args.jobs, args.scheduler) as executor:
            rows = scan(args.folder, machine_options(args), executor, args.json, args.resume, args.engine, progress)
    except KeyboardInterrupt:
        progress.end()
        kept = f"; the finished images are in {args.json}: go on with --resume" if args.json else ""
        print(f"efistub scan: interrupted{kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.end()
    print(f"{'image':<48}{'arch':<9}{'outcome':<10}{'calls':>6}  {'unimplemented hit':<32}{'time':>7}  reason")
    for r in rows:
        name = terminal_safe(os.path.relpath(r["image"], args.folder), one_line=True)  # whatever the folder holds
        calls = "-" if r["calls"] is None else str(r["calls"])
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}s"
        print(f"{name:<48}{r['arch'] or '-':<9}{r['outcome'] or '-':<10}{calls:>6}  "
              f"{', '.join(r['unimplemented']) or '-':<32}{seconds:>7}  {terminal_safe(r['reason'], one_line=True)}")
    crashed = sum(r["outcome"] == CRASHED for r in rows)
    if crashed:
        print(f"efistub scan: {crashed} of {len(rows)} images crashed their worker twice", file=sys.stderr)
    if args.markdown:
        _write_json(args.markdown, markdown(rows, args.folder).rstrip("\n"))
    if args.matrix:
        written = matrix.write(rows, args.folder, args.matrix)
        print(f"efistub scan: usage matrix in {written[0]} and {written[1]}", file=sys.stderr)
    return EXIT_OK


class _ScanProgress:
    """The scan's progress bar on stderr: redrawn in place on a terminal, else a line at every step."""

    def __init__(self, stream, executor: str):
        self.stream, self.executor = stream, executor
        self.tty = stream.isatty()
        self.started = time.perf_counter()
        self.crashed = self.step = 0
        self.drawn = False

    def __call__(self, done: int, total: int, row: dict | None) -> None:
        from .scan import CRASHED

        if row is not None and row["outcome"] == CRASHED:
            self.crashed += 1
        step = done * SCAN_PROGRESS_STEPS // max(total, 1)
        if not self.tty and row is not None and step == self.step and done < total:
            return
        self.step = step
        filled = done * SCAN_PROGRESS_WIDTH // max(total, 1)
        crashed = f", {self.crashed} crashed" if self.crashed else ""
        text = (f"efistub scan: [{'#' * filled}{'.' * (SCAN_PROGRESS_WIDTH - filled)}] {done}/{total} images "
                f"({self.executor}{crashed}, {time.perf_counter() - self.started:.0f} s)")
        self.stream.write(f"\r{text}\x1b[K" if self.tty else text + "\n")
        self.stream.flush()
        self.drawn = True

    def end(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False


def _say_if_stock_fallback(choice, requested: str | None) -> None:
    """Say once, on stderr, when the stock engine runs because the fast one is not there, why, and what builds it."""
    if requested is None and not os.environ.get("EFISTUB_ENGINE") and choice.engine == "stock":
        print(f"efistub: note: running on the stock unicorn engine, several times slower than the fast one: "
              f"{choice.reason} (docs/engine.md)", file=sys.stderr)


def _say_if_python_fallback(requested: str | None) -> None:
    """Say once, on stderr, when native dispatch is not available and Python dispatch runs instead."""
    import os

    from . import native

    if requested is None and not os.environ.get("EFISTUB_DISPATCH") and not native.available():
        print(f"efistub: note: {native.UNAVAILABLE}; running with Python dispatch", file=sys.stderr)


def _engine(args) -> int:
    from . import engine
    from .engine import build as builder

    if args.engine_command == "build":
        try:
            folder = builder.build(args.jobs, log=lambda message: print(f"efistub engine: {message}", flush=True))
        except builder.EngineError as e:
            print(f"efistub: error: engine build: {e}", file=sys.stderr)
            return EXIT_GUEST
        report = json.loads((folder / engine.MANIFEST).read_text())["selftest"]
        print(f"efistub engine: built {folder / engine.LIBRARY}")
        print(f"efistub engine: self-test passed; guest store {report['store_ns']} ns, load {report['load_ns']} ns")
        return EXIT_OK
    if args.engine_command == "remove":
        folder = builder.remove()
        print(f"efistub engine: removed {folder}" if folder else "efistub engine: no fast engine to remove")
        return EXIT_OK
    try:
        choice = engine.choose()
    except ValueError as e:
        print(f"efistub engine: {e}")
        return EXIT_GUEST
    print(f"engine: {choice.engine}\nreason: {choice.reason}")
    return EXIT_OK


def _arch_names() -> list[str]:
    from . import arch

    return list(arch.supported().values())


def _boot(args) -> int:
    """The boot manager without boot options: find the removable-media boot file on the ESP
    (--esp DIR, or the FAT ESP of --disk FILE), then run it."""
    from . import arch
    from .volume import HostVolume, VolumeError

    if not args.esp and not args.disk:
        raise InputError("efistub boot", "needs --esp DIR or --disk FILE (the EFI system partition to boot from)")
    if args.esp:
        volume = HostVolume(args.esp)
        where = args.esp
    else:
        volume, where = _disk_esp(args.disk), args.disk
    wanted = [args.arch] if args.arch else ["x86_64", "aarch64", "riscv64", "ia32"]
    for name in wanted:
        cls = next(arch.for_machine(m) for m, n in arch.supported().items() if n == name)
        try:
            path = volume.resolve("\\", cls.REMOVABLE_MEDIA_PATH)
            if volume.stat(path).is_dir:
                continue
        except VolumeError:
            continue
        if args.esp:
            args.image = os.path.join(volume.root, *path.strip("\\").split("\\"))
        else:
            args.image = volume.read(path, 0, volume.stat(path).size)
        args.boot_path = path
        return _run(args)
    files = ", ".join(arch.for_machine(m).REMOVABLE_MEDIA_PATH for m, n in arch.supported().items() if n in wanted)
    raise InputError(where, f"no boot file: none of {files}")


def _disk_esp(path: str):
    """The first FAT ESP partition of a disk image, as a volume."""
    from .disk import FatVolume, open_disk
    from .volume import VolumeError

    disk = open_disk(path)
    for partition in disk.table.partitions:
        if partition.is_esp:
            try:
                return FatVolume(disk, partition)
            except VolumeError as e:
                raise InputError(path, f"partition {partition.number}: {e.message}") from None
    raise InputError(path, "has no EFI system partition to boot from")


def _run(args) -> int:
    from .machine import Machine

    out = sys.stdout
    json_to_stdout = args.json == "-"
    console = None if json_to_stdout else (lambda text: (out.write(terminal_safe(text)), out.flush()))
    debugger = _debugger(args)
    try:
        machine = _machine(Machine, args, only=args.only, console=console, trace=_print_call if args.trace else None,
                           boot_path=getattr(args, "boot_path", None), debugger=debugger)
        report = machine.run()
    except KeyboardInterrupt:
        if debugger is None:
            raise
        print("efistub: interrupted: the run under --gdb ended without a report", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if debugger is not None:
            debugger.close()
    saved = _save_handoff(machine, report, args) if getattr(args, "save_handoff", None) else None
    if args.json:
        text = report.to_json()
        if json_to_stdout:
            print(text)
        else:
            try:
                with open(args.json, "w") as f:
                    f.write(text + "\n")
            except OSError as e:
                raise InputError(args.json, e.strerror or str(e)) from None
    if not json_to_stdout:
        if report.console and not report.console.endswith("\n"):
            out.write("\n")
        out.write(summary(report))
    if _store_not_saved(report):
        return EXIT_INPUT
    if saved is not None:
        print(f"efistub: {saved}", file=sys.stderr)
        if report.outcome != "handoff":
            return EXIT_GUEST  # a hand-off was asked for, and there is none
    if report.outcome == "handoff" or report.outcome == "exit" and report.exit_status == "EFI_SUCCESS":
        return EXIT_OK
    return EXIT_GUEST


def _save_handoff(machine, report, args) -> str:
    """Save the hand-off into --save-handoff DIR; what to tell the user."""
    from .handoff_state import save

    if report.outcome != "handoff":
        return f"--save-handoff: nothing saved: the run ended with outcome {report.outcome}, not a hand-off"
    manifest = save(machine.platform, report, args.save_handoff)
    size = sum(s["size"] for s in manifest["segments"])
    return (f"hand-off saved in {args.save_handoff}: {len(manifest['segments'])} segments, {size / 2**20:.1f} MiB; "
            f"boot it with: efistub resume {args.save_handoff}")


def _resume(args) -> int:
    import shlex
    import tempfile

    from . import resume
    from .handoff_state import load

    if args.timeout <= 0:
        raise InputError("--timeout", "must be positive")
    if args.print_command:
        state = load(args.folder)
        workdir = tempfile.mkdtemp(prefix="efistub-resume-")
        print(shlex.join(resume.command(state, workdir)))
        return EXIT_OK
    console = (lambda text: (sys.stdout.write(terminal_safe(text)), sys.stdout.flush()))
    outcome = resume.resume(args.folder, args.until, args.timeout, console)
    print(f"\nefistub resume: {outcome.reason} ({outcome.seconds:.2f} s)", file=sys.stderr)
    if args.until is not None:
        return EXIT_OK if outcome.found else EXIT_GUEST
    return EXIT_OK if outcome.reason == "QEMU exited" else EXIT_GUEST


def _store_not_saved(report) -> bool:
    """Say so, in one line, when the --vars store could not be saved."""
    store = report.variable_store
    if store and store["error"]:
        print(f"efistub: error: {store['path']}: {store['error']}", file=sys.stderr)
        return True
    if report.tpm and report.tpm["save_error"]:  # --save-tpm FILE could not be written
        print(f"efistub: error: {report.tpm['save_error']}", file=sys.stderr)
        return True
    return False


def _show(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0xFFFF:
        return hex(value)
    return repr(value) if isinstance(value, str) else str(value)


def _print_call(call) -> None:
    args = ", ".join(f"{k}={_show(v)}" for k, v in call.args.items())
    result = call.status if call.status is not None else ("" if call.value is None else str(call.value))
    flags = "".join(f" [{flag}]" for flag in ("unimplemented", "violation") if getattr(call, flag))
    note = f"  ({call.note})" if call.note else ""
    line = f"[{call.seq:5}] {call.service}({args}) -> {result}{flags}{note}"
    print(terminal_safe(line, one_line=True), file=sys.stderr, flush=True)  # the guest's strings and notes


# Control characters a guest may print that the terminal may act on (escape sequences, bells,
# form feeds...): shown escaped. Newlines, carriage returns, tabs and backspaces pass.
UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x08), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F,
                                        *range(0x80, 0xA0))}
# In one line of the summary, the line breaks, tabs and backspaces too: no text of the guest's
# starts a line of its own there (a forged "--- efistub: handoff" line, say).
UNSAFE_IN_LINE = {**UNSAFE, **{c: f"\\x{c:02x}" for c in (0x08, 0x09, 0x0A, 0x0D)}}


def terminal_safe(text: str, one_line: bool = False) -> str:
    """Guest text as it may reach the user's terminal: control characters escaped (the report
    keeps the raw text); ``one_line``: line breaks too."""
    return text.translate(UNSAFE_IN_LINE if one_line else UNSAFE)


def summary(report) -> str:
    lines = [f"--- efistub: {report.outcome} ({report.arch}) ---"]
    add = lambda key, value: lines.append(f"{key:<14}{terminal_safe(str(value), one_line=True)}")  # noqa: E731
    if report.outcome == "handoff":
        h = report.handoff
        add("entry", hex(h["entry"]))
        bp = h.get("boot_params")
        if bp:
            add("cmdline", json.dumps(bp["cmdline"]))
            if bp["ramdisk_size"]:
                add("initrd", f"0x{bp['ramdisk_image']:x} ({bp['ramdisk_size']} bytes)")
            add("e820", f"{len(bp['e820'])} entries")
        if "fdt" in h:
            chosen = h["fdt"]["chosen"]
            add("cmdline", json.dumps(chosen.get("bootargs", "")))
            add("fdt", f"0x{h['fdt_address']:x} ({h['fdt']['size']} bytes), /chosen: {', '.join(chosen)}")
            media = [t["initrd"] for t in h["configuration_tables"] if "initrd" in t]
            if media:
                add("initrd", f"0x{media[0]['base']:x} ({media[0]['size']} bytes, LINUX_EFI_INITRD_MEDIA table)")
        for key in ("boot_params_error", "fdt_error", "memory_map_error"):
            if key in h:
                add("problem", h[key])
        if "memory_map" in h:
            add("memory map", f"{len(h['memory_map'])} descriptors")
        add("config tables", ", ".join(t["name"] for t in h["configuration_tables"]) or "none")
    elif report.outcome == "exit":
        add("exit status", report.exit_status)
        if report.exit_data:
            add("exit data", json.dumps(report.exit_data))
    elif report.outcome == "reset":
        add("reset", f"{report.reset['type']}, {report.reset['status']}"
                     + (f", {json.dumps(report.reset['data'])}" if report.reset["data"] else ""))
    elif report.outcome in ("fault", "timeout", "stalled"):
        f = report.fault or report.timeout or report.stalled
        add("reason", f["reason"])
        if report.outcome == "stalled" and f.get("caller") is not None:
            offset = f.get("caller_image_offset")
            add("called from", f"0x{f['caller']:x}" + (f" (image + 0x{offset:x})" if offset is not None else ""))
        elif f.get("pc") is not None:
            add("pc", f"0x{f['pc']:x}  {f.get('instruction', '')}")
        if "access" in f:
            add("access", f"{f['access']['kind']} at 0x{f['access']['address']:x}")
    elif report.outcome == "error":
        add("error", report.error.get("error", ""))
        trace = report.error.get("traceback", "").rstrip().split("\n")
        lines.extend(terminal_safe(line, one_line=True) for line in trace)
    if len(report.images) > 1 or report.files:
        for i, image in enumerate(report.images):
            parent = next((j for j, p in enumerate(report.images) if p["handle"] == image["parent"]), None)
            how = image["outcome"] or "loaded"
            if image.get("exit_status"):
                how += f" {image['exit_status']}"
            calls = sum(1 for c in report.calls if c.image == i)
            add("image" if i == 0 else "",
                f"{i}: {image['source']}" + (f" (from {parent})" if parent is not None else "")
                + f", {how}, {calls} calls")
        read = sum(f["bytes_read"] for f in report.files)
        add("files", f"{len(report.files)} opened, {read} bytes read" if report.files else "none")
    counts = report.services_called
    add("calls", f"{len(report.calls)}" + (": " + ", ".join(f"{n} {c}" for n, c in sorted(counts.items())) if counts else ""))
    usage = report.usage
    add("protocols", ", ".join(f"{g} ({', '.join(f'{a} {n}' for a, n in acts.items())})"
                               for g, acts in usage["protocols"].items()) or "none")
    add("tables", "installed: " + (", ".join(usage["configuration_tables"]["installed"]) or "none"))
    add("variables", ", ".join(f"{v['vendor']}/{v['name']} ({'/'.join(v['statuses'])})"
                               for v in usage["variables"]) or "none")
    add("unimplemented", ", ".join(report.unimplemented) or "none")
    if report.violations:
        add("violations", ", ".join(v["service"] for v in report.violations))
    store = report.variable_store
    if store:
        done = "saved" if store["saved"] else f"not saved: {store['error'] or store['not_saved']}"
        add("store", f"{store['path']} ({store['format']}): {store['loaded']} loaded, {store['changed']} changed, "
                     f"{done}")
    if report.secure_boot:
        from .secureboot import summary as secure_boot_summary

        add("secure boot", secure_boot_summary(report.secure_boot))
    tpm = report.tpm
    if tpm:
        changed = sorted({int(pcr) for bank in tpm["pcrs"].values() for pcr in bank})
        saved = f"; saved to {tpm['saved']['json']}" if tpm["saved"] else ""
        add("tpm", f"{tpm['tpm']} ({', '.join(tpm['banks'])}): {tpm['events']} events, PCRs "
                   f"{', '.join(map(str, changed)) or 'none'} changed{saved}")
    for note in report.notes:
        add("note", note)
    add("engine", f"{report.engine}, {report.dispatch} dispatch")
    add("elapsed", f"{report.timing.get('total_s', 0):.2f} s")
    return "\n".join(lines) + "\n"


FAST_EXIT_COMMANDS = ("run", "boot", "resume")  # whose process ends at once when they are done (entry)


def entry() -> None:
    """The program ``efistub`` (the console script, ``python -m efistub``): ``main()`` on sys.argv,
    then the end of the process.

    After ``run``, ``boot`` and ``resume`` the process ends as the interpreter ends it (other threads waited
    for, the exit handlers run: a swtpm stopped and its folder removed, the trampoline released;
    the output flushed), but then at once (os._exit), without tearing the interpreter down object
    by object: every file of the run is closed by then, and that teardown (modules, the firmware's
    objects, the engine's guest RAM and translation buffers freed piece by piece) costs a run tens
    of milliseconds and changes nothing it leaves (docs/performance.md).
    """
    argv = sys.argv[1:]
    code = main(argv)
    if not (argv[:1] and argv[0] in FAST_EXIT_COMMANDS):
        sys.exit(code)
    import atexit
    import threading

    for thread in threading.enumerate():  # as the interpreter does at exit: wait for non-daemon threads
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # the interpreter's exit handlers, which run before its teardown
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the interpreter's own exit reports it, as always
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()
