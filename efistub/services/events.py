"""Event, timer and task priority services (UEFI 2.10 §7.1), with notification functions.

The events themselves, their notifications and timers are efistub/events.py.

Time is virtual: a wait or a Stall advances the clock to the next timer instead of
sleeping, and timers fire as the clock passes them. A signaled EVT_NOTIFY_SIGNAL
event queues its notification function; queued notifications run, highest TPL
first and at their own TPL, whenever the TPL is below theirs at the end of a
service call (SignalEvent, RestoreTPL, Stall, ... as on EDK2, where releasing the
event lock dispatches them). CheckEvent and WaitForEvent run the notification
functions of EVT_NOTIFY_WAIT events. Event groups are signaled together;
EVT_SIGNAL_EXIT_BOOT_SERVICES and EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE events belong
to the groups of those names. The console's WaitForKey is signaled while keys (from
--keys) are queued. A wait that nothing can ever end (no timer, no key left) ends
the run at once with outcome "stalled" instead of hanging until the timeout.
"""

from __future__ import annotations

import enum

from ..clock import TIME_MAX, advance_time
from ..events import (
    EVT_NOTIFY_SIGNAL, EVT_NOTIFY_WAIT, EVT_TIMER, NOTIFY_TPLS, TPL_APPLICATION, TPL_HIGH_LEVEL, TYPE_GROUPS,
    VALID_EVENT_TYPES, Event, EventTable,
)
from ..registry import GUID_PTR, POINTER, UINT32, UINT64, UINTN, Result, enum_arg, service
from ..status import Status

MAX_WAKEUPS = 1_000_000  # timer firings one WaitForEvent sits through before it counts as stalled


class TimerDelay(enum.IntEnum):
    TimerCancel = 0
    TimerPeriodic = 1
    TimerRelative = 2


def _events(fw) -> EventTable:
    return fw.events


def _create(fw, kind, tpl, function, context, group_ptr, event_ptr):
    if not event_ptr or kind not in VALID_EVENT_TYPES:
        return Status.EFI_INVALID_PARAMETER
    if kind & (EVT_NOTIFY_WAIT | EVT_NOTIFY_SIGNAL):
        if not function or tpl not in NOTIFY_TPLS:
            return Status.EFI_INVALID_PARAMETER
    group = fw.mem.read_guid(group_ptr) if group_ptr else TYPE_GROUPS.get(kind)
    if group_ptr and kind in TYPE_GROUPS:
        return Status.EFI_INVALID_PARAMETER  # CreateEventEx: these types cannot take an EventGroup
    fw.mem.write_uintn(event_ptr, _events(fw).create(Event(kind, tpl, function, context, group)))
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
    _events(fw).close(event)
    return Status.EFI_SUCCESS


@service("SignalEvent", Event=POINTER)
def SignalEvent(fw, event):
    table = _events(fw)
    table.signal(table.get(event))
    return Status.EFI_SUCCESS  # the notifications it queued run as the call ends


def _check(fw, table: EventTable, e: Event):
    """CheckEvent's logic (a generator): run a wait notification, then test and clear the signal."""
    if not table.ready(e) and e.type & EVT_NOTIFY_WAIT and e.notify_function and e.tpl > fw.state.tpl:
        yield from table.notify(e)
    if table.ready(e):
        e.signaled = False
        return True
    return False


@service("CheckEvent", Event=POINTER)
def CheckEvent(fw, event):
    table = _events(fw)
    e = table.get(event)
    if e.type & EVT_NOTIFY_SIGNAL:
        return Status.EFI_INVALID_PARAMETER
    ready = yield from _check(fw, table, e)
    return Status.EFI_SUCCESS if ready else Status.EFI_NOT_READY


@service("SetTimer", Event=POINTER, Type=enum_arg(TimerDelay), TriggerTime=UINT64)
def SetTimer(fw, event, kind, trigger_time):
    table = _events(fw)
    e = table.get(event)
    if not e.type & EVT_TIMER or kind > TimerDelay.TimerRelative:
        return Status.EFI_INVALID_PARAMETER
    if kind == TimerDelay.TimerCancel:
        table.arm(e, None, False)
    else:
        table.arm(e, max(1, trigger_time // 10), kind == TimerDelay.TimerPeriodic)  # 100 ns units
    return Status.EFI_SUCCESS


@service("WaitForEvent", NumberOfEvents=UINTN, Event=POINTER, Index=POINTER)
def WaitForEvent(fw, count, events_ptr, index_ptr):
    if not count or not events_ptr or not index_ptr:
        return Status.EFI_INVALID_PARAMETER
    if fw.state.tpl != TPL_APPLICATION:
        return Status.EFI_UNSUPPORTED
    table = _events(fw)
    width = fw.mem.width
    raw = fw.mem.read(events_ptr, count * width)  # a bad pointer or count: EFI_INVALID_PARAMETER
    events = [table.get(int.from_bytes(raw[i:i + width], "little")) for i in range(0, len(raw), width)]
    for _ in range(MAX_WAKEUPS):
        for i, e in enumerate(events):
            if e.type & EVT_NOTIFY_SIGNAL:
                fw.mem.write_uintn(index_ptr, i)
                return Status.EFI_INVALID_PARAMETER
            if (yield from _check(fw, table, e)):
                fw.mem.write_uintn(index_ptr, i)
                return Status.EFI_SUCCESS
        trigger = table.next_wakeup(events)
        if trigger is None:
            break
        yield from table.wait_until(trigger)  # idle until the next timer that can end the wait fires
    else:
        fw.request_stop("stalled", reason=f"WaitForEvent saw {MAX_WAKEUPS} timers fire and none ended the wait",
                        waiting_for="events that the firing timers never signal")
        return Status.EFI_NOT_READY
    waiting_for = "a key press, and no --keys input is left" if any(e.is_key for e in events) \
        else "events that nothing will signal"
    fw.request_stop("stalled", reason=f"WaitForEvent waits for {waiting_for}", waiting_for=waiting_for)
    return Status.EFI_NOT_READY


@service("Stall", Microseconds=UINTN)
def Stall(fw, microseconds):
    """Time is virtual: a stall costs no host time. Also in the C trampoline (when no
    notification can become due)."""
    if not fw.state.notify_armed:
        advance_time(fw.state, microseconds)
        return Status.EFI_SUCCESS
    return _stall(fw, microseconds)


def _stall(fw, microseconds):
    yield from _events(fw).wait_until(min(fw.state.virtual_time_us + microseconds, TIME_MAX))
    return Status.EFI_SUCCESS


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
    """Also in the C trampoline."""
    old = fw.state.tpl
    fw.state.tpl = new_tpl
    return Result(old, raise_tpl_note(new_tpl, old))


@service("RestoreTPL", returns="void", OldTpl=UINTN)
def RestoreTPL(fw, old_tpl):
    """Also in the C trampoline (when no notification is queued or armed). Notifications
    above the restored TPL run as the call ends."""
    note = restore_tpl_note(old_tpl, fw.state.tpl)
    fw.state.tpl = old_tpl
    return Result(0, note)
