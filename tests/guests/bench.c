/*
 * bench: calls one service in a loop, for benchmarks/dispatch.py.
 *
 * LoadOptions (the efistub --cmdline) name the service and the count, such as
 * "copymem 100000" (CopyMem of 16 bytes, handled in C by the native trampoline)
 * or "getvariable 100000" (GetVariable of a missing variable, handled in Python).
 * "none N" runs the same loop without a call, to subtract the loop itself.
 */
#include "lib.h"

static EFI_GUID vendor = {0x2b0a8f43, 0x5bd7, 0x4c8e, {0x9d, 0x31, 0x0e, 0x62, 0x61, 0x6e, 0x63, 0x68}};

static UINT64 parse_count(const CHAR16 *s)
{
    UINT64 n = 0;
    while (*s && (*s < L'0' || *s > L'9'))
        s++;
    while (*s >= L'0' && *s <= L'9')
        n = n * 10 + (UINT64)(*s++ - L'0');
    return n;
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
    EFI_LOADED_IMAGE_PROTOCOL *li;
    UINT8 src[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, dst[16];
    UINTN size;
    UINT64 i, count;
    const CHAR16 *options;

    lib_init(image, st);
    if (gBS->HandleProtocol(image, &loaded_image_guid, (VOID **)&li) != EFI_SUCCESS || !li->LoadOptions)
        return EFI_INVALID_PARAMETER;
    options = li->LoadOptions;
    count = parse_count(options);
    if (options[0] == L'c') {
        for (i = 0; i < count; i++)
            gBS->CopyMem(dst, src, sizeof(src));
    } else if (options[0] == L'g') {
        for (i = 0; i < count; i++) {
            size = sizeof(dst);
            gRT->GetVariable(L"EfistubBenchMissing", &vendor, NULL, &size, dst);
        }
    } else {
        for (i = 0; i < count; i++)
            __asm__ volatile("" ::: "memory");
    }
    return EFI_SUCCESS;
}
