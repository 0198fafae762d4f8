/*
 * exit: leaves through BS->Exit() instead of returning.
 * ExitStatus is EFI_INVALID_PARAMETER and ExitData a pool-allocated UCS-2
 * string, L"exit-data-marker" (with its terminator), as the spec requires of
 * ExitData (it must come from AllocatePool; the caller of StartImage frees it).
 * Exit must not return: if it does, the program prints FAIL.
 */
#include "lib.h"

static const CHAR16 marker[] = L"exit-data-marker";

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    CHAR16 *data = NULL;
    UINTN size = sizeof(marker); /* bytes, including the null terminator */
    EFI_STATUS status;

    lib_init(image, st);
    status = gBS->AllocatePool(EfiLoaderData, size, (VOID **)&data);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"exit: AllocatePool for ExitData"))
        return lib_done();
    gBS->CopyMem(data, (VOID *)marker, size);
    print(L"exit: calling Exit(EFI_INVALID_PARAMETER, exit-data-marker)\r\n");
    status = gBS->Exit(image, EFI_INVALID_PARAMETER, size, data);
    /* Not reached on a conforming firmware. */
    print(L"  note: Exit returned ");
    print_status(status);
    print(L"\r\n");
    CHECK(0, L"exit: Exit does not return");
    return lib_done();
}
