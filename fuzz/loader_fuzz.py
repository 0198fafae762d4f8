"""Coverage-guided fuzzing of efistub's PE loader with atheris (libFuzzer for Python).

    pip install atheris
    python3 fuzz/loader_fuzz.py CORPUS_DIR [--run] [--work DIR] [libFuzzer options, e.g. -max_total_time=300]

The seeds are the EFI images below CORPUS_DIR (../shared/corpus, tests/guests). An input is
one byte that picks a seed and then the first bytes of an image (at most --head, 4 KiB: the
headers and the section table); the rest of the image is the seed's own, so that the
mutations reach the section data and relocation blocks of real images without libFuzzer
copying 37 MB kernels. CORPUS_DIR is only read: libFuzzer's corpus, and the crash files,
go to --work (default fuzz/work, which git ignores).

Each input is parsed (efistub.loader.parse_image), placed at its ImageBase and away from
it, and asked for its UKI sections, .sbat and certificate table; with --run it is also
run by Machine (64 MiB of RAM, --timeout 0.2). Anything but an image, a report whose
outcome is not "error", or a one-line InputError is a crash: libFuzzer stops and writes
the input. Memory is bounded by libFuzzer's -rss_limit_mb (1024 unless given).

Put each crash into tests/test_fuzz_loader.py as a small image built in the test, then fix it.
atheris is not a dependency of efistub: this script says so, with exit 2, when it is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAD = 4096  # bytes of an image an input replaces
RUN_TIMEOUT = 0.2
RUN_MEMORY = 64 << 20
MOVED = 0x7F000000  # a load address away from the seeds' ImageBases


def seeds_below(folder: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every PE image (MZ) below ``folder``, in name order."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            if f.read(2) != b"MZ":
                continue
        out.append((str(path.relative_to(folder)), path.read_bytes()))
    return out


def image_of(data: bytes, seeds: list[tuple[str, bytes]]) -> bytes:
    """The image an input stands for: its bytes after the first over the head of the seed it picks."""
    seed = seeds[data[0] % len(seeds)][1]
    head = data[1:]
    return head + seed[len(head):]


def check(image: bytes, run: bool) -> None:
    """Raise anything but an InputError that efistub would turn into a one-line error."""
    from efistub import arch, cli
    from efistub.errors import InputError
    from efistub.loader import parse_image
    from efistub.machine import Machine

    try:
        parsed = parse_image("fuzz.efi", image, arch.supported())
        parsed.pieces(parsed.image_base)
        parsed.pieces(MOVED)
        parsed.uki_sections, parsed.sbat, parsed.certificate_table
    except InputError as e:
        if "\n" in str(e):
            raise AssertionError(f"an InputError of more than one line: {e!r}") from None
        return
    if not run:
        return
    try:
        report = Machine(image, timeout=RUN_TIMEOUT, memory=RUN_MEMORY).run()
    except InputError as e:
        if "\n" in str(e):
            raise AssertionError(f"an InputError of more than one line: {e!r}") from None
        return
    if report.outcome == "error":
        raise AssertionError(f"the run ended in an error: {report.error.get('error')}\n{report.error.get('traceback')}")
    cli.summary(report)
    report.to_json()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("corpus", metavar="CORPUS_DIR", help="a folder of EFI images, the seeds (only read)")
    parser.add_argument("--run", action="store_true", help="also run each image that loads (slower)")
    parser.add_argument("--work", default=str(HERE / "work"), help="libFuzzer's corpus and crash files")
    parser.add_argument("--head", type=int, default=HEAD, help="bytes of an image an input replaces")
    args, fuzzer_args = parser.parse_known_args(argv[1:])
    try:
        import atheris
    except ImportError:
        print("loader_fuzz: atheris is not installed (pip install atheris)", file=sys.stderr)
        return 2
    folder = Path(args.corpus)
    seeds = seeds_below(folder) if folder.is_dir() else []
    if not seeds:
        print(f"loader_fuzz: {folder}: no EFI images (files starting with MZ) below it", file=sys.stderr)
        return 2
    seeds = seeds[:256]  # the first input byte picks one
    work = Path(args.work)
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for index, (name, data) in enumerate(seeds):
        seed_file = corpus / f"seed-{index:03d}"
        if not seed_file.exists():
            seed_file.write_bytes(bytes([index]) + data[:args.head])
    with atheris.instrument_imports(include=["efistub", "pefile"]):
        import efistub.loader  # noqa: F401 - instrumented for coverage
        import efistub.machine  # noqa: F401

    def one_input(data: bytes) -> None:
        if data:
            check(image_of(data, seeds), args.run)

    options = list(fuzzer_args)
    if not any(o.startswith("-rss_limit_mb=") for o in options):
        options.append("-rss_limit_mb=1024")
    if not any(o.startswith("-max_len=") for o in options):
        options.append(f"-max_len={args.head + 1}")
    if not any(o.startswith("-artifact_prefix=") for o in options):
        options.append(f"-artifact_prefix={work}{os.sep}")
    print(f"loader_fuzz: {len(seeds)} seeds from {folder}; corpus and crashes in {work}", file=sys.stderr)
    atheris.Setup([argv[0], *options, str(corpus)], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # efistub from this checkout
    sys.exit(main(sys.argv))
