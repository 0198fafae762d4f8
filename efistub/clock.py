"""Virtual time: microseconds in the shared firmware state, advanced by Stall, waits, timers and port I/O."""

from __future__ import annotations

TIME_MAX = (1 << 64) - 1


def advance_time(state, microseconds: int) -> None:
    """Move virtual time on; it saturates instead of wrapping (as the C trampoline's advance_time)."""
    state.virtual_time_us = min(state.virtual_time_us + microseconds, TIME_MAX)
