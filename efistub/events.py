"""Events of the firmware: the table of events, the queue of notifications, timers in virtual time.

A signaled EVT_NOTIFY_SIGNAL event queues its notification function; queued
notifications run, highest TPL first and at their own TPL, whenever the TPL is
below theirs at the end of a service call (as on EDK2, where releasing the event
lock dispatches them). Event groups are signaled together; EVT_SIGNAL_EXIT_BOOT_SERVICES
and EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE events belong to the groups of those names.
The services that work on them are in services/events.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import guids
from .clock import TIME_MAX
from .dispatch import call_guest
from .errors import EfiError
from .memory import MemoryType
from .status import Status

TPL_APPLICATION = 4
TPL_CALLBACK = 8
TPL_NOTIFY = 16
TPL_HIGH_LEVEL = 31

EVT_TIMER = 0x80000000
EVT_RUNTIME = 0x40000000
EVT_NOTIFY_WAIT = 0x00000100
EVT_NOTIFY_SIGNAL = 0x00000200
EVT_SIGNAL_EXIT_BOOT_SERVICES = 0x00000201
EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE = 0x60000202
VALID_EVENT_TYPES = (0, EVT_TIMER, EVT_RUNTIME, EVT_NOTIFY_WAIT, EVT_NOTIFY_SIGNAL,
                     EVT_SIGNAL_EXIT_BOOT_SERVICES, EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE,
                     EVT_TIMER | EVT_NOTIFY_WAIT, EVT_TIMER | EVT_NOTIFY_SIGNAL,
                     EVT_RUNTIME | EVT_NOTIFY_SIGNAL, EVT_TIMER | EVT_RUNTIME | EVT_NOTIFY_SIGNAL)
# Event types that stand for membership of a group (as EDK2 maps them).
TYPE_GROUPS = {EVT_SIGNAL_EXIT_BOOT_SERVICES: guids.EVENT_GROUP_EXIT_BOOT_SERVICES,
               EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE: guids.EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE}
NOTIFY_TPLS = (TPL_APPLICATION, TPL_CALLBACK, TPL_NOTIFY)


@dataclass(eq=False)
class Event:
    type: int
    tpl: int
    notify_function: int
    notify_context: int
    group: guids.Guid | None = None
    handle: int = 0
    signaled: bool = False
    queued: bool = False  # its notification function waits to run
    trigger_us: int | None = None  # virtual time at which a timer fires
    period_us: int = 0
    is_key: bool = False  # the console's WaitForKey


class EventTable:
    """The firmware's events, the queue of notifications, and the timers in virtual time.

    It keeps ``state.notify_armed`` true while a notification is queued or a timer with
    a notification function is armed: the C trampoline then hands RestoreTPL and Stall
    to Python, which runs what becomes due.
    """

    def __init__(self, fw):
        self.fw = fw
        self.events: dict[int, Event] = {}  # handle -> Event

    def create(self, event: Event) -> int:
        event.handle = self.fw.allocate_pool(MemoryType.EfiBootServicesData, 16)
        self.events[event.handle] = event
        return event.handle

    def get(self, handle: int) -> Event:
        event = self.events.get(handle)
        if event is None:
            raise EfiError(Status.EFI_INVALID_PARAMETER, f"0x{handle:x} is not an event")
        return event

    def close(self, handle: int) -> None:
        event = self.get(handle)
        del self.events[handle]
        event.queued = False
        self.fw.free_pool(handle)
        self.update()

    # -- signaling ---------------------------------------------------------------------
    def signal(self, event: Event) -> None:
        """Signal ``event``; a group member signals its whole group (UEFI 2.10 §7.1, CreateEventEx)."""
        members = [e for e in self.events.values() if e.group == event.group] if event.group else [event]
        for e in members:
            self._signal_one(e)
        self.update()

    def signal_group(self, group: guids.Guid) -> None:
        for e in [e for e in self.events.values() if e.group == group]:
            self._signal_one(e)
        self.update()

    def _signal_one(self, event: Event) -> None:
        if event.signaled:
            return  # already signaled: its notification is queued once
        event.signaled = True
        if event.type & EVT_NOTIFY_SIGNAL:
            event.queued = True

    def ready(self, event: Event) -> bool:
        """Whether the event is signaled now (WaitForKey: whether a key is queued)."""
        if event.is_key:
            return bool(self.fw.keys)
        if event.trigger_us is not None and event.trigger_us <= self.fw.state.virtual_time_us:
            self.fire_timers()  # its time has come (timers without notifications fire when looked at)
        return event.signaled

    # -- time ----------------------------------------------------------------------------
    def arm(self, event: Event, delay_us: int | None, periodic: bool) -> None:
        now = self.fw.state.virtual_time_us
        if delay_us is None:
            event.trigger_us, event.period_us = None, 0
        else:
            event.trigger_us = min(now + delay_us, TIME_MAX)
            event.period_us = delay_us if periodic else 0
        self.update()

    def next_wakeup(self, waited: list[Event]) -> int | None:
        """When a wait for ``waited`` could end next: the earliest of their timers, and of the timers
        whose notification functions might signal them. None: nothing in virtual time can end it."""
        triggers = [e.trigger_us for e in waited if e.trigger_us is not None]
        tpl = self.fw.state.tpl
        triggers += [e.trigger_us for e in self.events.values()
                     if e.trigger_us is not None and e.type & EVT_NOTIFY_SIGNAL and e.notify_function and e.tpl > tpl]
        return min(triggers) if triggers else None

    def next_trigger(self) -> int | None:
        triggers = [e.trigger_us for e in self.events.values() if e.trigger_us is not None]
        return min(triggers) if triggers else None

    def fire_timers(self) -> None:
        """Signal every timer whose trigger time has passed; periodic ones re-arm."""
        now = self.fw.state.virtual_time_us
        for e in list(self.events.values()):
            if e.trigger_us is not None and e.trigger_us <= now:
                if e.period_us:
                    missed = (now - e.trigger_us) // e.period_us + 1
                    e.trigger_us = min(e.trigger_us + missed * e.period_us, TIME_MAX)
                else:
                    e.trigger_us = None
                self._signal_one(e)
        self.update()

    # -- notifications ----------------------------------------------------------------------
    def update(self) -> None:
        self.fw.state.notify_armed = any(
            e.queued or (e.trigger_us is not None and e.type & EVT_NOTIFY_SIGNAL) for e in self.events.values())

    def next_due(self) -> Event | None:
        """The queued notification to run now: the highest TPL above the current one, first queued first."""
        tpl = self.fw.state.tpl
        due = [e for e in self.events.values() if e.queued and e.tpl > tpl]
        return max(due, key=lambda e: e.tpl) if due else None  # max keeps the first of equal TPLs

    def due(self):
        """A generator running the notifications due now, or None when there are none (the common case)."""
        fw = self.fw
        if not fw.state.notify_armed or not fw.state.boot_services_active:
            return None
        self.fire_timers()
        return self.run_notifications() if self.next_due() is not None else None

    def run_notifications(self):
        """Run the due notification functions, each at its own TPL (a generator: they are guest code)."""
        while (event := self.next_due()) is not None:
            event.queued = False
            if event.type & EVT_NOTIFY_SIGNAL:
                event.signaled = False  # as EDK2: a signal event is reset when its notification runs
            self.update()
            yield from self.notify(event)

    def notify(self, event: Event):
        fw = self.fw
        old = fw.state.tpl
        fw.state.tpl = event.tpl
        yield call_guest(event.notify_function, event.handle, event.notify_context)
        fw.state.tpl = old

    def wait_until(self, end_us: int):
        """Let virtual time pass until ``end_us``, firing timers and running their notifications
        on the way (a generator)."""
        state = self.fw.state
        while True:
            trigger = self.next_trigger()
            if trigger is None or trigger > end_us:
                break
            state.virtual_time_us = max(state.virtual_time_us, trigger)
            self.fire_timers()
            yield from self.run_notifications()
        state.virtual_time_us = max(state.virtual_time_us, end_us)
        self.fire_timers()
        yield from self.run_notifications()


def advance_to_next_timer(fw) -> bool:
    """Move virtual time to the next armed timer (a halted CPU waking up); False when none is armed."""
    trigger = fw.events.next_trigger()
    if trigger is None:
        return False
    fw.state.virtual_time_us = max(fw.state.virtual_time_us, trigger)
    return True
