/*
 * ebs: the events ExitBootServices signals (UEFI 2.10 7.1 and 7.4).
 *
 *   fn1: CreateEvent(EVT_SIGNAL_EXIT_BOOT_SERVICES, TPL_NOTIFY)
 *   fn2: CreateEventEx(EVT_NOTIFY_SIGNAL, TPL_NOTIFY, EFI_EVENT_GROUP_EXIT_BOOT_SERVICES)
 *   fn3: CreateEventEx(EVT_NOTIFY_SIGNAL, TPL_NOTIFY, EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES)
 *
 * The notify functions only append their number to a global array. Then the
 * program gets the memory map and calls ExitBootServices (once more with a fresh
 * map if the first call gives EFI_INVALID_PARAMETER). ConOut is gone after that,
 * so the verdict goes out through ResetSystem(EfiResetShutdown, status, size,
 * ResetData) with ResetData a UCS-2 string (see README.md):
 *
 *   ebs: before=<fn3 runs> exit=<fn1 runs + fn2 runs> order=<numbers,comma-separated> PASS|FAIL
 *
 * PASS when nothing ran before ExitBootServices was called, fn1 and fn2 ran
 * exactly once each, fn3 ran at least once (once per ExitBootServices call is
 * allowed: EDK2 signals BEFORE_EXIT_BOOT_SERVICES on each call), every run of
 * fn3 came before fn1 and fn2, and ExitBootServices succeeded. ResetStatus is
 * EFI_SUCCESS on PASS, else EFI_ABORTED, or ExitBootServices' error status if it
 * never succeeded (then " ebs-status=0x..." is appended before the verdict).
 */
#include "lib.h"

static EFI_GUID exit_bs_group = EFI_EVENT_GROUP_EXIT_BOOT_SERVICES;
static EFI_GUID before_exit_bs_group = EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES;

#define MAX_RUNS 16
static volatile UINTN runs;
static volatile UINT8 order[MAX_RUNS];

/* Context: the function's number (1, 2 or 3), in a static so the pointer stays valid. */
static UINT8 id1 = 1, id2 = 2, id3 = 3;

static VOID EFIAPI record(EFI_EVENT event, VOID *context)
{
    (void)event;
    if (runs < MAX_RUNS)
        order[runs] = *(UINT8 *)context;
    runs++;
}

/* The ResetData string, built without boot services. */
static CHAR16 report[160];
static UINTN report_len;

static void put(const CHAR16 *s)
{
    while (*s && report_len + 1 < sizeof(report) / sizeof(report[0]))
        report[report_len++] = *s++;
    report[report_len] = 0;
}

static void put_dec(UINT64 v)
{
    CHAR16 buf[21];
    put(format_dec(buf, v));
}

static void put_hexn(UINTN v)
{
    CHAR16 buf[19];
    put(format_hex_digits(buf, v, (int)(2 * sizeof(UINTN))));
}

#ifdef EBS_SERIAL_REPORT
/*
 * Validation builds only (run-ovmf.sh compiles one; the committed images do not
 * have it): OVMF does not show ResetData, so the report also goes straight to
 * the serial port the firmware console used: COM1 on x86, the PL011 of QEMU's
 * virt machine on AArch64.
 */
static void serial_putc(CHAR16 c)
{
#if defined(__x86_64__) || defined(__i386__)
    UINT8 lsr;
    do
        __asm__ volatile("inb %1, %0" : "=a"(lsr) : "Nd"((UINT16)0x3FD));
    while (!(lsr & 0x20));
    __asm__ volatile("outb %0, %1" : : "a"((UINT8)c), "Nd"((UINT16)0x3F8));
#elif defined(__aarch64__)
    volatile UINT32 *pl011 = (volatile UINT32 *)0x09000000;
    while (pl011[0x18 / 4] & (1u << 5)) /* UARTFR.TXFF */
        ;
    pl011[0] = (UINT8)c;
#else
    (void)c;
#endif
}

static void serial_report(void)
{
    UINTN i;
    serial_putc(L'\r');
    serial_putc(L'\n');
    for (i = 0; i < report_len; i++)
        serial_putc(report[i]);
    serial_putc(L'\r');
    serial_putc(L'\n');
}
#endif

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_EVENT e1 = NULL, e2 = NULL, e3 = NULL;
    EFI_MEMORY_DESCRIPTOR *map = NULL;
    UINTN size = 0, key = 0, dsize = 0, i, runs_before, n1 = 0, n2 = 0, n3 = 0, last3 = 0, first12;
    UINT32 version = 0;
    EFI_STATUS status, ebs = EFI_NOT_READY;
    int ok;

    lib_init(image, st);
    print(L"ebs: ExitBootServices events; the verdict goes out as ResetSystem's ResetData\r\n");
    status = gBS->CreateEvent(EVT_SIGNAL_EXIT_BOOT_SERVICES, TPL_NOTIFY, record, &id1, &e1);
    CHECK_STATUS(status, EFI_SUCCESS, L"CreateEvent: EVT_SIGNAL_EXIT_BOOT_SERVICES at TPL_NOTIFY");
    status = gBS->CreateEventEx(EVT_NOTIFY_SIGNAL, TPL_NOTIFY, record, &id2, &exit_bs_group, &e2);
    CHECK_STATUS(status, EFI_SUCCESS, L"CreateEventEx: EFI_EVENT_GROUP_EXIT_BOOT_SERVICES");
    status = gBS->CreateEventEx(EVT_NOTIFY_SIGNAL, TPL_NOTIFY, record, &id3, &before_exit_bs_group, &e3);
    CHECK_STATUS(status, EFI_SUCCESS, L"CreateEventEx: EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES");

    status = gBS->GetMemoryMap(&size, NULL, &key, &dsize, &version);
    size += 16 * dsize;
    if (status != EFI_BUFFER_TOO_SMALL ||
        gBS->AllocatePool(EfiLoaderData, size, (VOID **)&map) != EFI_SUCCESS) {
        CHECK(0, L"GetMemoryMap: room for the map");
        return lib_done();
    }
    print(L"ebs: calling ExitBootServices\r\n");
    runs_before = runs;
    for (i = 0; i < 2; i++) {
        UINTN map_size = size;
        status = gBS->GetMemoryMap(&map_size, map, &key, &dsize, &version);
        if (status != EFI_SUCCESS) {
            ebs = status;
            break;
        }
        ebs = gBS->ExitBootServices(image, key);
        if (ebs != EFI_INVALID_PARAMETER)
            break; /* done, or an error a fresh map does not cure */
    }

    /* From here on: no boot services, no ConOut. */
    for (i = 0; i < runs && i < MAX_RUNS; i++) {
        if (order[i] == 1)
            n1++;
        else if (order[i] == 2)
            n2++;
        else if (order[i] == 3) {
            n3++;
            last3 = i;
        }
    }
    first12 = MAX_RUNS;
    for (i = 0; i < runs && i < MAX_RUNS; i++)
        if (order[i] == 1 || order[i] == 2) {
            first12 = i;
            break;
        }
    ok = ebs == EFI_SUCCESS && runs_before == 0 && runs <= MAX_RUNS && n1 == 1 && n2 == 1 &&
         n3 >= 1 && last3 < first12;

    put(L"ebs: before=");
    put_dec(n3);
    put(L" exit=");
    put_dec(n1 + n2);
    put(L" order=");
    for (i = 0; i < runs && i < MAX_RUNS; i++) {
        if (i)
            put(L",");
        put_dec(order[i]);
    }
    if (ebs != EFI_SUCCESS) {
        put(L" ebs-status=");
        put_hexn(ebs);
    }
    put(ok ? L" PASS" : L" FAIL");
#ifdef EBS_SERIAL_REPORT
    serial_report();
#endif
    gRT->ResetSystem(EfiResetShutdown, ok ? EFI_SUCCESS : ebs != EFI_SUCCESS ? ebs : EFI_ABORTED,
                     (report_len + 1) * sizeof(CHAR16), report);
    /* ResetSystem does not return. */
    return EFI_ABORTED;
}
