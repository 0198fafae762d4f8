"""The little of the PC platform that EFI programs poke at through port I/O.

Boot loaders calibrate the TSC against the i8254 PIT: GRUB programs channel 2,
raises its gate through port 0x61 and polls port 0x61 until OUT2 goes high. Here
every port access takes one microsecond of virtual time, channel 2 counts in
virtual time at the PIT's 1.193182 MHz, and port 0x61 reports OUT2 accordingly, so
such loops end and the TSC (which counts virtual time too) calibrates consistently.
Other ports read as all ones (nothing there) and ignore writes.
"""

from __future__ import annotations

from ..clock import advance_time

PIT_HZ = 1_193_182
PORT_CHANNEL2 = 0x42
PORT_CONTROL = 0x43
PORT_B = 0x61
GATE2 = 0x01
OUT2 = 0x20
US_PER_ACCESS = 1


class PcPorts:
    def __init__(self, state):
        self.state = state  # FirmwareState: virtual_time_us
        self.port_b = 0
        self.reload = 0x10000
        self._low_byte = None  # channel 2 takes its count low byte first
        self.gate_opened_us = None

    def _tick(self) -> int:
        advance_time(self.state, US_PER_ACCESS)
        return self.state.virtual_time_us

    def read(self, port: int, size: int) -> int:
        now = self._tick()
        if port == PORT_B:
            value = self.port_b & ~OUT2
            if self.port_b & GATE2 and self.gate_opened_us is not None:
                if (now - self.gate_opened_us) * PIT_HZ >= self.reload * 1_000_000:
                    value |= OUT2
            return value
        return (1 << (8 * size)) - 1

    def write(self, port: int, size: int, value: int) -> None:
        now = self._tick()
        if port == PORT_B:
            if value & GATE2 and not self.port_b & GATE2:
                self.gate_opened_us = now  # a rising gate (re)starts channel 2
            self.port_b = value & 0xFF
        elif port == PORT_CONTROL and (value >> 6) == 2:
            self._low_byte = None
        elif port == PORT_CHANNEL2:
            if self._low_byte is None:
                self._low_byte = value & 0xFF
            else:
                self.reload = (value & 0xFF) << 8 | self._low_byte or 0x10000
                self._low_byte = None
