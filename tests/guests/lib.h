/*
 * Tiny freestanding helpers shared by efistub's guest test programs.
 * Each program is one translation unit that includes this file once.
 *
 * Output protocol (what efistub's tests and the OVMF validation grep for):
 *   "PASS <name>\r\n" or "FAIL <name>\r\n" for each check, then
 *   "DONE <n> failures\r\n"; the program returns EFI_SUCCESS when n == 0,
 *   else EFI_ABORTED.
 */
#ifndef EFISTUB_GUEST_LIB_H
#define EFISTUB_GUEST_LIB_H

#include "efi.h"

static EFI_HANDLE gImage;
static EFI_SYSTEM_TABLE *gST;
static EFI_BOOT_SERVICES *gBS;
static EFI_RUNTIME_SERVICES *gRT;
static UINTN gFailures;

/* The compiler may emit calls to these for struct copies and zeroing. */
void *memset(void *dst, int value, UINTN n)
{
    volatile UINT8 *d = dst;
    while (n--)
        *d++ = (UINT8)value;
    return dst;
}

void *memcpy(void *dst, const void *src, UINTN n)
{
    volatile UINT8 *d = dst;
    const volatile UINT8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, UINTN n)
{
    volatile UINT8 *d = dst;
    const volatile UINT8 *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        d += n;
        s += n;
        while (n--)
            *--d = *--s;
    }
    return dst;
}

int memcmp(const void *a, const void *b, UINTN n)
{
    const UINT8 *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

static UINTN strlen16(const CHAR16 *s)
{
    UINTN n = 0;
    while (s[n])
        n++;
    return n;
}

static int strcmp16(const CHAR16 *a, const CHAR16 *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (int)*a - (int)*b;
}

static int guid_eq(const EFI_GUID *a, const EFI_GUID *b)
{
    return memcmp(a, b, sizeof(EFI_GUID)) == 0;
}

static void print(const CHAR16 *s)
{
    gST->ConOut->OutputString(gST->ConOut, (CHAR16 *)s);
}

static void print_hex(UINT64 v)
{
    CHAR16 buf[19];
    static const CHAR16 digits[] = L"0123456789abcdef";
    int i;
    buf[0] = L'0';
    buf[1] = L'x';
    for (i = 0; i < 16; i++)
        buf[2 + i] = digits[(v >> (60 - 4 * i)) & 0xf];
    buf[18] = 0;
    print(buf);
}

static void print_dec(UINT64 v)
{
    CHAR16 buf[21];
    int i = 20;
    buf[i] = 0;
    do {
        buf[--i] = (CHAR16)(L'0' + v % 10);
        v /= 10;
    } while (v);
    print(&buf[i]);
}

static int check(int ok, const CHAR16 *name)
{
    print(ok ? L"PASS " : L"FAIL ");
    print(name);
    print(L"\r\n");
    if (!ok)
        gFailures++;
    return ok;
}

#define CHECK(cond, name) check(!!(cond), name)

/* A status check that also prints what came back when it fails. */
static int check_status(EFI_STATUS got, EFI_STATUS want, const CHAR16 *name)
{
    if (got == want)
        return check(1, name);
    print(L"  note: status ");
    print_hex(got);
    print(L", expected ");
    print_hex(want);
    print(L"\r\n");
    return check(0, name);
}

#define CHECK_STATUS(got, want, name) check_status((got), (want), name)

static void lib_init(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    gImage = image;
    gST = st;
    gBS = st->BootServices;
    gRT = st->RuntimeServices;
    gFailures = 0;
}

static EFI_STATUS lib_done(void)
{
    print(L"DONE ");
    print_dec(gFailures);
    print(L" failures\r\n");
    return gFailures ? EFI_ABORTED : EFI_SUCCESS;
}

#endif
