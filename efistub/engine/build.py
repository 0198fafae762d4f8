"""``efistub engine build``: the fast engine from the installed unicorn release's own source.

Steps: download the source distribution of the installed unicorn version with pip,
apply fast-store.patch, build libunicorn for x86, aarch64 and riscv64 with cmake,
self-test it in a separate process, and install it in the cache folder. Nothing of
unicorn's source is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from . import LIBRARY, MANIFEST, MARKER, binding_version, engine_dir

PATCH = Path(__file__).with_name("fast-store.patch")
ARCHES = "x86;aarch64;riscv"


class EngineError(Exception):
    """The engine could not be built; the message says why and what to do."""


def _need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise EngineError(f"{tool} is not installed: {install}")
    return path


def _run(command: list[str], cwd: Path, log, what: str, env: dict | None = None) -> None:
    log(f"{what}: {' '.join(command)}")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise EngineError(f"{what} failed (exit {result.returncode}):\n{tail}")


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
    result = subprocess.run([sys.executable, "-m", "efistub.engine.selftest"], env=env, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise EngineError(f"the self-test crashed:\n{result.stderr.strip()[-2000:]}")
    report = json.loads(result.stdout)
    if Path(report["library"]).resolve().parent != library_dir.resolve():
        raise EngineError(f"the self-test loaded {report['library']} instead of the new engine")
    return report


def build(jobs: int | None = None, log=lambda message: None) -> Path:
    """Build and install the fast engine; return its folder."""
    version = binding_version()
    if version is None:
        raise EngineError("the unicorn Python package is not installed")
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
            "patch_sha256": hashlib.sha256(PATCH.read_bytes()).hexdigest(),
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
