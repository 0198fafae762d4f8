/*
 * needs: a program whose minimal service set is known, for `efistub minimize`.
 *
 * It needs AllocatePool and CopyMem: without either it returns EFI_LOAD_ERROR.
 * It calls GetVariable, LocateProtocol, SetWatchdogTimer and FreePool too, but
 * ignores how they fail. So the minimal set is exactly {AllocatePool, CopyMem}.
 */
#include "lib.h"

static EFI_GUID missing = {0x4e656564, 0x7300, 0x4d69, {0x6e, 0x69, 0x6d, 0x61, 0x6c, 0x53, 0x65, 0x74}};

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    UINT8 source[8] = {1, 2, 3, 4, 5, 6, 7, 8}, *buffer = NULL;
    UINT8 data[4];
    UINTN size = sizeof(data), i;
    VOID *interface;

    lib_init(image, st);
    gBS->SetWatchdogTimer(0, 0, 0, NULL);
    gRT->GetVariable(L"NeedsNothing", &missing, NULL, &size, data);
    gBS->LocateProtocol(&missing, NULL, &interface);
    if (gBS->AllocatePool(EfiLoaderData, sizeof(source), (VOID **)&buffer) != EFI_SUCCESS || !buffer)
        return EFI_LOAD_ERROR;
    for (i = 0; i < sizeof(source); i++)
        buffer[i] = 0;
    gBS->CopyMem(buffer, source, sizeof(source));
    for (i = 0; i < sizeof(source); i++)
        if (buffer[i] != source[i])
            return EFI_LOAD_ERROR;
    gBS->FreePool(buffer);
    print(L"needs: done\r\n");
    return EFI_SUCCESS;
}
