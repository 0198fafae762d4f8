"""x86_64: long mode as unicorn starts it, the MS x64 calling convention, SYSCALL hypercalls.

The CPU is the model unicorn emulates, with CPUID hiding LA57 (so the Linux stub
never switches paging modes) and RDRAND/RDSEED (which unicorn 2.1.4 cannot make
deterministic); RDTSC counts virtual time derived from --seed, so two runs with
the same inputs behave the same.
"""

from __future__ import annotations

import ctypes

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, Uc
from unicorn import x86_const as x86

from ..layouts import linux_x86, pe
from .base import Architecture
from .pc_ports import PcPorts

ARG_REGISTERS = (x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX, x86.UC_X86_REG_R8, x86.UC_X86_REG_R9)
STACK_ARGS_OFFSET = 0x28  # return address + 32 bytes of shadow space
CR4_OSFXSR = 1 << 9
CR4_OSXMMEXCPT = 1 << 10
HLT = 0xF4

# CPUID bits hidden from the guest: (leaf, subleaf, register index in eax/ebx/ecx/edx, mask)
CPUID_HIDDEN = (
    (1, 0, 2, 1 << 30),  # RDRAND
    (7, 0, 1, 1 << 18),  # RDSEED
    (7, 0, 2, 1 << 16),  # LA57: no 5-level paging, so the stub keeps 4-level paging
)
CPUID_SUBLEAF_LEAVES = {4, 7, 0xB, 0xD, 0xF, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1D, 0x1E, 0x1F, 0x8000001D}
TSC_START = 1 << 32
TSC_TICKS_PER_US = 2000  # a 2 GHz TSC
TSC_TICKS_PER_READ = 1000

_INSN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p)

REGISTERS = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
    "r12", "r13", "r14", "r15", "rip", "rflags", "cr0", "cr3", "cr4")}


class X86_64(Architecture):
    name = "x86_64"
    machine = pe.MACHINE_AMD64
    SERVICE_STUB = bytes.fromhex("0f05c3")  # syscall; ret
    RETURN_STUB = bytes.fromhex("4889c10f05")  # mov rcx, rax; syscall  (the entry point's return value)
    STUB_PADDING = b"\xcc"
    TRAP_PC_OFFSET = 0  # unicorn reports SYSCALL with RIP at the instruction
    ARG_REGISTERS = ARG_REGISTERS
    RETURN_REGISTER = x86.UC_X86_REG_RAX
    SP, PC = x86.UC_X86_REG_RSP, x86.UC_X86_REG_RIP
    STACK_ARGS_OFFSET = STACK_ARGS_OFFSET
    REGISTERS = REGISTERS
    HALT_INSTRUCTIONS = (bytes([HLT]),)

    def __init__(self, fw):
        super().__init__(fw)
        self._cpuid_cache: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._tsc_reads = 0

    # -- engine -----------------------------------------------------------------
    def create_engine(self) -> Uc:
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.reg_write(x86.UC_X86_REG_CR4, uc.reg_read(x86.UC_X86_REG_CR4) | CR4_OSFXSR | CR4_OSXMMEXCPT)
        self._add_insn_hook(uc, x86.UC_X86_INS_CPUID, self._cpuid)
        self._add_insn_hook(uc, x86.UC_X86_INS_RDTSC, self._rdtsc)
        ports = PcPorts(self.fw.state)
        uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, data: ports.read(port, size), None, 1, 0, x86.UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, value, data: ports.write(port, size, value), None, 1, 0,
                    x86.UC_X86_INS_OUT)
        return uc

    def _add_insn_hook(self, uc: Uc, insn: int, function) -> None:
        # The binding's hook_add knows no RDTSC hook, so register through the C API directly.
        def guarded(engine, user_data):
            try:
                return function(uc)
            except BaseException as e:  # ctypes would print the traceback and carry on
                import traceback

                self.fw.request_stop("error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
                uc.emu_stop()
                return 1

        callback = _INSN_CALLBACK(guarded)
        self._callbacks.append(callback)
        getattr(uc, "_Uc__do_hook_add")(UC_HOOK_INSN, callback, 1, 0, ctypes.c_int(insn))

    def _cpuid(self, uc: Uc) -> int:
        leaf = uc.reg_read(x86.UC_X86_REG_EAX) & 0xFFFFFFFF
        subleaf = uc.reg_read(x86.UC_X86_REG_ECX) & 0xFFFFFFFF if leaf in CPUID_SUBLEAF_LEAVES else 0
        values = self._cpuid_cache.get((leaf, subleaf))
        if values is None:
            values = list(_probe_cpuid(leaf, subleaf))
            for hidden_leaf, hidden_subleaf, register, mask in CPUID_HIDDEN:
                if (leaf, subleaf) == (hidden_leaf, hidden_subleaf):
                    values[register] &= ~mask
            self._cpuid_cache[(leaf, subleaf)] = values = tuple(values)
        for reg, value in zip((x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX), values):
            uc.reg_write(reg, value)
        return 1  # skip the instruction: the registers are already set

    def _rdtsc(self, uc: Uc) -> int:
        self._tsc_reads += 1
        tsc = TSC_START + self.fw.options.seed * 7919 + self.fw.state.virtual_time_us * TSC_TICKS_PER_US \
            + self._tsc_reads * TSC_TICKS_PER_READ
        uc.reg_write(x86.UC_X86_REG_RAX, tsc & 0xFFFFFFFF)
        uc.reg_write(x86.UC_X86_REG_RDX, (tsc >> 32) & 0xFFFFFFFF)
        return 1

    # -- calling convention --------------------------------------------------------
    def start(self, uc: Uc, entry: int, stack_top: int, return_address: int, args: tuple[int, int]) -> None:
        """Set up a call of ``entry(args)`` that returns to ``return_address``."""
        rsp = (stack_top & ~0xF) - 64  # 16-aligned before the call, with shadow space above
        rsp -= 8
        self.fw.mem.write_u64(rsp, return_address)
        uc.reg_write(x86.UC_X86_REG_RSP, rsp)
        uc.reg_write(x86.UC_X86_REG_RCX, args[0])
        uc.reg_write(x86.UC_X86_REG_RDX, args[1])
        uc.reg_write(x86.UC_X86_REG_RIP, entry)

    def install_dispatch(self, uc: Uc, stub_base: int, slot_count: int, arg_count, dispatch) -> None:
        """Python dispatch: on a SYSCALL, read the arguments, call ``dispatch(slot, args)``, set RAX.

        ``slot`` is None for a SYSCALL outside the stubs.
        """

        def hook(uc, user_data):
            slot = self.slot_of(uc.reg_read(x86.UC_X86_REG_RIP), stub_base, slot_count)
            args = self.read_args(uc, arg_count(slot)) if slot is not None else []
            self.set_return(uc, dispatch(slot, args))

        uc.hook_add(UC_HOOK_INSN, hook, None, 1, 0, x86.UC_X86_INS_SYSCALL)

    # -- state for reports ------------------------------------------------------------
    def disassembler(self):
        import capstone

        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    # -- hand-off -------------------------------------------------------------------------
    def handoff(self, uc: Uc, entry: int) -> tuple[dict, tuple[int, int, int] | None]:
        """What the kernel receives (boot_params at RSI), and where its EFI memory map is."""
        rsi = uc.reg_read(x86.UC_X86_REG_RSI)
        out = {"arch": self.name, "entry": entry, "registers": {"rsi": rsi}}
        try:
            out["boot_params"] = bp = decode_boot_params(self.fw.mem, rsi)
        except Exception as e:  # the kernel was entered with something that is not boot_params
            out["boot_params_error"] = f"cannot decode boot_params at 0x{rsi:x}: {e}"
            return out, None
        info = bp["efi_info"]
        return out, (info["memmap"], info["memmap_size"], info["memdesc_size"])


def _probe_cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """CPUID as unicorn's CPU model answers it, from a scratch engine."""
    probe = Uc(UC_ARCH_X86, UC_MODE_64)
    probe.mem_map(0x1000, 0x1000)
    probe.mem_write(0x1000, b"\x0f\xa2")
    probe.reg_write(x86.UC_X86_REG_RAX, leaf)
    probe.reg_write(x86.UC_X86_REG_RCX, subleaf)
    probe.emu_start(0x1000, 0x1002)
    return tuple(probe.reg_read(r) & 0xFFFFFFFF for r in (
        x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX))


def _c_string(mem, address: int, limit: int) -> str:
    raw = mem.read(address, limit) if limit else b""
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def decode_boot_params(mem, address: int) -> dict:
    bp = mem.read_struct(linux_x86.BootParams, address)
    hdr, efi_info = bp.hdr, bp.efi_info
    cmdline_ptr = hdr.cmd_line_ptr | bp.ext_cmd_line_ptr << 32
    cmdline = ""
    if cmdline_ptr:
        limit = hdr.cmdline_size + 1 if hdr.cmdline_size else 4096
        cmdline = _c_string(mem, cmdline_ptr, _readable(mem, cmdline_ptr, limit))
    setup_data = []
    pointer = hdr.setup_data
    while pointer and len(setup_data) < 64:
        node = mem.read_struct(linux_x86.SetupData, pointer)
        setup_data.append({"address": pointer, "type": linux_x86.SETUP_DATA_TYPES.get(node.type, node.type),
                           "len": node.len})
        pointer = node.next
    si = bp.screen_info
    return {
        "address": address,
        "cmdline": cmdline,
        "cmd_line_ptr": cmdline_ptr,
        "ramdisk_image": hdr.ramdisk_image | bp.ext_ramdisk_image << 32,
        "ramdisk_size": hdr.ramdisk_size | bp.ext_ramdisk_size << 32,
        "e820": [
            {"addr": e.addr, "size": e.size, "type": linux_x86.E820_TYPES.get(e.type, e.type)}
            for e in bp.e820_table[: min(bp.e820_entries, linux_x86.E820_MAX_ENTRIES_ZEROPAGE)]
        ],
        "efi_info": {
            "loader_signature": efi_info.efi_loader_signature.decode("latin-1"),
            "systab": efi_info.efi_systab | efi_info.efi_systab_hi << 32,
            "memmap": efi_info.efi_memmap | efi_info.efi_memmap_hi << 32,
            "memmap_size": efi_info.efi_memmap_size,
            "memdesc_size": efi_info.efi_memdesc_size,
            "memdesc_version": efi_info.efi_memdesc_version,
        },
        "secure_boot": bp.secure_boot,
        "screen_info": {"orig_video_isVGA": si.orig_video_isVGA, "lfb_base": si.lfb_base | si.ext_lfb_base << 32,
                        "lfb_size": si.lfb_size, "lfb_width": si.lfb_width, "lfb_height": si.lfb_height},
        "setup_data": setup_data,
        "hdr": {"type_of_loader": hdr.type_of_loader, "loadflags": hdr.loadflags, "version": hdr.version,
                "boot_flag": hdr.boot_flag, "vid_mode": hdr.vid_mode, "root_flags": hdr.root_flags,
                "initrd_addr_max": hdr.initrd_addr_max, "kernel_alignment": hdr.kernel_alignment,
                "init_size": hdr.init_size, "header": hdr.header.decode("latin-1")},
    }


def _readable(mem, address: int, limit: int) -> int:
    """How many of ``limit`` bytes from ``address`` can be read (stops at the end of RAM)."""
    while limit > 0:
        try:
            mem.read(address, limit)
            return limit
        except Exception:
            limit //= 2
    return 0
