"""The fast engine at install: ``pip install`` (setup.py's build_ext) builds it, or reuses it, or says why not.

setup.py loads this package from the source tree on its own (as ``_efistub_engine``), for
efistub is not installed yet and its other dependencies are not in pip's build
environment. The build is build.py's; this module only decides:

- EFISTUB_ENGINE_BUILD=0 skips it (for packagers, and installs that need no speed);
- an engine already built for the same unicorn version and patch is reused, so a
  reinstall is quick;
- a build that fails never fails the install: its reason is kept in the engine's
  folder (FAILED), where ``efistub run`` and ``efistub engine status`` read it, and the
  stock engine runs.
"""

from __future__ import annotations

import os

from . import FAILED, binding_version, engine_dir
from . import build as builder

SKIP = "EFISTUB_ENGINE_BUILD"


def at_install(build=None, log=lambda message: None) -> str:
    """Build or reuse the fast engine; return the one-line notice for the install's output."""
    build = build or builder.build
    if os.environ.get(SKIP, "").strip() == "0":
        return (f"efistub: the fast engine is not built ({SKIP}=0); efistub runs on the stock engine until "
                "`efistub engine build` builds it")
    folder = builder.cached()
    if folder is not None:
        return f"efistub: reusing the fast engine at {folder}"
    try:
        folder = build(log=log, reuse=True)
    except Exception as e:  # noqa: BLE001 - no failure of the engine's build may fail the install
        message = str(e).strip() or type(e).__name__
        reason = message.splitlines()[0]
        _remember_failure(message)
        return (f"efistub: the fast engine was not built ({reason}); efistub runs on the stock engine until "
                "`efistub engine build` builds it")
    return f"efistub: built the fast engine at {folder}"


def _remember_failure(message: str) -> None:
    """Keep the whole message (its first line is the reason, then the failed step's last lines)."""
    version = binding_version()
    if version is None:  # no unicorn, no engine folder to keep it in
        return
    try:
        folder = engine_dir(version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FAILED).write_text(message + "\n")
    except OSError:  # a cache folder that cannot be written: the notice of the install is all there is
        pass
