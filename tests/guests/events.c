/*
 * events: notification functions, TPLs, timers and event groups (UEFI 2.10 7.1).
 *
 * Every counter a notify function touches is volatile: the functions run from
 * inside boot services (SignalEvent, RestoreTPL, CheckEvent) or from a timer
 * interrupt during Stall, so the compiler must not keep the counts in registers.
 * Timer checks are robust to a 10 ms timer tick (OVMF): they ask for "exactly
 * once" only where a period of 50 ms leaves no doubt, and "at least twice" for
 * a periodic 10 ms timer over 100 ms.
 */
#include "lib.h"

/* A made-up event group: no firmware signals it. */
static EFI_GUID made_up_group =
    { 0x2e1ab5c7, 0x84f3, 0x4d6a, { 0x9b, 0x0e, 0x61, 0x73, 0x9c, 0x52, 0xe0, 0x4d } };
static EFI_GUID ready_to_boot_group = EFI_EVENT_GROUP_READY_TO_BOOT;

/* What a notify function saw. */
typedef struct {
    volatile UINTN count;
    volatile EFI_TPL tpl;       /* the TPL inside the notify function */
    VOID *volatile context;     /* its Context argument */
    EFI_EVENT volatile event;   /* its Event argument */
    volatile int self_signal;   /* signal its own event from inside */
} NOTE;

static void note_reset(NOTE *n)
{
    n->count = 0;
    n->tpl = 0;
    n->context = NULL;
    n->event = NULL;
    n->self_signal = 0;
}

static VOID EFIAPI record(EFI_EVENT event, VOID *context)
{
    NOTE *n = context;
    n->tpl = current_tpl();
    n->context = context;
    n->event = event;
    if (n->self_signal)
        gBS->SignalEvent(event);
    n->count++;
}

static void print_count(const CHAR16 *what, UINTN count)
{
    print(L"  info: ");
    print(what);
    print(L" ");
    print_dec(count);
    print(L"\r\n");
}

/* (a) SignalEvent at TPL_APPLICATION runs the notify function before it returns. */
static void test_signal(void)
{
    static NOTE n;
    EFI_EVENT ev = NULL;
    EFI_STATUS status;
    UINTN after;

    note_reset(&n);
    status = gBS->CreateEvent(EVT_NOTIFY_SIGNAL, TPL_CALLBACK, record, &n, &ev);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"CreateEvent: EVT_NOTIFY_SIGNAL at TPL_CALLBACK"))
        return;
    CHECK(n.count == 0, L"CreateEvent: does not run the notify function");
    status = gBS->SignalEvent(ev);
    after = n.count;
    CHECK_STATUS(status, EFI_SUCCESS, L"SignalEvent: succeeds");
    CHECK(after == 1, L"SignalEvent at TPL_APPLICATION: notify function ran before SignalEvent returned");
    CHECK(n.context == &n, L"SignalEvent: notify function gets its NotifyContext");
    CHECK(n.event == ev, L"SignalEvent: notify function gets its Event");
    if (n.tpl != TPL_CALLBACK) {
        print(L"  note: TPL inside the notify function ");
        print_dec(n.tpl);
        print(L"\r\n");
    }
    CHECK(n.tpl == TPL_CALLBACK, L"SignalEvent: notify function runs at its NotifyTpl (TPL_CALLBACK)");
    CHECK(current_tpl() == TPL_APPLICATION, L"SignalEvent: back at TPL_APPLICATION afterwards");

    /* (b) Raised to TPL_NOTIFY, the TPL_CALLBACK notification has to wait. */
    {
        EFI_TPL old;
        UINTN while_raised;

        n.count = 0;
        n.tpl = 0;
        old = gBS->RaiseTPL(TPL_NOTIFY);
        gBS->SignalEvent(ev);
        gBS->SignalEvent(ev);
        while_raised = n.count;
        gBS->RestoreTPL(old);
        after = n.count;
        CHECK(old == TPL_APPLICATION, L"RaiseTPL(TPL_NOTIFY): returns TPL_APPLICATION");
        CHECK(while_raised == 0, L"SignalEvent at TPL_NOTIFY: TPL_CALLBACK notify function does not run yet");
        CHECK(after >= 1, L"RestoreTPL(TPL_APPLICATION): runs the pending notify function before returning");
        if (after != 1)
            print_count(L"notifications after two signals:", after);
        CHECK(after == 1, L"SignalEvent twice while raised: one notification");
        CHECK(n.tpl == TPL_CALLBACK, L"RestoreTPL: pending notify function runs at TPL_CALLBACK");
    }

    CHECK_STATUS(gBS->CheckEvent(ev), EFI_INVALID_PARAMETER,
                 L"CheckEvent: EVT_NOTIFY_SIGNAL event -> EFI_INVALID_PARAMETER");
    CHECK_STATUS(gBS->CloseEvent(ev), EFI_SUCCESS, L"CloseEvent: EVT_NOTIFY_SIGNAL event");
}

/* (c) EVT_NOTIFY_WAIT: CheckEvent calls the notify function. */
static void test_wait_notify(void)
{
    static NOTE n, self;
    EFI_EVENT ev = NULL, ev_self = NULL;
    EFI_STATUS status;

    note_reset(&n);
    status = gBS->CreateEvent(EVT_NOTIFY_WAIT, TPL_CALLBACK, record, &n, &ev);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"CreateEvent: EVT_NOTIFY_WAIT at TPL_CALLBACK")) {
        status = gBS->CheckEvent(ev);
        CHECK(n.count == 1, L"CheckEvent: EVT_NOTIFY_WAIT event runs its notify function");
        CHECK(n.context == &n, L"CheckEvent: notify function gets its NotifyContext");
        CHECK_STATUS(status, EFI_NOT_READY, L"CheckEvent: notify function did not signal -> EFI_NOT_READY");
        gBS->CloseEvent(ev);
    }

    note_reset(&self);
    self.self_signal = 1;
    status = gBS->CreateEvent(EVT_NOTIFY_WAIT, TPL_CALLBACK, record, &self, &ev_self);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"CreateEvent: EVT_NOTIFY_WAIT that signals itself")) {
        status = gBS->CheckEvent(ev_self);
        CHECK(self.count == 1, L"CheckEvent: self-signaling notify function ran once");
        CHECK_STATUS(status, EFI_SUCCESS, L"CheckEvent: notify function signaled its event -> EFI_SUCCESS");
        gBS->CloseEvent(ev_self);
    }
}

/* (d) Timers with a notify function. */
static void test_timer_notify(void)
{
    static NOTE n;
    EFI_EVENT ev = NULL;
    EFI_STATUS status;
    UINTN count, cancelled;

    note_reset(&n);
    status = gBS->CreateEvent(EVT_TIMER | EVT_NOTIFY_SIGNAL, TPL_CALLBACK, record, &n, &ev);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"CreateEvent: EVT_TIMER | EVT_NOTIFY_SIGNAL"))
        return;
    status = gBS->SetTimer(ev, TimerRelative, 100000); /* 10 ms in 100 ns units */
    CHECK_STATUS(status, EFI_SUCCESS, L"SetTimer: TimerRelative 10 ms");
    gBS->Stall(50000);
    count = n.count;
    if (count != 1)
        print_count(L"relative timer notifications in 50 ms:", count);
    CHECK(count == 1, L"SetTimer TimerRelative 10 ms: notify function ran exactly once in Stall(50 ms)");
    CHECK(n.tpl == TPL_CALLBACK, L"Timer: notify function runs at TPL_CALLBACK");

    n.count = 0;
    status = gBS->SetTimer(ev, TimerPeriodic, 100000);
    CHECK_STATUS(status, EFI_SUCCESS, L"SetTimer: TimerPeriodic 10 ms");
    gBS->Stall(100000);
    count = n.count;
    print_count(L"periodic 10 ms timer notifications in Stall(100 ms):", count);
    CHECK(count >= 2, L"SetTimer TimerPeriodic 10 ms: notify function ran at least twice in Stall(100 ms)");
    status = gBS->SetTimer(ev, TimerCancel, 0);
    CHECK_STATUS(status, EFI_SUCCESS, L"SetTimer: TimerCancel");
    cancelled = n.count;
    gBS->Stall(50000);
    CHECK(n.count == cancelled, L"SetTimer TimerCancel: no more notifications in Stall(50 ms)");
    CHECK_STATUS(gBS->CloseEvent(ev), EFI_SUCCESS, L"CloseEvent: timer event");
}

/* (e) WaitForEvent on a plain timer event. */
static void test_wait_for_timer(void)
{
    EFI_EVENT ev = NULL;
    EFI_STATUS status;
    UINTN index = 99;

    status = gBS->CreateEvent(EVT_TIMER, 0, NULL, NULL, &ev);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"CreateEvent: plain EVT_TIMER"))
        return;
    status = gBS->SetTimer(ev, TimerRelative, 50000); /* 5 ms */
    CHECK_STATUS(status, EFI_SUCCESS, L"SetTimer: TimerRelative 5 ms");
    status = gBS->WaitForEvent(1, &ev, &index);
    CHECK_STATUS(status, EFI_SUCCESS, L"WaitForEvent: 5 ms timer -> EFI_SUCCESS");
    CHECK(index == 0, L"WaitForEvent: Index 0");
    gBS->CloseEvent(ev);
}

/* (f) and (g): two events in one group; closing one takes it out of the group. */
typedef struct {
    const CHAR16 *create, *signal, *both, *own, *close, *closed;
} GROUP_NAMES;

static void test_group(EFI_GUID *group, const GROUP_NAMES *names)
{
    static NOTE a, b;
    EFI_EVENT ea = NULL, eb = NULL;
    EFI_STATUS sa, sb;

    note_reset(&a);
    note_reset(&b);
    sa = gBS->CreateEventEx(EVT_NOTIFY_SIGNAL, TPL_CALLBACK, record, &a, group, &ea);
    sb = gBS->CreateEventEx(EVT_NOTIFY_SIGNAL, TPL_CALLBACK, record, &b, group, &eb);
    if (!CHECK(sa == EFI_SUCCESS && sb == EFI_SUCCESS, names->create)) {
        if (sa == EFI_SUCCESS)
            gBS->CloseEvent(ea);
        if (sb == EFI_SUCCESS)
            gBS->CloseEvent(eb);
        return;
    }
    CHECK_STATUS(gBS->SignalEvent(ea), EFI_SUCCESS, names->signal);
    if (a.count != 1 || b.count != 1) {
        print_count(L"signaled event's notifications:", a.count);
        print_count(L"other event's notifications:", b.count);
    }
    CHECK(a.count == 1 && b.count == 1, names->both);
    CHECK(b.event == eb && b.context == &b, names->own);

    if (names->closed) {
        a.count = b.count = 0;
        CHECK_STATUS(gBS->CloseEvent(eb), EFI_SUCCESS, names->close);
        eb = NULL;
        gBS->SignalEvent(ea);
        CHECK(a.count == 1 && b.count == 0, names->closed);
    }
    gBS->CloseEvent(ea);
    if (eb)
        gBS->CloseEvent(eb);
}

static const GROUP_NAMES made_up_names = {
    L"CreateEventEx: two events in a made-up group",
    L"SignalEvent: member of a made-up group",
    L"SignalEvent: one member of a made-up group runs both notify functions",
    L"SignalEvent: made-up group: the other member gets its own Event and Context",
    L"CloseEvent: member of a made-up group",
    L"CloseEvent: a closed event's notify function no longer runs when its group is signaled",
};
static const GROUP_NAMES ready_to_boot_names = {
    L"CreateEventEx: two events in EFI_EVENT_GROUP_READY_TO_BOOT",
    L"SignalEvent: member of READY_TO_BOOT",
    L"SignalEvent: one member of READY_TO_BOOT runs both notify functions",
    L"SignalEvent: READY_TO_BOOT: the other member gets its own Event and Context",
    NULL,
    NULL,
};

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    print(L"events: notify functions, TPLs, timers, event groups\r\n");
    test_signal();
    test_wait_notify();
    test_timer_notify();
    test_wait_for_timer();
    test_group(&made_up_group, &made_up_names);
    test_group(&ready_to_boot_group, &ready_to_boot_names);
    return lib_done();
}
