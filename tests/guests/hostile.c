/*
 * hostile: the services efistub handles in C (CopyMem, SetMem, CalculateCrc32,
 * RaiseTPL, RestoreTPL, Stall, GetNextMonotonicCount) called with hostile
 * arguments: huge sizes, NULL and unmapped pointers, ranges across the top of
 * RAM, overlap, zero lengths, out-of-range TPLs. For efistub only: never run it
 * on real firmware (a 2^40-byte CopyMem there overwrites all of memory).
 *
 * It has no opinion on most outcomes (UEFI leaves them undefined): it prints
 * one line per call, so that the console describes every outcome and
 * efistub's two dispatch paths (native C and Python) can be compared line by
 * line. Each line is printed in two parts, the call before it is made and the
 * outcome after, so a call that ends the run is visible as the last, unfinished
 * line:
 *
 *   "  info: <n> <Service>(<arguments>) -> <outcome>"
 *
 * where <n> numbers the calls from 1 and <outcome> is "status 0x...", or for
 * the void services "returned" and what the destination holds. A few results
 * the spec does fix are PASS/FAIL checks. It ends with "DONE <n> failures".
 */
#include "lib.h"

#if __SIZEOF_POINTER__ == 8
#define HUGE ((UINTN)1 << 40)
#define UNMAPPED ((UINTN)0xdead00000000ULL)
#define HUGE_TEXT L"2^40"
#define UNMAPPED_TEXT L"0xdead00000000"
#else
#define HUGE ((UINTN)0xFFFFF000u)
#define UNMAPPED ((UINTN)0xFFFF0000u)
#define HUGE_TEXT L"0xFFFFF000"
#define UNMAPPED_TEXT L"0xFFFF0000"
#endif
#define ALL_ONES ((UINTN)-1)

static UINT8 a[64], b[64];
static UINTN call_number;
static UINT8 *top8; /* 8 bytes below the top of RAM */

static void begin(const CHAR16 *call)
{
    call_number++;
    print(L"  info: ");
    print_dec(call_number);
    print(L" ");
    print(call);
    print(L" -> ");
}

static void end_status(EFI_STATUS s)
{
    print(L"status ");
    print_status(s);
    print(L"\r\n");
}

/* The first 8 bytes at p, as one little-endian number. */
static UINT64 first8(const UINT8 *p)
{
    UINT64 v = 0;
    int i;
    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void end_bytes(const CHAR16 *what, const UINT8 *p)
{
    print(L"returned, ");
    print(what);
    print(L"[0..7] ");
    print_hex(first8(p));
    print(L"\r\n");
}

static void end_returned(void)
{
    print(L"returned\r\n");
}

static void fill(void)
{
    UINTN i;
    for (i = 0; i < sizeof(a); i++) {
        a[i] = (UINT8)i;
        b[i] = (UINT8)(0xb0 + i);
    }
}

/* The highest end of a RAM descriptor (not MMIO) in the memory map. */
static UINT64 top_of_ram(void)
{
    UINTN size = 0, key, dsize = 0, i;
    UINT32 version;
    UINT8 *buf = NULL;
    UINT64 top = 0;
    EFI_STATUS status;

    status = gBS->GetMemoryMap(&size, NULL, &key, &dsize, &version);
    if (status != EFI_BUFFER_TOO_SMALL || dsize == 0)
        return 0;
    size += 8 * dsize;
    if (gBS->AllocatePool(EfiLoaderData, size, (VOID **)&buf) != EFI_SUCCESS)
        return 0;
    if (gBS->GetMemoryMap(&size, (EFI_MEMORY_DESCRIPTOR *)buf, &key, &dsize, &version) == EFI_SUCCESS) {
        for (i = 0; i + dsize <= size; i += dsize) {
            EFI_MEMORY_DESCRIPTOR *d = (EFI_MEMORY_DESCRIPTOR *)(buf + i);
            UINT64 end = d->PhysicalStart + d->NumberOfPages * EFI_PAGE_SIZE;
            if (d->Type == EfiMemoryMappedIO || d->Type == EfiMemoryMappedIOPortSpace)
                continue;
            if (end > top)
                top = end;
        }
    }
    gBS->FreePool(buf);
    return top;
}

static void test_copymem(void)
{
    fill();
    begin(L"CopyMem(a, b, 0)");
    gBS->CopyMem(a, b, 0);
    end_bytes(L"a", a);
    begin(L"CopyMem(NULL, b, 0)");
    gBS->CopyMem(NULL, b, 0);
    end_returned();
    begin(L"CopyMem(a, NULL, 0)");
    gBS->CopyMem(a, NULL, 0);
    end_bytes(L"a", a);
    begin(L"CopyMem(a+8, a, 32) overlap, destination above");
    gBS->CopyMem(a + 8, a, 32);
    end_bytes(L"a+8", a + 8);
    fill();
    begin(L"CopyMem(a, a+8, 32) overlap, destination below");
    gBS->CopyMem(a, a + 8, 32);
    end_bytes(L"a", a);
    fill();
    begin(L"CopyMem(a, a, 32) same buffer");
    gBS->CopyMem(a, a, 32);
    end_bytes(L"a", a);
    fill();
    begin(L"CopyMem(a, NULL, 16)");
    gBS->CopyMem(a, NULL, 16);
    end_bytes(L"a", a);
    fill();
    begin(L"CopyMem(NULL, b, 16)");
    gBS->CopyMem(NULL, b, 16);
    end_returned();
    fill();
    begin(L"CopyMem(a, " UNMAPPED_TEXT L", 16)");
    gBS->CopyMem(a, (VOID *)UNMAPPED, 16);
    end_bytes(L"a", a);
    fill();
    begin(L"CopyMem(" UNMAPPED_TEXT L", b, 16)");
    gBS->CopyMem((VOID *)UNMAPPED, b, 16);
    end_returned();
    fill();
    begin(L"CopyMem(a, b, " HUGE_TEXT L")");
    gBS->CopyMem(a, b, HUGE);
    end_bytes(L"a", a);
    fill();
    begin(L"CopyMem(a, b, (UINTN)-1)");
    gBS->CopyMem(a, b, ALL_ONES);
    end_bytes(L"a", a);
    fill();
    begin(L"CopyMem(a+8, a, (UINTN)-1) overlap, destination above");
    gBS->CopyMem(a + 8, a, ALL_ONES);
    end_bytes(L"a", a);
    fill();
    if (top8) {
        begin(L"CopyMem(top-8, b, 16) across the top of RAM");
        gBS->CopyMem(top8, b, 16);
        end_bytes(L"top-8", top8);
        begin(L"CopyMem(a, top-8, 16) across the top of RAM");
        gBS->CopyMem(a, top8, 16);
        end_bytes(L"a", a);
        fill();
    }
}

static void test_setmem(void)
{
    fill();
    begin(L"SetMem(a, 0, 0x5a)");
    gBS->SetMem(a, 0, 0x5a);
    end_bytes(L"a", a);
    begin(L"SetMem(NULL, 0, 0x5a)");
    gBS->SetMem(NULL, 0, 0x5a);
    end_returned();
    begin(L"SetMem(NULL, 16, 0x5a)");
    gBS->SetMem(NULL, 16, 0x5a);
    end_returned();
    begin(L"SetMem(" UNMAPPED_TEXT L", 16, 0x5a)");
    gBS->SetMem((VOID *)UNMAPPED, 16, 0x5a);
    end_returned();
    begin(L"SetMem(a, " HUGE_TEXT L", 0x5a)");
    gBS->SetMem(a, HUGE, 0x5a);
    end_bytes(L"a", a);
    fill();
    begin(L"SetMem(a, (UINTN)-1, 0x5a)");
    gBS->SetMem(a, ALL_ONES, 0x5a);
    end_bytes(L"a", a);
    fill();
    if (top8) {
        begin(L"SetMem(top-8, 16, 0x5a) across the top of RAM");
        gBS->SetMem(top8, 16, 0x5a);
        end_bytes(L"top-8", top8);
    }
}

static void test_crc(void)
{
    static const CHAR8 text[] = "123456789";
    UINT32 crc;
    EFI_STATUS status;

    crc = 0x11111111;
    begin(L"CalculateCrc32(NULL, 16, &crc)");
    status = gBS->CalculateCrc32(NULL, 16, &crc);
    end_status(status);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"CalculateCrc32: NULL Data -> EFI_INVALID_PARAMETER");
    begin(L"CalculateCrc32(text, 0, &crc)");
    status = gBS->CalculateCrc32((VOID *)text, 0, &crc);
    end_status(status);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"CalculateCrc32: DataSize 0 -> EFI_INVALID_PARAMETER");
    begin(L"CalculateCrc32(text, 9, NULL)");
    status = gBS->CalculateCrc32((VOID *)text, 9, NULL);
    end_status(status);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"CalculateCrc32: NULL Crc32 -> EFI_INVALID_PARAMETER");
    begin(L"CalculateCrc32(text, 9, " UNMAPPED_TEXT L")");
    status = gBS->CalculateCrc32((VOID *)text, 9, (UINT32 *)UNMAPPED);
    end_status(status);
    crc = 0x11111111;
    begin(L"CalculateCrc32(" UNMAPPED_TEXT L", 16, &crc)");
    status = gBS->CalculateCrc32((VOID *)UNMAPPED, 16, &crc);
    print(L"status ");
    print_status(status);
    print(L", crc ");
    print_hex_digits(crc, 8);
    print(L"\r\n");
    crc = 0x11111111;
    begin(L"CalculateCrc32(a, " HUGE_TEXT L", &crc)");
    status = gBS->CalculateCrc32(a, HUGE, &crc);
    print(L"status ");
    print_status(status);
    print(L", crc ");
    print_hex_digits(crc, 8);
    print(L"\r\n");
    crc = 0x11111111;
    begin(L"CalculateCrc32(a, (UINTN)-1, &crc)");
    status = gBS->CalculateCrc32(a, ALL_ONES, &crc);
    print(L"status ");
    print_status(status);
    print(L", crc ");
    print_hex_digits(crc, 8);
    print(L"\r\n");
    if (top8) {
        crc = 0x11111111;
        begin(L"CalculateCrc32(top-8, 16, &crc) across the top of RAM");
        status = gBS->CalculateCrc32(top8, 16, &crc);
        print(L"status ");
        print_status(status);
        print(L", crc ");
        print_hex_digits(crc, 8);
        print(L"\r\n");
    }
}

static void raise_and_restore(EFI_TPL tpl, const CHAR16 *call)
{
    EFI_TPL old, now;

    begin(call);
    old = gBS->RaiseTPL(tpl);
    print(L"returned ");
    print_dec(old);
    print(L"\r\n");
    begin(L"RestoreTPL(that value)");
    gBS->RestoreTPL(old);
    now = current_tpl();
    print(L"returned, TPL now ");
    print_dec(now);
    print(L"\r\n");
    if (now != TPL_APPLICATION)
        gBS->RestoreTPL(TPL_APPLICATION); /* put it back for the rest of the program */
}

static void test_tpl(void)
{
    raise_and_restore(0, L"RaiseTPL(0)");
    raise_and_restore(64, L"RaiseTPL(64)");
    CHECK(current_tpl() == TPL_APPLICATION, L"TPL: back at TPL_APPLICATION");
}

static void test_stall(void)
{
    begin(L"Stall(0)");
    end_status(gBS->Stall(0));
    begin(L"Stall((UINTN)-1 >> 8)");
    end_status(gBS->Stall(ALL_ONES >> 8));
}

static void test_monotonic(void)
{
    EFI_STATUS status;

    begin(L"GetNextMonotonicCount(NULL)");
    status = gBS->GetNextMonotonicCount(NULL);
    end_status(status);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"GetNextMonotonicCount: NULL -> EFI_INVALID_PARAMETER");
    begin(L"GetNextMonotonicCount(" UNMAPPED_TEXT L")");
    end_status(gBS->GetNextMonotonicCount((UINT64 *)UNMAPPED));
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    UINT64 top;

    lib_init(image, st);
    print(L"hostile: C-handled services with hostile arguments (efistub only)\r\n");
    top = top_of_ram();
    print(L"  info: top of RAM ");
    print_hex(top);
    print(L"\r\n");
    /* Only if top-8 is addressable as a pointer (not on IA32 with RAM up to 4 GiB and beyond). */
    if (top >= 8 && top - 8 <= (UINT64)ALL_ONES)
        top8 = (UINT8 *)(UINTN)(top - 8);
    else
        print(L"  info: top of RAM - 8 is not addressable: no across-the-top calls\r\n");
    test_copymem();
    test_setmem();
    test_crc();
    test_tpl();
    test_stall();
    test_monotonic();
    return lib_done();
}
