"""What gdb sees of a CPU: its registers, as a GDB target description.

Each architecture module declares one ``GdbTarget``: gdb's name for the architecture and its
features. The standard features (org.gnu.gdb.i386.core, org.gnu.gdb.aarch64.core,
org.gnu.gdb.riscv.cpu, ...) carry the registers gdb checks by name. One feature of efistub's
own carries the system registers (page-table base, control registers) that a kernel developer
reads; gdb shows them as extra registers. Each register says where unicorn keeps it. The gdb
server (efistub.gdbstub) numbers the registers in the order they are declared here, and sends
that description to gdb (qXfer:features:read:target.xml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

TARGET_XML = "target.xml"
EFISTUB_FEATURE = "org.efistub.system"  # the system registers: efistub's own feature


@dataclass(frozen=True)
class GdbRegister:
    name: str
    bits: int
    reg: int | None = None  # the unicorn register id; None when ``read`` (and ``write``) give it
    type: str = "int"  # a GDB type: int, code_ptr, data_ptr, i387_ext, or one the feature defines
    group: str | None = None  # general, float, vector, system
    read: Callable[[object], int] | None = None  # read(uc): for a register unicorn has no plain id for
    write: Callable[[object, int], None] | None = None  # write(uc, value); None with read: read-only

    def get(self, uc) -> int:
        value = self.read(uc) if self.read is not None else uc.reg_read(self.reg)
        return value & ((1 << self.bits) - 1)

    @property
    def writable(self) -> bool:
        return self.read is None or self.write is not None

    def set(self, uc, value: int) -> None:
        if not self.writable:
            raise ValueError(f"register {self.name} is read-only")
        if self.write is not None:
            self.write(uc, value)
        else:
            uc.reg_write(self.reg, value)


@dataclass(frozen=True)
class GdbFeature:
    name: str
    registers: tuple[GdbRegister, ...]
    types: str = ""  # GDB type definitions (flags, vectors, unions) the registers use, as XML


@dataclass(frozen=True)
class GdbTarget:
    architecture: str  # gdb's name: i386:x86-64, aarch64, riscv:rv64, i386
    features: tuple[GdbFeature, ...]
    registers: tuple[GdbRegister, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "registers", tuple(r for f in self.features for r in f.registers))

    def description(self) -> str:
        """The target description gdb reads: every feature in one document."""
        from xml.sax.saxutils import quoteattr  # here: it imports urllib, http and ssl, which a run without gdb needs not

        lines = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">', "<target>",
                 f"  <architecture>{self.architecture}</architecture>"]
        number = 0
        for feature in self.features:
            lines.append(f"  <feature name={quoteattr(feature.name)}>")
            if feature.types:
                lines.append(feature.types.strip("\n"))
            for r in feature.registers:
                group = f" group={quoteattr(r.group)}" if r.group else ""
                lines.append(f"    <reg name={quoteattr(r.name)} bitsize=\"{r.bits}\" type={quoteattr(r.type)} "
                             f"regnum=\"{number}\"{group}/>")
                number += 1
            lines.append("  </feature>")
        lines.append("</target>")
        return "\n".join(lines) + "\n"


def registers(names, bits: int, ids: Callable[[str], int], type: str = "int", group: str | None = None):
    """Registers that unicorn names after them: ``ids(name)`` is the unicorn id of ``name``."""
    return tuple(GdbRegister(name, bits, ids(name), type, group) for name in names)


def read_only(name: str, bits: int, read: Callable[[object], int], group: str = "system") -> GdbRegister:
    return GdbRegister(name, bits, None, "int", group, read=read)
