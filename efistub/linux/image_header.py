"""The Linux Image headers of arm64 and riscv64 kernels: where a kernel that runs where it was
loaded starts (Documentation/arch/arm64/booting.rst, Documentation/arch/riscv/boot-image-header.rst)."""

from __future__ import annotations


def arm64_entry(header: bytes) -> int | None:
    """arm64: "ARM\\x64" at 0x38, and code1 at offset 4 branches to primary_entry."""
    if header[0x38:0x3C] != b"ARM\x64":
        return None
    code1 = int.from_bytes(header[4:8], "little")
    if code1 >> 26 != 0b000101:  # not a B instruction
        return None
    imm26 = code1 & 0x3FFFFFF
    return 4 + ((imm26 - (1 << 26) if imm26 & (1 << 25) else imm26) << 2)


def _jal_target(instruction: int) -> int | None:
    """The offset a ``jal x0, offset`` (``j``) jumps by, or None for another instruction."""
    if instruction & 0xFFF != 0x06F:  # opcode JAL with rd = x0
        return None
    imm = ((instruction >> 31) & 1) << 20 | ((instruction >> 12) & 0xFF) << 12 \
        | ((instruction >> 20) & 1) << 11 | ((instruction >> 21) & 0x3FF) << 1
    return imm - (1 << 21) if imm & (1 << 20) else imm


def riscv64_entry(header: bytes) -> int | None:
    """riscv: "RISCV" at 0x30; code0 is ``c.li s4, -13`` ("MZ"), then ``j _start_kernel``."""
    if header[0x30:0x35] != b"RISCV":
        return None
    offset = _jal_target(int.from_bytes(header[2:6], "little"))
    return None if offset is None else 2 + offset


ENTRIES = {"aarch64": arm64_entry, "riscv64": riscv64_entry}


def kernel_entry(arch: str, header: bytes) -> int | None:
    """The offset of the kernel's first instruction in an Image of ``arch``, or None (not such an Image)."""
    entry = ENTRIES.get(arch)
    return entry(header) if entry else None
