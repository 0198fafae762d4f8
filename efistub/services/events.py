"""Event, timer and task priority services (UEFI 2.10 §7.1).

Time is virtual: a wait on a timer advances the clock to the timer's trigger time
instead of sleeping. The console's WaitForKey event is signaled while keys (from
--keys) are queued. Notification functions are recorded but never called: the
firmware does not call back into the guest. A wait that nothing can ever end (no
timer, no key left) stops the run as stalled instead of hanging until the timeout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import EfiError
from ..memory import MemoryType
from ..registry import GUID_PTR, POINTER, UINT32, UINT64, UINTN, enum_arg, service
from ..status import Status

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


class TimerDelay(enum.IntEnum):
    TimerCancel = 0
    TimerPeriodic = 1
    TimerRelative = 2


@dataclass
class Event:
    type: int
    tpl: int
    notify_function: int
    notify_context: int
    group: str | None = None
    signaled: bool = False
    trigger_us: int | None = None  # virtual time at which a timer fires
    period_us: int = 0
    is_key: bool = False  # the console's WaitForKey


def new_event(fw, event: Event) -> int:
    address = fw.allocate_pool(MemoryType.EfiBootServicesData, 16)
    fw.events[address] = event
    return address


def _event(fw, address: int) -> Event:
    event = fw.events.get(address)
    if event is None:
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"0x{address:x} is not an event")
    return event


def _ready(fw, event: Event) -> bool:
    """Whether the event is signaled now; a fired timer re-arms or disarms."""
    if event.is_key:
        return bool(fw.keys)
    if event.trigger_us is not None and fw.state.virtual_time_us >= event.trigger_us:
        event.signaled = True
        event.trigger_us = event.trigger_us + event.period_us if event.period_us else None
    return event.signaled


def advance_to_next_timer(fw) -> bool:
    """Move virtual time to the next armed timer (a halted CPU waking up); False when none is armed."""
    triggers = [e.trigger_us for e in fw.events.values() if e.trigger_us is not None]
    if not triggers:
        return False
    fw.state.virtual_time_us = max(fw.state.virtual_time_us, min(triggers))
    return True


def _create(fw, kind, tpl, function, context, group_ptr, event_ptr):
    if not event_ptr or kind not in VALID_EVENT_TYPES:
        return Status.EFI_INVALID_PARAMETER
    if kind & (EVT_NOTIFY_WAIT | EVT_NOTIFY_SIGNAL):
        if not function or tpl not in (TPL_APPLICATION, TPL_CALLBACK, TPL_NOTIFY):
            return Status.EFI_INVALID_PARAMETER
        fw.note("an event with a notification function was created; efistub never calls notification functions")
    group = str(fw.mem.read_guid(group_ptr)) if group_ptr else None
    fw.mem.write_u64(event_ptr, new_event(fw, Event(kind, tpl, function, context, group)))
    return Status.EFI_SUCCESS


@service("CreateEvent", Type=UINT32, NotifyTpl=UINTN, NotifyFunction=POINTER, NotifyContext=POINTER,
         Event=POINTER)
def CreateEvent(fw, kind, tpl, function, context, event_ptr):
    return _create(fw, kind, tpl, function, context, 0, event_ptr)


@service("CreateEventEx", Type=UINT32, NotifyTpl=UINTN, NotifyFunction=POINTER, NotifyContext=POINTER,
         EventGroup=GUID_PTR, Event=POINTER)
def CreateEventEx(fw, kind, tpl, function, context, group_ptr, event_ptr):
    return _create(fw, kind, tpl, function, context, group_ptr, event_ptr)


@service("CloseEvent", Event=POINTER)
def CloseEvent(fw, event):
    _event(fw, event)
    del fw.events[event]
    return Status.EFI_SUCCESS


@service("SignalEvent", Event=POINTER)
def SignalEvent(fw, event):
    target = _event(fw, event)
    members = [e for e in fw.events.values() if target.group and e.group == target.group] or [target]
    for e in members:
        e.signaled = True
    return Status.EFI_SUCCESS


@service("CheckEvent", Event=POINTER)
def CheckEvent(fw, event):
    e = _event(fw, event)
    if e.type & EVT_NOTIFY_SIGNAL:
        return Status.EFI_INVALID_PARAMETER
    if _ready(fw, e):
        e.signaled = False
        return Status.EFI_SUCCESS
    return Status.EFI_NOT_READY


@service("SetTimer", Event=POINTER, Type=enum_arg(TimerDelay), TriggerTime=UINT64)
def SetTimer(fw, event, kind, trigger_time):
    e = _event(fw, event)
    if not e.type & EVT_TIMER or kind > TimerDelay.TimerRelative:
        return Status.EFI_INVALID_PARAMETER
    microseconds = max(1, trigger_time // 10)  # TriggerTime counts 100 ns units
    if kind == TimerDelay.TimerCancel:
        e.trigger_us, e.period_us = None, 0
    else:
        e.trigger_us = fw.state.virtual_time_us + microseconds
        e.period_us = microseconds if kind == TimerDelay.TimerPeriodic else 0
    return Status.EFI_SUCCESS


@service("WaitForEvent", NumberOfEvents=UINTN, Event=POINTER, Index=POINTER)
def WaitForEvent(fw, count, events_ptr, index_ptr):
    if not count or not events_ptr or not index_ptr:
        return Status.EFI_INVALID_PARAMETER
    if fw.state.tpl != TPL_APPLICATION:
        return Status.EFI_UNSUPPORTED
    events = [_event(fw, fw.mem.read_u64(events_ptr + 8 * i)) for i in range(count)]
    for _ in range(2):  # now, then once more after advancing virtual time to the next timer
        for i, e in enumerate(events):
            if e.type & EVT_NOTIFY_SIGNAL:
                fw.mem.write_u64(index_ptr, i)
                return Status.EFI_INVALID_PARAMETER
            if _ready(fw, e):
                e.signaled = False
                fw.mem.write_u64(index_ptr, i)
                return Status.EFI_SUCCESS
        timers = [e.trigger_us for e in events if e.trigger_us is not None]
        if not timers:
            break
        fw.state.virtual_time_us = max(fw.state.virtual_time_us, min(timers))
    waiting_for = "a key press, and no --keys input is left" if any(e.is_key for e in events) \
        else "events that nothing will signal"
    fw.request_stop("fault", reason=f"stalled: WaitForEvent waits for {waiting_for}")
    return Status.EFI_NOT_READY


def raise_tpl_note(new_tpl: int, current: int) -> str | None:
    if new_tpl < current or new_tpl > TPL_HIGH_LEVEL:
        return f"RaiseTPL({new_tpl}) at TPL {current}: the new TPL must be between the current one and TPL_HIGH_LEVEL"
    return None


def restore_tpl_note(old_tpl: int, current: int) -> str | None:
    if old_tpl > current:
        return f"RestoreTPL({old_tpl}) at TPL {current}: RestoreTPL must not raise the TPL"
    return None


@service("RaiseTPL", returns="value", NewTpl=UINTN)
def RaiseTPL(fw, new_tpl):
    old = fw.state.tpl
    fw.call_note = raise_tpl_note(new_tpl, old)
    fw.state.tpl = new_tpl
    return old


@service("RestoreTPL", returns="void", OldTpl=UINTN)
def RestoreTPL(fw, old_tpl):
    fw.call_note = restore_tpl_note(old_tpl, fw.state.tpl)
    fw.state.tpl = old_tpl
