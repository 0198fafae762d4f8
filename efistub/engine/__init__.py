"""Which unicorn engine a run uses: the stock library of the unicorn wheel, or the fast one.

The fast engine is libunicorn built from the same unicorn release with our patch
(fast-store.patch, see docs/engine.md), by ``pip install`` (install.py) or by
``efistub engine build`` (build.py). The unicorn
binding loads libunicorn.so.2 from the folder named by LIBUNICORN_PATH when
``unicorn`` is first imported, so ``activate()`` must run before that import.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
import importlib.util
from pathlib import Path

LIBRARY = "libunicorn.so.2"
MANIFEST = "engine.json"
FAILED = "build-failed.txt"  # why the build at install failed, in the engine's folder until a build succeeds
PATCH = Path(__file__).with_name("fast-store.patch")


def patch_sha256() -> str:
    import hashlib

    return hashlib.sha256(PATCH.read_bytes()).hexdigest()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "efistub" / "engine"


def binding_version() -> str | None:
    """The installed unicorn version, found without importing unicorn (that would load its library)."""
    spec = importlib.util.find_spec("unicorn")
    if spec is None or not spec.origin:
        return None
    site = Path(spec.origin).parent.parent
    for info in site.glob("unicorn-*.dist-info"):
        return info.name[len("unicorn-"):-len(".dist-info")]
    from importlib import metadata  # an unusual installation layout: ask the slow way

    try:
        return metadata.version("unicorn")
    except metadata.PackageNotFoundError:
        return None


def engine_dir(version: str | None = None) -> Path:
    return cache_root() / f"unicorn-{version or binding_version()}"


@dataclass
class Choice:
    engine: str  # "fast", "stock" or "custom" (LIBUNICORN_PATH set by the user)
    reason: str
    path: Path | None = None


def built_engine() -> tuple[Path | None, str]:
    """The fast engine for the installed binding, and why it can or cannot be used."""
    version = binding_version()
    folder = engine_dir(version)
    manifest = folder / MANIFEST
    if not (folder / LIBRARY).is_file() or not manifest.is_file():
        try:
            reason = (folder / FAILED).read_text().strip().splitlines()
            failed = f"; its build at install failed: {reason[0] if reason else 'no reason kept'}"
            if len(reason) > 1:
                failed += f" (the build's last lines: {folder / FAILED})"
        except OSError:
            failed = ""
        return None, f"no fast engine is built for unicorn {version}{failed} (run: efistub engine build)"
    try:
        info = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        return None, f"the fast engine's {manifest} is unreadable ({e})"
    if info.get("unicorn_version") != version:
        return None, f"the fast engine was built for unicorn {info.get('unicorn_version')}, the binding is {version}"
    if not info.get("selftest", {}).get("passed"):
        return None, "the fast engine did not pass its self-test"
    why = f"fast engine for unicorn {version} at {folder}"
    if info.get("patch_sha256") != patch_sha256():
        why += " (built from another fast-store.patch; efistub engine build rebuilds it)"
    return folder, why


# LIBUNICORN_PATH as efistub found it. activate() records its own setting in MARKER, so a
# child process can tell a path efistub chose (inherited) from one the user chose.
MARKER = "EFISTUB_LIBUNICORN_PATH"
_USER_PATH = os.environ.get("LIBUNICORN_PATH")
if _USER_PATH and _USER_PATH == os.environ.get(MARKER):
    _USER_PATH = None


def choose(requested: str | None = None) -> Choice:
    """The engine a run would use: ``requested`` ("fast"/"stock"), else EFISTUB_ENGINE, else fast when built."""
    requested = requested or os.environ.get("EFISTUB_ENGINE") or None
    if requested not in (None, "fast", "stock"):
        raise ValueError(f"unknown engine {requested!r} (fast or stock)")
    if requested is None and _USER_PATH and Path(_USER_PATH).resolve() != engine_dir().resolve():
        return Choice("custom", f"LIBUNICORN_PATH={_USER_PATH} was set before efistub started", Path(_USER_PATH))
    if requested == "stock":
        return Choice("stock", "the stock engine was requested")
    folder, why = built_engine()
    if folder is not None:
        return Choice("fast", why, folder)
    if requested == "fast":
        raise ValueError(why)
    return Choice("stock", why)


def activate(requested: str | None = None) -> Choice:
    """Point the unicorn binding at the chosen engine; effective if unicorn is not imported yet."""
    choice = choose(requested)
    if "unicorn" in sys.modules:
        return loaded()
    if choice.engine == "fast":
        os.environ["LIBUNICORN_PATH"] = os.environ[MARKER] = str(choice.path)
    elif choice.engine == "stock":
        os.environ.pop("LIBUNICORN_PATH", None)
        os.environ.pop(MARKER, None)
    return choice


def loaded() -> Choice:
    """The engine the unicorn binding actually loaded (imports unicorn)."""
    from unicorn.unicorn_py3 import unicorn as binding

    path = Path(binding.uclib._name).resolve()
    fast = engine_dir().resolve()
    if path.parent == fast:
        return Choice("fast", f"loaded from {path}", path.parent)
    import unicorn

    if path.parent == (Path(unicorn.__file__).parent / "lib").resolve():
        return Choice("stock", f"loaded from {path}", path.parent)
    return Choice("custom", f"loaded from {path}", path.parent)
