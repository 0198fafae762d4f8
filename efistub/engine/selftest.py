"""Self-test of a unicorn engine: self-modifying code stays correct, a stop from another
thread repeats nothing, and how fast stores are.

Run as ``python -m efistub.engine.selftest`` with LIBUNICORN_PATH naming the engine;
prints one JSON object. The fast engine skips the code-invalidation check on stores
to memory without execute, so these cases prove that code is still re-translated
wherever it can change: in executable pages, in the writer's own page, in the very
next instruction, and in memory that gains execute after it was written. It takes a
stop only at a block start, so a run stopped from another thread (the --timeout
watchdog, gdb's interrupt) and started again goes on exactly where it was: stock
unicorn also stops after a store, with the CPU back at the start of the instruction,
which runs again.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import time

from unicorn import UC_ARCH_X86, UC_HOOK_MEM_WRITE, UC_MODE_64, UC_PROT_ALL, UC_PROT_READ, UC_PROT_WRITE, Uc
from unicorn import x86_const as x86

CODE, OTHER, DATA, STACK = 0x10000, 0x20000, 0x30000, 0x80000
RET = b"\xc3"
MAX_STORE_LOAD_RATIO = 3.0
STOP_EVERY_S = 0.0005


def mov_eax(value: int) -> bytes:
    return b"\xb8" + struct.pack("<I", value)


def call_abs(address: int) -> bytes:
    return b"\x48\xbb" + struct.pack("<Q", address) + b"\xff\xd3"  # mov rbx, address; call rbx


def store_byte(address: int, value: int) -> bytes:
    return b"\xc6\x04\x25" + struct.pack("<I", address) + bytes([value])  # mov byte [address], value


def save_eax(register: int) -> bytes:
    return {12: b"\x41\x89\xc4", 13: b"\x41\x89\xc5"}[register]  # mov r12d/r13d, eax


def countdown_loop(body: bytes) -> bytes:
    """``body`` (ending in dec rcx), then jnz back to its start: a loop of RCX rounds."""
    return body + b"\x75" + bytes([(-(len(body) + 2)) & 0xFF])


def machine(with_hook: bool) -> Uc:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(CODE, 0x1000, UC_PROT_ALL)
    uc.mem_map(OTHER, 0x1000, UC_PROT_ALL)
    uc.mem_map(DATA, 0x1000, UC_PROT_READ | UC_PROT_WRITE)
    uc.mem_map(STACK, 0x10000, UC_PROT_READ | UC_PROT_WRITE)
    uc.reg_write(x86.UC_X86_REG_RSP, STACK + 0x8000)
    if with_hook:
        uc.hook_add(UC_HOOK_MEM_WRITE, lambda *args: None)
    return uc


def run(uc: Uc, code: bytes, at: int = CODE) -> None:
    uc.mem_write(at, code)
    uc.emu_start(at, at + len(code))


def results(uc: Uc) -> tuple[int, int]:
    return uc.reg_read(x86.UC_X86_REG_R12) & 0xFFFFFFFF, uc.reg_read(x86.UC_X86_REG_R13) & 0xFFFFFFFF


def other_page(with_hook: bool) -> bool:
    uc = machine(with_hook)
    uc.mem_write(OTHER, mov_eax(1) + RET)
    run(uc, call_abs(OTHER) + save_eax(12) + store_byte(OTHER + 1, 2) + call_abs(OTHER) + save_eax(13))
    return results(uc) == (1, 2)


def own_page(with_hook: bool) -> bool:
    uc = machine(with_hook)
    target = CODE + 0x800
    uc.mem_write(target, mov_eax(1) + RET)
    run(uc, call_abs(target) + save_eax(12) + store_byte(target + 1, 5) + call_abs(target) + save_eax(13))
    return results(uc) == (1, 5)


def next_instruction(with_hook: bool) -> bool:
    uc = machine(with_hook)
    # mov byte [rip+1], 7 patches the immediate of the mov eax that follows in the same block
    run(uc, b"\xc6\x05\x01\x00\x00\x00\x07" + mov_eax(1) + save_eax(12) + mov_eax(0) + save_eax(13))
    return results(uc) == (7, 0)


def made_executable(with_hook: bool) -> bool:
    uc = machine(with_hook)
    uc.mem_protect(DATA, 0x1000, UC_PROT_ALL)
    write_v1 = b"".join(store_byte(DATA + i, b) for i, b in enumerate(mov_eax(9) + RET))
    run(uc, write_v1 + call_abs(DATA) + save_eax(12))
    uc.mem_protect(DATA, 0x1000, UC_PROT_READ | UC_PROT_WRITE)
    run(uc, b"".join(store_byte(DATA + i, b) for i, b in enumerate(mov_eax(10) + RET)), at=CODE + 0x400)
    uc.mem_protect(DATA, 0x1000, UC_PROT_ALL)
    run(uc, call_abs(DATA) + save_eax(13), at=CODE + 0x800)
    return results(uc) == (9, 10)


def stopped_from_another_thread(with_hook: bool) -> bool:
    """A loop of read-modify-writes (inc qword [DATA]; inc r12), stopped from another thread every
    STOP_EVERY_S and started again where it stopped: memory and register count the same."""
    uc = machine(with_hook)
    count = 300_000 if with_hook else 20_000_000  # a Python hook on every store is slow
    code = countdown_loop(b"\x48\xff\x04\x25" + struct.pack("<I", DATA) + b"\x49\xff\xc4" + b"\x48\xff\xc9")
    uc.mem_write(CODE, code)
    uc.reg_write(x86.UC_X86_REG_RCX, count)
    done, stops = threading.Event(), []

    def stopper():
        while not done.wait(STOP_EVERY_S):
            uc.emu_stop()
            stops.append(1)

    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    pc, end = CODE, CODE + len(code)
    try:
        while pc != end:
            uc.emu_start(pc, end)
            pc = uc.reg_read(x86.UC_X86_REG_RIP)
    finally:
        done.set()
        thread.join()
    counted = struct.unpack("<Q", uc.mem_read(DATA, 8))[0]
    return len(stops) >= 3 and counted == uc.reg_read(x86.UC_X86_REG_R12) == count


CASES = {
    "patch code in another executable page": other_page,
    "patch code in the writer's own page": own_page,
    "patch the next instruction of the same block": next_instruction,
    "code written into read-write memory that is then made executable": made_executable,
    "a loop stopped from another thread and started again repeats no instruction": stopped_from_another_thread,
}


def loop_ns(store: bool, iterations: int = 4_000_000) -> float:
    """ns per iteration of a loop over 1 MiB of memory without execute, storing or loading."""
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(CODE, 0x1000, UC_PROT_ALL)
    uc.mem_map(0x100000, 0x100000, UC_PROT_READ | UC_PROT_WRITE)
    access = b"\x48\x89\x04\xc7" if store else b"\x48\x8b\x14\xc7"  # mov [rdi+rax*8], rax / mov rdx, [...]
    code = countdown_loop(access + b"\x48\xff\xc0" + b"\x48\x25\xff\xff\x01\x00" + b"\x48\xff\xc9")
    uc.mem_write(CODE, code)
    uc.reg_write(x86.UC_X86_REG_RDI, 0x100000)
    uc.reg_write(x86.UC_X86_REG_RCX, iterations)
    start = time.perf_counter()
    uc.emu_start(CODE, CODE + len(code))
    return (time.perf_counter() - start) * 1e9 / iterations


def main() -> int:
    from unicorn.unicorn_py3 import unicorn as binding

    cases = {f"{name}{' (with a memory hook)' if hook else ''}": case(hook)
             for name, case in CASES.items() for hook in (False, True)}
    store, load = loop_ns(True), loop_ns(False)
    speed_ok = store / load <= MAX_STORE_LOAD_RATIO
    print(json.dumps({
        "library": binding.uclib._name,
        "cases": cases,
        "store_ns": round(store, 2), "load_ns": round(load, 2),
        "passed": all(cases.values()) and speed_ok,
        "speed_ok": speed_ok,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
