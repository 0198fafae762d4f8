"""Builds the optional native trampoline (efistub/native/, cffi) and the fast engine; the rest is in pyproject.toml.

When the trampoline cannot be built (no C compiler, no Python headers), the
installation still succeeds and efistub runs with Python dispatch.

After the trampoline, build_ext builds the fast unicorn engine into the user's cache
folder, or reuses the one built there for the same unicorn version and patch
(efistub/engine/install.py, docs/engine.md). EFISTUB_ENGINE_BUILD=0 skips it; a build
that fails leaves a one-line notice and the stock engine.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any failure leaves the pure-Python package usable
            self._skip(e)
        fast_engine()

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            self._skip(e)

    def _skip(self, error):
        print(f"efistub: the native trampoline was not built ({error}); efistub will use Python dispatch",
              file=sys.stderr)


def fast_engine():
    """Build or reuse the fast engine (efistub/engine/install.py); never fails the install."""
    if getattr(fast_engine, "done", False):  # once per install, however often build_ext runs
        return
    fast_engine.done = True

    def log(message):
        print(f"efistub engine: {message}", file=sys.stderr, flush=True)

    try:
        # efistub.engine on its own: importing efistub would need its dependencies, absent from pip's build
        # environment.
        folder = HERE / "efistub" / "engine"
        spec = importlib.util.spec_from_file_location("_efistub_engine", folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = package
        spec.loader.exec_module(package)
        notice = importlib.import_module("_efistub_engine.install").at_install(log=log)
    except Exception as e:  # noqa: BLE001 - the install goes on with the stock engine
        notice = f"efistub: the fast engine was not built ({e}); efistub runs on the stock engine"
    print(notice, file=sys.stderr, flush=True)


def cffi_modules():
    try:
        import cffi  # noqa: F401
        import unicorn  # noqa: F401
    except ImportError as e:
        print(f"efistub: the native trampoline is not built ({e})", file=sys.stderr)
        return []
    return ["efistub/native/build.py:ffibuilder"]


setup(cffi_modules=cffi_modules(), cmdclass={"build_ext": OptionalBuildExt})
