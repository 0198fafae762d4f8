/* hello: the smallest guest. Prints one line through ConOut and returns EFI_SUCCESS. */
#include "efi.h"

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    (void)image;
    st->ConOut->OutputString(st->ConOut, L"Hello from efistub guest\r\n");
    return EFI_SUCCESS;
}
