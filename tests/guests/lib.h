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

/* dst = a followed by b, at most `size` characters with the NUL */
static void cat16(CHAR16 *dst, UINTN size, const CHAR16 *a, const CHAR16 *b)
{
    UINTN n = 0;
    for (; *a && n + 1 < size; a++)
        dst[n++] = *a;
    for (; *b && n + 1 < size; b++)
        dst[n++] = *b;
    dst[n] = 0;
}

/* An ASCII (CHAR8) string comparison, as strcmp. */
static int strcmp8(const CHAR8 *a, const CHAR8 *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (int)(UINT8)*a - (int)(UINT8)*b;
}

static int guid_eq(const EFI_GUID *a, const EFI_GUID *b)
{
    return memcmp(a, b, sizeof(EFI_GUID)) == 0;
}

/* A device path node's Length: the whole node's bytes, its header included. */
static UINTN dp_node_length(const EFI_DEVICE_PATH_PROTOCOL *node)
{
    return (UINTN)node->Length[0] | ((UINTN)node->Length[1] << 8);
}

/* The bytes of the device path at path, its End node included: 0 when a node is shorter than
   its header or no End node comes within 4096 bytes. */
static UINTN dp_path_size(const EFI_DEVICE_PATH_PROTOCOL *path)
{
    const UINT8 *p = (const UINT8 *)path;
    const EFI_DEVICE_PATH_PROTOCOL *node;
    UINTN size = 0, length;
    while (size + sizeof(EFI_DEVICE_PATH_PROTOCOL) <= 4096) {
        node = (const EFI_DEVICE_PATH_PROTOCOL *)(p + size);
        length = dp_node_length(node);
        if (length < sizeof(EFI_DEVICE_PATH_PROTOCOL))
            return 0;
        size += length;
        if (node->Type == END_DEVICE_PATH_TYPE && node->SubType == END_ENTIRE_DEVICE_PATH_SUBTYPE)
            return size;
    }
    return 0;
}

/* Sets a node's header: its Type, SubType and Length (the whole node's bytes). */
static void dp_set_node(EFI_DEVICE_PATH_PROTOCOL *node, UINT8 type, UINT8 subtype, UINTN length)
{
    node->Type = type;
    node->SubType = subtype;
    node->Length[0] = (UINT8)(length & 0xff);
    node->Length[1] = (UINT8)(length >> 8);
}

/* The first `prefix` bytes of the device path dp (its nodes before End), a file path node with
   name, and End: a new path in pool memory, or NULL. */
static EFI_DEVICE_PATH_PROTOCOL *dp_append_file_node(const EFI_DEVICE_PATH_PROTOCOL *dp, UINTN prefix,
                                                     const CHAR16 *name)
{
    UINTN name_size = (strlen16(name) + 1) * sizeof(CHAR16);
    UINTN node_size = sizeof(EFI_DEVICE_PATH_PROTOCOL) + name_size;
    UINT8 *p = NULL;

    if (gBS->AllocatePool(EfiLoaderData, prefix + node_size + sizeof(EFI_DEVICE_PATH_PROTOCOL), (VOID **)&p) !=
        EFI_SUCCESS)
        return NULL;
    memcpy(p, dp, prefix);
    dp_set_node((EFI_DEVICE_PATH_PROTOCOL *)(p + prefix), MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP, node_size);
    memcpy(p + prefix + sizeof(EFI_DEVICE_PATH_PROTOCOL), name, name_size);
    dp_set_node((EFI_DEVICE_PATH_PROTOCOL *)(p + prefix + node_size), END_DEVICE_PATH_TYPE,
                END_ENTIRE_DEVICE_PATH_SUBTYPE, sizeof(EFI_DEVICE_PATH_PROTOCOL));
    return (EFI_DEVICE_PATH_PROTOCOL *)p;
}

/* A vendor-defined media device path: one node with its GUID, then the End node. */
typedef struct __attribute__((packed)) {
    EFI_DEVICE_PATH_PROTOCOL vendor;
    EFI_GUID guid;
    EFI_DEVICE_PATH_PROTOCOL end;
} VENDOR_MEDIA_PATH;

static void make_vendor_media_path(VENDOR_MEDIA_PATH *path, const EFI_GUID *guid)
{
    dp_set_node(&path->vendor, MEDIA_DEVICE_PATH, MEDIA_VENDOR_DP,
                sizeof(EFI_DEVICE_PATH_PROTOCOL) + sizeof(EFI_GUID));
    path->guid = *guid;
    dp_set_node(&path->end, END_DEVICE_PATH_TYPE, END_ENTIRE_DEVICE_PATH_SUBTYPE, sizeof(EFI_DEVICE_PATH_PROTOCOL));
}

/* The current TPL, probed as RaiseTPL(TPL_HIGH_LEVEL) + RestoreTPL. */
static EFI_TPL current_tpl(void)
{
    EFI_TPL old = gBS->RaiseTPL(TPL_HIGH_LEVEL);
    gBS->RestoreTPL(old);
    return old;
}

static void print(const CHAR16 *s)
{
    gST->ConOut->OutputString(gST->ConOut, (CHAR16 *)s);
}

/* "0x" and `digits` (at most 16) hex digits of v, in buf (19 characters) with a NUL. */
static CHAR16 *format_hex_digits(CHAR16 *buf, UINT64 v, int digits)
{
    static const CHAR16 hex[] = L"0123456789abcdef";
    int i;
    buf[0] = L'0';
    buf[1] = L'x';
    for (i = 0; i < digits; i++)
        buf[2 + i] = hex[(v >> (4 * (digits - 1 - i))) & 0xf];
    buf[2 + digits] = 0;
    return buf;
}

static void print_hex_digits(UINT64 v, int digits)
{
    CHAR16 buf[19];
    print(format_hex_digits(buf, v, digits));
}

/* A 64-bit value (a physical address, a UINT64 field): always 16 digits. */
static void print_hex(UINT64 v)
{
    print_hex_digits(v, 16);
}

/* A UINTN, a pointer or an EFI_STATUS: as many digits as UINTN has
   (16 on 64-bit targets, 8 on IA32, so EFI_NOT_FOUND prints as 0x8000000e). */
static void print_hexn(UINTN v)
{
    print_hex_digits(v, (int)(2 * sizeof(UINTN)));
}

#define print_status(s) print_hexn(s)
#define print_ptr(p) print_hexn((UINTN)(p))

/* n / d and n % d for a small divisor (d < 65536) with 32-bit divisions only:
   IA32 has no 64-bit divide instruction, and the compiler's helper for it
   (_aulldiv) is not linked into these freestanding programs. */
static UINT64 udiv64_small(UINT64 n, UINT32 d, UINT32 *rem)
{
    UINT64 q = 0;
    UINT32 r = 0, cur;
    int i;
    for (i = 3; i >= 0; i--) {
        cur = (r << 16) | (UINT32)((n >> (16 * i)) & 0xffff);
        q |= (UINT64)(cur / d) << (16 * i);
        r = cur % d;
    }
    if (rem)
        *rem = r;
    return q;
}

/* v in decimal, with a NUL, at the end of buf (21 characters); returns its first digit. */
static CHAR16 *format_dec(CHAR16 *buf, UINT64 v)
{
    UINT32 digit;
    int i = 20;
    buf[i] = 0;
    do {
        v = udiv64_small(v, 10, &digit);
        buf[--i] = (CHAR16)(L'0' + digit);
    } while (v);
    return &buf[i];
}

static void print_dec(UINT64 v)
{
    CHAR16 buf[21];
    print(format_dec(buf, v));
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
    print_status(got);
    print(L", expected ");
    print_status(want);
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
