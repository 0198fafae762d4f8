"""Builds the optional native trampoline (efistub/native/, cffi). Everything else is in pyproject.toml.

When the trampoline cannot be built (no C compiler, no Python headers), the
installation still succeeds and efistub runs with Python dispatch.
"""

import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any failure leaves the pure-Python package usable
            self._skip(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            self._skip(e)

    def _skip(self, error):
        print(f"efistub: the native trampoline was not built ({error}); efistub will use Python dispatch",
              file=sys.stderr)


def cffi_modules():
    try:
        import cffi  # noqa: F401
        import unicorn  # noqa: F401
    except ImportError as e:
        print(f"efistub: the native trampoline is not built ({e})", file=sys.stderr)
        return []
    return ["efistub/native/build.py:ffibuilder"]


setup(cffi_modules=cffi_modules(), cmdclass={"build_ext": OptionalBuildExt})
