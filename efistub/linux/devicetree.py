"""The device tree an arm64 or riscv64 kernel receives: /chosen as the EFI stub filled it in."""

from __future__ import annotations

import struct

FDT_MAGIC = 0xD00DFEED
MAX_FDT = 64 << 20
U64_PROPERTIES = ("linux,uefi-system-table", "linux,uefi-mmap-start", "kaslr-seed", "linux,initrd-start",
                  "linux,initrd-end")


def looks_like_fdt(mem, address: int) -> bool:
    """Whether ``address`` holds a flattened device tree (what arm64 and riscv64 kernels are entered with)."""
    try:
        return struct.unpack(">I", mem.read(address, 4))[0] == FDT_MAGIC
    except Exception:
        return False


def read_fdt(mem, address: int) -> bytes:
    magic, total = struct.unpack(">II", mem.read(address, 8))
    if magic != FDT_MAGIC:
        raise ValueError(f"no FDT at 0x{address:x} (magic 0x{magic:08x})")
    if not 40 <= total <= MAX_FDT:
        raise ValueError(f"FDT at 0x{address:x} claims {total} bytes")
    return mem.read(address, total)



def decode_chosen(blob: bytes) -> dict:
    """/chosen with its integer properties decoded, and the /memreserve/ entries."""
    import fdt

    tree = fdt.parse_dtb(blob)
    chosen = {}
    if tree.exist_node("/chosen"):
        for prop in tree.get_node("/chosen").props:
            chosen[prop.name] = _property(prop)
    return {"chosen": chosen, "memreserve": [list(entry.values()) for entry in tree.entries]}


def _property(prop):
    import fdt

    if isinstance(prop, fdt.PropStrings):
        return prop.value if len(prop.data) == 1 else list(prop.data)
    if isinstance(prop, fdt.PropWords):
        words = list(prop.data)
        if prop.name in U64_PROPERTIES or prop.name == "boot-hartid" and len(words) == 2:
            return int.from_bytes(b"".join(w.to_bytes(4, "big") for w in words), "big")
        return words[0] if len(words) == 1 else words
    if isinstance(prop, fdt.PropBytes):
        return bytes(prop.data).hex()
    return True  # an empty property


def fdt_handoff(arch, entry: int, registers: dict, fdt_address: int):
    """Hand-off information for a kernel entered with an FDT, and where its memory map is."""
    out = {"arch": arch.name, "entry": entry, "registers": registers, "fdt_address": fdt_address}
    try:
        blob = read_fdt(arch.fw.mem, fdt_address)
        out["fdt"] = decode_chosen(blob)
        out["fdt"]["size"] = len(blob)
    except Exception as e:  # the kernel got something that is not a device tree
        out["fdt_error"] = f"cannot decode the FDT at 0x{fdt_address:x}: {e}"
        return out, None
    chosen = out["fdt"]["chosen"]
    try:
        memmap = (chosen["linux,uefi-mmap-start"], chosen["linux,uefi-mmap-size"], chosen["linux,uefi-mmap-desc-size"])
    except KeyError:
        return out, None
    return out, memmap
