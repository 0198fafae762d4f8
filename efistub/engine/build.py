"""``efistub engine build``: the fast engine from the installed unicorn release's own source.

Steps: download the source distribution of the installed unicorn version with pip,
apply fast-store.patch, build libunicorn for x86, aarch64 and riscv64 with cmake,
self-test it in a separate process, and install it in the cache folder. Nothing of
unicorn's source is kept. ``pip install`` runs the same build (install.py), and reuses
an engine already built for the same unicorn version and patch.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from . import LIBRARY, MANIFEST, MARKER, PATCH, binding_version, cache_root, engine_dir, patch_sha256

ARCHES = "x86;aarch64;riscv"
# A compile step's progress as ninja ("[12/345] Building C object ...") or make ("[ 40%] Building ...") prints it.
PROGRESS = re.compile(r"^\[\s*(?:(\d+)/(\d+)|(\d+)%)\]")


class EngineError(Exception):
    """The engine could not be built; the message says why and what to do."""


def _need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise EngineError(f"{tool} is not installed: {install}")
    return path


def _run(command: list[str], cwd: Path, log, what: str, env: dict | None = None) -> None:
    """Run a build step; log its progress in steps of 10 % when it prints ninja's or make's counters."""
    log(f"{what}: {' '.join(command)}")
    tail: collections.deque[str] = collections.deque(maxlen=15)
    shown = 0
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as process:
        for line in process.stdout:
            tail.append(line.rstrip())
            counter = PROGRESS.match(line)
            if counter:
                done, total, percent = counter.groups()
                percent = int(percent) if percent is not None else 100 * int(done) // max(int(total), 1)
                if percent // 10 > shown // 10:
                    shown = percent
                    log(f"{what}: {percent // 10 * 10}%")
    if process.returncode != 0:
        raise EngineError(f"{what} failed (exit {process.returncode}):\n" + "\n".join(tail))


def _compiler() -> str:
    for name in filter(None, (os.environ.get("CC"), "cc", "gcc", "clang")):
        if shutil.which(name):
            return name
    raise EngineError("no C compiler found: install one with `apt-get install gcc` (or set CC)")


def _apply_patch(source: Path, log) -> None:
    if shutil.which("patch"):
        command = ["patch", "-p1", "--forward", "-i", str(PATCH)]
    elif shutil.which("git"):  # outside a repository, git apply works like patch
        command = ["git", "apply", "-p1", str(PATCH)]
    else:
        raise EngineError("neither git nor patch is installed: `apt-get install patch`")
    _run(command, source, log, "patch")


def self_test(library_dir: Path) -> dict:
    """Run the self-test against the library in ``library_dir`` in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in ("EFISTUB_ENGINE", MARKER)}
    env["LIBUNICORN_PATH"] = str(library_dir)
    # efistub's own folder first: at install (install.py), efistub is not installed yet; the rest of
    # PYTHONPATH stays, for pip's build environment holds the unicorn binding there.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[2]),
                                                      os.environ.get("PYTHONPATH"))))
    result = subprocess.run([sys.executable, "-m", "efistub.engine.selftest"], env=env, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise EngineError(f"the self-test crashed:\n{result.stderr.strip()[-2000:]}")
    report = json.loads(result.stdout)
    if Path(report["library"]).resolve().parent != library_dir.resolve():
        raise EngineError(f"the self-test loaded {report['library']} instead of the new engine")
    return report


def cached(version: str | None = None) -> Path | None:
    """The fast engine already built for this unicorn version from this patch, self-tested; else None."""
    folder = engine_dir(version or binding_version())
    try:
        info = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if ((folder / LIBRARY).is_file() and info.get("unicorn_version") == (version or binding_version())
            and info.get("patch_sha256") == patch_sha256() and info.get("selftest", {}).get("passed")):
        return folder
    return None


@contextlib.contextmanager
def _locked():
    """One build at a time per cache folder (two installs, or an install and efistub engine build)."""
    import fcntl

    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(jobs: int | None = None, log=lambda message: None, reuse: bool = False) -> Path:
    """Build and install the fast engine; return its folder.

    With ``reuse``, an engine already built for the same unicorn version and patch is kept (``cached``).
    """
    version = binding_version()
    if version is None:
        raise EngineError("the unicorn Python package is not installed")
    with _locked():
        if reuse and (folder := cached(version)) is not None:
            log(f"reusing the fast engine at {folder}, built for unicorn {version} from this patch")
            return folder
        return _build(version, jobs, log)


def _build(version: str, jobs: int | None, log) -> Path:
    """Download, patch, compile, self-test and install (the cache folder is locked)."""
    cmake = _need("cmake", "`pip install cmake` or `apt-get install cmake`")
    compiler = _compiler()
    ninja = shutil.which("ninja")
    jobs = jobs or os.cpu_count() or 1
    target = engine_dir(version)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="efistub-engine-") as tmp:
        work = Path(tmp)
        _run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
              "-d", str(work), f"unicorn=={version}"], work, log, "download")
        archive = next(work.glob("unicorn-*.tar.gz"), None)
        if archive is None:
            raise EngineError(f"pip did not download the unicorn {version} source distribution")
        with tarfile.open(archive) as tar:
            tar.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        source = work / f"unicorn-{version}"
        _apply_patch(source, log)
        build_dir = work / "build"
        configure = [cmake, "-S", str(source / "src"), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                     f"-DUNICORN_ARCH={ARCHES}", "-DUNICORN_BUILD_TESTS=OFF", "-DUNICORN_INSTALL=OFF",
                     "-DUNICORN_LEGACY_STATIC_ARCHIVE=OFF", f"-DCMAKE_C_COMPILER={compiler}"]
        if ninja:
            configure += ["-G", "Ninja"]
        _run(configure, work, log, "configure")
        _run([cmake, "--build", str(build_dir), "--target", "unicorn", "-j", str(jobs)], work, log, "compile")
        built = build_dir / LIBRARY
        if not built.is_file():
            raise EngineError(f"the build produced no {LIBRARY}")
        staging = target.with_name(target.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(built, staging / LIBRARY)
        log("self-test")
        report = self_test(staging)
        if not report["passed"]:
            shutil.rmtree(staging, ignore_errors=True)
            failed = [name for name, ok in report["cases"].items() if not ok]
            raise EngineError(f"the new engine failed its self-test: {failed or 'stores are not faster than loads'}")
        manifest = {
            "unicorn_version": version,
            "patch_sha256": patch_sha256(),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - started, 1),
            "selftest": report,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def remove() -> Path | None:
    """Delete the fast engine of the installed binding; return the folder if there was one."""
    target = engine_dir()
    if target.exists():
        shutil.rmtree(target)
        return target
    return None
