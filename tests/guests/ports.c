/*
 * ports (x86_64 and IA32 only): port I/O and the TSC, the way boot loaders use them.
 *
 *   1. 1000 x `in al, 0x61` between two RDTSC reads: the TSC delta.
 *   2. GRUB-style PIT calibration (grub-core/kern/i386/tsc_pit.c): gate of PIT
 *      channel 2 off and speaker off through port 0x61, channel 2 in mode 0 with
 *      lobyte/hibyte access (0xB0 to port 0x43), reload value 0xFFFF (low, then
 *      high byte to port 0x42), gate on (port 0x61 bit 0 set, bit 1 clear), RDTSC,
 *      poll port 0x61 until bit 5 (OUT2) is set or 10^7 polls, RDTSC.
 *   3. A 1 ms relative timer event and WaitForEvent between two RDTSC reads.
 *
 * The numbers are "  info:" lines; the checks are that OUT2 went high and that
 * the TSC advanced across the PIT wait.
 */
#include "lib.h"

#if !defined(__x86_64__) && !defined(__i386__)
#error "ports.c is for x86_64 and IA32 only"
#endif

#define PIT_CHANNEL2 0x42
#define PIT_COMMAND 0x43
#define SPEAKER 0x61
#define SPEAKER_GATE2 0x01 /* bit 0: PIT channel 2 gate */
#define SPEAKER_DATA 0x02  /* bit 1: speaker data enable */
#define SPEAKER_OUT2 0x20  /* bit 5: PIT channel 2 output */
#define MAX_POLLS 10000000u
#define PIT_HZ 1193182u

static inline UINT8 inb(UINT16 port)
{
    UINT8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void outb(UINT16 port, UINT8 v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline UINT64 rdtsc(void)
{
    UINT32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((UINT64)hi << 32) | lo;
}

static void info_dec(const CHAR16 *what, UINT64 v)
{
    print(L"  info: ");
    print(what);
    print_dec(v);
    print(L"\r\n");
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    UINT64 t0, t1, pit_delta;
    UINT32 polls = 0, i;
    UINT8 v = 0;
    int high;
    EFI_EVENT ev = NULL;
    EFI_STATUS status;
    UINTN index = 0;

    lib_init(image, st);
    print(L"ports: port 0x61, PIT channel 2 and the TSC\r\n");

    t0 = rdtsc();
    for (i = 0; i < 1000; i++)
        v ^= inb(SPEAKER);
    t1 = rdtsc();
    (void)v;
    info_dec(L"1000 x in 0x61: TSC delta ", t1 - t0);

    /* GRUB's grub_pit_wait(0xffff). */
    outb(SPEAKER, inb(SPEAKER) & (UINT8)~(SPEAKER_DATA | SPEAKER_GATE2));
    outb(PIT_COMMAND, 0xB0); /* channel 2, lobyte/hibyte, mode 0, binary */
    outb(PIT_CHANNEL2, 0xFF);
    outb(PIT_CHANNEL2, 0xFF);
    outb(SPEAKER, (inb(SPEAKER) & (UINT8)~SPEAKER_DATA) | SPEAKER_GATE2);
    t0 = rdtsc();
    high = 0;
    while (polls < MAX_POLLS) {
        polls++;
        if (inb(SPEAKER) & SPEAKER_OUT2) {
            high = 1;
            break;
        }
    }
    t1 = rdtsc();
    pit_delta = t1 - t0;
    /* Gate and speaker off again, as GRUB leaves them. */
    outb(SPEAKER, inb(SPEAKER) & (UINT8)~(SPEAKER_DATA | SPEAKER_GATE2));
    info_dec(L"PIT channel 2, 0xFFFF ticks: polls ", polls);
    info_dec(L"PIT channel 2, 0xFFFF ticks: TSC delta ", pit_delta);
    if (high && t1 > t0) {
        /* TSC ticks per PIT period of 65535 / 1193182 s, in kHz. */
        UINT64 per_tick = udiv64_small(pit_delta, 65535, NULL);
        info_dec(L"TSC frequency from the PIT (kHz): ", udiv64_small(per_tick * PIT_HZ, 1000, NULL));
    }
    CHECK(high, L"ports: OUT2 went high");
    CHECK(t1 > t0, L"ports: TSC advanced");

    status = gBS->CreateEvent(EVT_TIMER, 0, NULL, NULL, &ev);
    if (status == EFI_SUCCESS)
        status = gBS->SetTimer(ev, TimerRelative, 10000); /* 1 ms in 100 ns units */
    t0 = rdtsc();
    if (status == EFI_SUCCESS)
        status = gBS->WaitForEvent(1, &ev, &index);
    t1 = rdtsc();
    print(L"  info: 1 ms timer + WaitForEvent: status ");
    print_status(status);
    print(L", TSC delta ");
    print_dec(t1 - t0);
    print(L"\r\n");
    if (ev)
        gBS->CloseEvent(ev);
    return lib_done();
}
