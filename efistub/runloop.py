"""The run loop: emulate until an outcome, carrying out the dispatcher's guest calls on the way.

Emulation stops for a service that ends the run, a transfer (the firmware calls a
guest function, or gives a service's caller its CPU state back), an instruction
fetch from memory without execute (the hand-off after ExitBootServices, or code
allowed to run before it), a halted CPU (virtual time moves to the next timer), a
fault, or the watchdog at the timeout. With a debugger (efistub.gdbstub, --gdb), also for a
breakpoint, a finished step or gdb's interrupt: the loop waits for gdb, and the time it waits
does not count against the timeout.

A session that has work of its own while the guest runs (efistub.minimize's controller) sets
``tick``: a thread calls it every TICK_S while the engine runs (the engine holds no Python lock
then), under ``tick_lock``, which the session takes too when it does the same work in a service
call. The guest is never stopped for it: an engine stopped from another thread and started again
may repeat part of what the guest had done (stock unicorn checks for a stop after every store).
"""

from __future__ import annotations

import threading
import time
import traceback

from unicorn import (
    UC_ERR_FETCH_PROT, UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_PROT, UC_MEM_READ_UNMAPPED,
    UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED, UC_PROT_ALL, UcError,
)

from . import events

RUN_UNTIL = 0xFFFFFFFFFFFFFFFF  # an address the guest never reaches: run until stopped
# After ExitBootServices, code that runs without a kernel's boot arguments in place may be a boot
# loader's last trampoline (GRUB's relocator copies the kernel, then jumps to it): it may run
# this many instructions to reach a kernel entry before the first such address counts as the hand-off.
TRAMPOLINE_BUDGET = 20_000_000
TICK_S = 0.02  # how often a run with a ``tick`` calls it while the guest runs
CALL_STACK_GAP = 256  # bytes left below the caller's stack pointer when the firmware calls the guest
ACCESS_NAMES = {
    UC_MEM_READ_UNMAPPED: "read of unmapped memory", UC_MEM_WRITE_UNMAPPED: "write to unmapped memory",
    UC_MEM_FETCH_UNMAPPED: "instruction fetch from unmapped memory",
    UC_MEM_READ_PROT: "read of protected memory", UC_MEM_WRITE_PROT: "write to read-only memory",
    UC_MEM_FETCH_PROT: "instruction fetch from non-executable memory",
}


class RunLoop:
    def __init__(self, platform, timeout: float):
        self.p = platform
        self.timeout = timeout
        self.invalid: tuple[int, int, int] | None = None  # the last unmapped access (set by a hook)
        self.trampoline: int | None = None  # where code first ran after ExitBootServices without a kernel's arguments
        self.deadline = 0.0  # perf_counter() time at which the run ends with outcome timeout (set by run())
        self._watchdog: threading.Timer | None = None
        self.tick = None  # a callable (no arguments) to call about every TICK_S while the guest runs
        self.tick_lock = threading.Lock()  # held while tick() runs (call_tick)
        self.tick_error: str | None = None  # what a tick raised (the run then ends with an error)
        self._ticker: tuple[threading.Thread, threading.Event] | None = None
        self.alarms = 0  # how often the watchdog has stopped emulation
        self.debugger = None  # a gdbstub.GdbServer (--gdb): the guest stops for gdb between slices

    # -- the watchdog and the ticks: stopped while the process forks (efistub.snapshot), so no thread is copied
    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog.join()
        self._stop_ticks()

    def start_watchdog(self) -> None:
        """Stop emulation at the deadline (a forked run starts a watchdog of its own after the fork);
        and call ``tick`` meanwhile, if set."""
        self._watchdog = threading.Timer(max(0.0, self.deadline - time.perf_counter()), self._alarm)
        self._watchdog.start()
        if self.tick is not None and self._ticker is None and self.tick_error is None:
            done = threading.Event()
            self._ticker = (threading.Thread(target=self._ticks, args=(done,), daemon=True), done)
            self._ticker[0].start()

    def _alarm(self) -> None:
        self.alarms += 1  # before the stop: the loop must see it once emu_start returns
        self.p.uc.emu_stop()

    def call_tick(self) -> bool:
        """``tick()`` under ``tick_lock``, from the tick thread or from a service call. One that raises
        is kept in ``tick_error`` and stops the engine: the run ends with an error. False from then on."""
        with self.tick_lock:
            if self.tick_error is None:
                try:
                    self.tick()
                except Exception:
                    self.tick_error = traceback.format_exc()
                    self.p.uc.emu_stop()  # the guest does not go on after this stop
            return self.tick_error is None

    def _ticks(self, done: threading.Event) -> None:
        while not done.wait(TICK_S) and self.call_tick():
            pass

    def _stop_ticks(self) -> None:
        if self._ticker is not None:
            thread, done = self._ticker
            done.set()
            thread.join()
            self._ticker = None

    def debug(self, pc: int) -> int:
        """Wait for gdb at a stop; the deadline moves on by the time that takes."""
        started = time.perf_counter()
        pc = self.debugger.wait(pc)
        self.deadline += time.perf_counter() - started
        return pc

    def apply(self, transfer) -> int:
        """Carry out a transfer; return the PC to go on at."""
        p = self.p
        uc, cc, mem = p.uc, p.arch.convention, p.fw.mem
        frame = transfer.frame
        if transfer.kind == "call":
            if frame.context is None:
                frame.context = cc.save(uc)
            call = transfer.call
            top = call.stack if call.stack is not None else uc.reg_read(cc.sp) - CALL_STACK_GAP
            cc.enter(uc, mem, call.function, call.args, p.return_address, top)
            return call.function
        cc.restore(uc, frame.context)
        if transfer.result is not None:
            cc.set_return(uc, transfer.result)
        return frame.context[cc.pc]

    def run(self) -> tuple[str, dict]:
        p = self.p
        uc, fw, arch, dispatcher = p.uc, p.fw, p.arch, p.dispatcher
        self.deadline = time.perf_counter() + self.timeout
        pc = arch.pc(uc)
        if self.debugger is not None:  # gdb attaches in the firmware, before it calls the image
            self.debug(p.return_address)
        if (transfer := dispatcher.take_transfer()) is not None:
            pc = self.apply(transfer)
        while True:
            if fw.stop is not None:
                return fw.stop.outcome, fw.stop.details
            if self.deadline <= time.perf_counter():
                return "timeout", {}
            if self.debugger is not None and self.debugger.stopped:
                pc = self.debug(pc)
                continue
            self.invalid = None
            error = None
            # Our own watchdog: unicorn's timeout thread wakes every 2 us and takes a core.
            alarms = self.alarms
            self.start_watchdog()
            try:
                uc.emu_start(pc, RUN_UNTIL, count=TRAMPOLINE_BUDGET if self.trampoline is not None else 0)
            except UcError as e:
                error = e
            except Exception as e:  # a hook raised: the binding re-raises it here; report it, never crash
                fw.request_stop("error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            finally:
                self.stop_watchdog()  # joined too: no thread of this slice is left at the next fork
            if self.tick_error is not None:  # the session's own failure: it ends the run, whatever the guest did
                return "error", {"error": "a tick of the run's session failed", "traceback": self.tick_error}
            if fw.stop is not None:
                continue
            if (transfer := dispatcher.take_transfer()) is not None:
                pc = self.apply(transfer)
            elif error is not None and error.errno == UC_ERR_FETCH_PROT:
                address = arch.pc(uc)  # unicorn stops with the PC at the address it could not fetch
                if not fw.state.boot_services_active:
                    if arch.kernel_entered(uc) or (region := fw.pages.run_at(address)) is None:
                        return "handoff", {"entry": address}
                    if self.trampoline is None:
                        self.trampoline = address
                    start, end, _ = region
                    uc.mem_protect(start, end - start, UC_PROT_ALL)
                    fw.note(f"code ran at 0x{address:x} after ExitBootServices without a kernel's boot arguments "
                            f"(a loader's trampoline); execute granted on 0x{start:x}-0x{end:x}")
                    pc = address
                    continue
                region = fw.code_range(address)
                if region is None:
                    return "fault", self.fault(ACCESS_NAMES[UC_MEM_FETCH_PROT])
                start, size, what = region
                uc.mem_protect(start, size, UC_PROT_ALL)
                fw.note(f"code ran at 0x{address:x} in {what}; execute granted on 0x{start:x}-0x{start + size:x}")
                pc = address
            elif error is not None:
                return "fault", self.fault(str(error))
            elif time.perf_counter() >= self.deadline:
                return "timeout", {}
            elif self.debugger is not None and self.debugger.stopped:  # a breakpoint, a step, gdb's interrupt
                pc = arch.pc(uc)
            elif self.alarms != alarms and arch.halted_at(uc) is None:
                # The watchdog fired at the deadline in a service call, just before a fork stopped it:
                # the copy, whose own deadline lies ahead, stops after the call too, and goes on.
                pc = arch.pc(uc)
            elif self.trampoline is not None:  # the trampoline's budget ran out before a kernel entry
                fw.note(f"no kernel entry within {TRAMPOLINE_BUDGET} instructions after 0x{self.trampoline:x}: "
                        "that is the hand-off")
                return "handoff", {"entry": self.trampoline}
            elif (halt := arch.halted_at(uc)) is not None:
                # Waiting for an interrupt: the only interrupts are efistub's virtual timers.
                if not (fw.state.boot_services_active and events.advance_to_next_timer(fw)):
                    return "fault", self.fault("the guest halted with no timer to wake it", pc=halt)
                pc = arch.pc(uc)
                due = fw.events.due()
                if due is not None:  # a timer interrupt: its notifications run, then the guest goes on
                    dispatcher.start(due)
                    if (transfer := dispatcher.take_transfer()) is not None:
                        pc = self.apply(transfer)
            else:
                return "fault", self.fault("emulation stopped for no known reason")

    def fault(self, reason: str, pc: int | None = None) -> dict:
        """Where the guest stopped: reason, PC, instruction, registers, last service calls."""
        p = self.p
        uc, arch = p.uc, p.arch
        pc = arch.pc(uc) if pc is None else pc
        fault = {"reason": reason, "pc": pc, "registers": arch.registers(uc)}
        if self.invalid is not None:
            access, address, size = self.invalid
            fault["access"] = {"kind": ACCESS_NAMES.get(access, str(access)), "address": address, "size": size}
        try:
            code = bytes(uc.mem_read(pc, 16))
            insn = next(arch.disassembler().disasm(code, pc), None)
            fault["instruction"] = f"{insn.mnemonic} {insn.op_str}".strip() if insn else f"(undecodable) {code.hex()}"
        except Exception:
            fault["instruction"] = "(pc is not in memory)"
        region = p.fw.in_loaded_image(pc)
        if region is not None:
            fault["image_offset"] = pc - region[0]
        fault["last_calls"] = [c.as_dict() for c in p.dispatcher.calls[-10:]]
        return fault
