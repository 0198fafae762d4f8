"""cffi builder of efistub._trampoline, compiled against the headers the unicorn wheel ships.

The module does not link libunicorn: Python hands it the entry points of the
library the unicorn binding loaded, so both always drive one library instance.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def unicorn_include_dir() -> str:
    import unicorn

    path = os.path.join(os.path.dirname(unicorn.__file__), "include")
    if not os.path.isfile(os.path.join(path, "unicorn", "unicorn.h")):
        raise RuntimeError(f"the unicorn package at {path} ships no C headers")
    return path


def read(name: str) -> str:
    with open(os.path.join(HERE, name)) as f:
        return f.read()


ffibuilder = FFI()
ffibuilder.cdef(read("trampoline.h") + """
extern "Python" uint64_t efistub_dispatch(void *, uint32_t, uint64_t *, uint32_t, uint64_t, uint64_t);
""")
ffibuilder.set_source(
    "efistub._trampoline",
    read("trampoline.c"),
    include_dirs=[HERE, unicorn_include_dir()],
    extra_compile_args=["-O2", "-std=c99"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(HERE, "..", ".."), verbose=True)
