"""Task priority services (UEFI 2.10 §7.1). Events and timers are not implemented."""

from __future__ import annotations

from ..registry import UINTN, service

TPL_APPLICATION = 4
TPL_CALLBACK = 8
TPL_NOTIFY = 16
TPL_HIGH_LEVEL = 31


@service("RaiseTPL", returns="value", NewTpl=UINTN)
def RaiseTPL(fw, new_tpl):
    old = fw.tpl
    if new_tpl < old or new_tpl > TPL_HIGH_LEVEL:
        fw.note(f"RaiseTPL({new_tpl}) at TPL {old}: the new TPL must be between the current one and TPL_HIGH_LEVEL")
    fw.tpl = new_tpl
    return old


@service("RestoreTPL", returns="void", OldTpl=UINTN)
def RestoreTPL(fw, old_tpl):
    if old_tpl > fw.tpl:
        fw.note(f"RestoreTPL({old_tpl}) at TPL {fw.tpl}: RestoreTPL must not raise the TPL")
    fw.tpl = old_tpl
