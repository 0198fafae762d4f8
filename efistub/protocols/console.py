"""SIMPLE_TEXT_OUTPUT, SIMPLE_TEXT_INPUT and SIMPLE_TEXT_INPUT_EX on the console handle.

OutputString goes to the run's console stream. The output device has one mode,
80x25, and tracks the attribute and cursor in its Mode structure.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import events, guids
from ..clock import advance_time
from ..dispatch import call_guest
from ..layouts import efi
from ..memory import MemoryType
from ..registry import BOOLEAN, POINTER, STRING, UINTN, service
from ..status import Status
from .interface import make_interface

MODES = [(80, 25)]
SCAN_CODES = {"\x1b": 0x17}  # ESC is a scan code, not a character
DEFAULT_ATTRIBUTE = 0x07  # light grey on black
KEY_POLL_US = 1000  # virtual time an empty ReadKeyStroke takes
KEY_WAIT_US = 60_000_000  # polling for this long with no key left to come is a stall
NOTIFY_HANDLE_SIZE = 16  # a RegisterKeyNotify handle is a pool allocation of this size


class TextOutput:
    def __init__(self, fw):
        self.fw = fw
        self.mode_address = fw.allocate_pool(MemoryType.EfiBootServicesData, efi.SimpleTextOutputMode.sizeof())
        self.empty_polls = 0  # ReadKeyStroke calls in a row that found no key
        self.toggle_state = 0  # what SimpleTextInputEx.SetState set
        self.notify_key = fw.allocate_pool(MemoryType.EfiBootServicesData, efi.KeyData.sizeof())
        self.mode = dict(MaxMode=len(MODES), Mode=0, Attribute=DEFAULT_ATTRIBUTE,
                         CursorColumn=0, CursorRow=0, CursorVisible=1)
        self.sync()

    def sync(self):
        self.fw.mem.write_struct(efi.SimpleTextOutputMode, self.mode_address, self.mode)

    def advance(self, text: str):
        columns, rows = MODES[self.mode["Mode"]]
        col, row = self.mode["CursorColumn"], self.mode["CursorRow"]
        for ch in text:
            if ch == "\n":
                row += 1
            elif ch == "\r":
                col = 0
            elif ch == "\b":
                col = max(0, col - 1)
            else:
                col += 1
                if col >= columns:
                    col, row = 0, row + 1
        self.mode.update(CursorColumn=col, CursorRow=min(row, rows - 1))
        self.sync()


def _out(fw) -> TextOutput:
    return fw.protocol_state["console"]


@service("TextOutput.Reset", This=POINTER, ExtendedVerification=BOOLEAN)
def Reset(fw, this, extended):
    return ClearScreen(fw, this)


@service("TextOutput.OutputString", This=POINTER, String=STRING)
def OutputString(fw, this, string):
    if not string:
        return Status.EFI_INVALID_PARAMETER
    text = fw.mem.read_ucs2(string)
    fw.output(text)
    _out(fw).advance(text)
    return Status.EFI_SUCCESS


@service("TextOutput.TestString", This=POINTER, String=STRING)
def TestString(fw, this, string):
    return Status.EFI_SUCCESS if string else Status.EFI_INVALID_PARAMETER


@service("TextOutput.QueryMode", This=POINTER, ModeNumber=UINTN, Columns=POINTER, Rows=POINTER)
def QueryMode(fw, this, mode, columns_ptr, rows_ptr):
    if mode >= len(MODES):
        return Status.EFI_UNSUPPORTED
    if not columns_ptr or not rows_ptr:
        return Status.EFI_INVALID_PARAMETER
    columns, rows = MODES[mode]
    fw.mem.write_uintn(columns_ptr, columns)
    fw.mem.write_uintn(rows_ptr, rows)
    return Status.EFI_SUCCESS


@service("TextOutput.SetMode", This=POINTER, ModeNumber=UINTN)
def SetMode(fw, this, mode):
    if mode >= len(MODES):
        return Status.EFI_UNSUPPORTED
    _out(fw).mode["Mode"] = mode
    return ClearScreen(fw, this)


@service("TextOutput.SetAttribute", This=POINTER, Attribute=UINTN)
def SetAttribute(fw, this, attribute):
    if attribute > 0x7F:
        return Status.EFI_UNSUPPORTED
    out = _out(fw)
    out.mode["Attribute"] = attribute
    out.sync()
    return Status.EFI_SUCCESS


@service("TextOutput.ClearScreen", This=POINTER)
def ClearScreen(fw, this):
    out = _out(fw)
    out.mode.update(CursorColumn=0, CursorRow=0)
    out.sync()
    return Status.EFI_SUCCESS


@service("TextOutput.SetCursorPosition", This=POINTER, Column=UINTN, Row=UINTN)
def SetCursorPosition(fw, this, column, row):
    out = _out(fw)
    columns, rows = MODES[out.mode["Mode"]]
    if column >= columns or row >= rows:
        return Status.EFI_UNSUPPORTED
    out.mode.update(CursorColumn=column, CursorRow=row)
    out.sync()
    return Status.EFI_SUCCESS


@service("TextOutput.EnableCursor", This=POINTER, Visible=BOOLEAN)
def EnableCursor(fw, this, visible):
    out = _out(fw)
    out.mode["CursorVisible"] = int(visible)
    out.sync()
    return Status.EFI_SUCCESS


@service("TextInput.Reset", This=POINTER, ExtendedVerification=BOOLEAN)
def InputReset(fw, this, extended):
    return Status.EFI_SUCCESS


@dataclass
class KeyNotify:
    key: dict  # the registered EFI_KEY_DATA, parsed
    function: int


def _notifies(fw) -> dict[int, KeyNotify]:
    """RegisterKeyNotify's registrations, by NotifyHandle."""
    return fw.protocol_state.setdefault("key_notify", {})


def _registered(notify: KeyNotify, key: dict) -> bool:
    """EDK2's rule: the same scan code and character; a registered shift or toggle state of 0 matches any."""
    want = notify.key
    if (want["Key"]["ScanCode"], want["Key"]["UnicodeChar"]) != (key["Key"]["ScanCode"], key["Key"]["UnicodeChar"]):
        return False
    return all(want["KeyState"][f] in (0, key["KeyState"][f]) for f in ("KeyShiftState", "KeyToggleState"))


def _read_key(fw, write):
    """Take the next --keys key for ReadKeyStroke(Ex), calling ``write(key_data)`` with it.

    Headless: only the keys given with --keys are ever pressed. A poll that finds none lets
    KEY_POLL_US of virtual time pass (a boot menu's countdown runs on without burning host
    time); polling on after the last key for KEY_WAIT_US of virtual time is a stall. A key
    that matches a RegisterKeyNotify registration is pressed when it is read: the notification
    functions run first (as guest calls, with the key's EFI_KEY_DATA), then the read returns it.
    """
    out = _out(fw)
    if not fw.keys:
        advance_time(fw.state, KEY_POLL_US)
        out.empty_polls += 1
        if out.empty_polls * KEY_POLL_US >= KEY_WAIT_US:
            fw.request_stop("stalled", reason=f"ReadKeyStroke polled for a key for {KEY_WAIT_US // 1_000_000} s of "
                                              "virtual time, and no --keys input is left",
                            waiting_for="a key press, and no --keys input is left")
        return Status.EFI_NOT_READY
    out.empty_polls = 0
    ch = fw.keys.popleft()
    scan = SCAN_CODES.get(ch, 0)
    key = dict(Key=dict(ScanCode=scan, UnicodeChar=0 if scan else ord(ch)),
               KeyState=dict(KeyShiftState=0, KeyToggleState=out.toggle_state))
    functions = [n.function for n in _notifies(fw).values() if _registered(n, key)]
    if not functions:
        write(key)
        return Status.EFI_SUCCESS
    return _notify_then_write(fw, key, functions, write)


def _notify_then_write(fw, key: dict, functions: list[int], write):
    out = _out(fw)
    for function in functions:
        fw.mem.write_struct(efi.KeyData, out.notify_key, key)
        yield call_guest(function, out.notify_key)
    write(key)
    return Status.EFI_SUCCESS


@service("TextInput.ReadKeyStroke", This=POINTER, Key=POINTER)
def ReadKeyStroke(fw, this, key_ptr):
    if not key_ptr:
        return Status.EFI_INVALID_PARAMETER
    return _read_key(fw, lambda key: fw.mem.write_struct(efi.InputKey, key_ptr, key["Key"]))


@service("TextInputEx.Reset", This=POINTER, ExtendedVerification=BOOLEAN)
def InputExReset(fw, this, extended):
    return Status.EFI_SUCCESS


@service("TextInputEx.ReadKeyStrokeEx", This=POINTER, KeyData=POINTER)
def ReadKeyStrokeEx(fw, this, key_data):
    """As ReadKeyStroke; the key state has no shift information (KeyShiftState 0, as a serial
    terminal gives) and the toggle state SetState set."""
    if not key_data:
        return Status.EFI_INVALID_PARAMETER
    return _read_key(fw, lambda key: fw.mem.write_struct(efi.KeyData, key_data, key))


@service("TextInputEx.SetState", This=POINTER, KeyToggleState=POINTER)
def SetState(fw, this, state_ptr):
    if not state_ptr:
        return Status.EFI_INVALID_PARAMETER
    state = fw.mem.read(state_ptr, 1)[0]
    if not state & efi.TOGGLE_STATE_VALID:
        return Status.EFI_UNSUPPORTED  # EDK2: a state without its valid bit cannot be set
    _out(fw).toggle_state = state
    return Status.EFI_SUCCESS


@service("TextInputEx.RegisterKeyNotify", This=POINTER, KeyData=POINTER, KeyNotificationFunction=POINTER,
         NotifyHandle=POINTER)
def RegisterKeyNotify(fw, this, key_data, function, handle_ptr):
    if not key_data or not function or not handle_ptr:
        return Status.EFI_INVALID_PARAMETER
    key = fw.mem.read_struct(efi.KeyData, key_data)
    wanted = dict(Key=dict(ScanCode=key.Key.ScanCode, UnicodeChar=key.Key.UnicodeChar),
                  KeyState=dict(KeyShiftState=key.KeyState.KeyShiftState, KeyToggleState=key.KeyState.KeyToggleState))
    notifies = _notifies(fw)
    handle = next((h for h, n in notifies.items() if n.function == function and n.key == wanted), None)
    if handle is None:  # EDK2: the same key and function again gives the handle it has
        handle = fw.allocate_pool(MemoryType.EfiBootServicesData, NOTIFY_HANDLE_SIZE)
        notifies[handle] = KeyNotify(wanted, function)
    fw.mem.write_uintn(handle_ptr, handle)
    return Status.EFI_SUCCESS


@service("TextInputEx.UnregisterKeyNotify", This=POINTER, NotificationHandle=POINTER)
def UnregisterKeyNotify(fw, this, handle):
    if handle not in _notifies(fw):
        return Status.EFI_INVALID_PARAMETER
    del _notifies(fw)[handle]
    fw.free_pool(handle)
    return Status.EFI_SUCCESS


def _key_event(fw) -> int:
    """An event that is signaled while a key is queued (WaitForKey, WaitForKeyEx)."""
    return fw.events.create(events.Event(events.EVT_NOTIFY_WAIT, events.TPL_NOTIFY, 0, 0, is_key=True))


def install(fw) -> dict:
    """Create the console handle; return the system table's console members."""
    out = TextOutput(fw)
    fw.protocol_state["console"] = out
    text_out = make_interface(fw, "TextOutput", efi.SIMPLE_TEXT_OUTPUT, fw.layout.SimpleTextOutput,
                              Mode=out.mode_address)
    text_in = make_interface(fw, "TextInput", efi.SIMPLE_TEXT_INPUT, fw.layout.SimpleTextInput,
                             WaitForKey=_key_event(fw))
    text_in_ex = make_interface(fw, "TextInputEx", efi.SIMPLE_TEXT_INPUT_EX, fw.layout.SimpleTextInputEx,
                                WaitForKeyEx=_key_event(fw))
    handle = fw.handles.install(None, guids.SIMPLE_TEXT_OUTPUT_PROTOCOL, text_out)
    fw.handles.install(handle, guids.SIMPLE_TEXT_INPUT_PROTOCOL, text_in)
    fw.handles.install(handle, guids.SIMPLE_TEXT_INPUT_EX_PROTOCOL, text_in_ex)
    return dict(ConsoleInHandle=handle.address, ConIn=text_in, ConsoleOutHandle=handle.address,
                ConOut=text_out, StandardErrorHandle=handle.address, StdErr=text_out)
