/*
 * ovmf_runner: a validation helper, not a test program for efistub.
 * Booted by run-ovmf.sh as EFI/BOOT/BOOTX64.EFI on real firmware (OVMF), it
 * loads each guest program from \EFI\efistub\NAME.efi on the same drive with
 * LoadImage + StartImage and prints what StartImage returned, including the
 * ExitData of exit.efi, so the programs' return codes are checked too:
 *   RESULT <name> status=<hex> exitdatasize=<n> exitdata=<string>
 */
#include "lib.h"

static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
static EFI_GUID device_path_guid = EFI_DEVICE_PATH_PROTOCOL_GUID;

static const CHAR16 *const programs[] = {
    L"hello", L"memory", L"protocols", L"misc", L"variables", L"reloc", L"exit",
};

static UINTN node_len(const EFI_DEVICE_PATH_PROTOCOL *n)
{
    return n->Length[0] | ((UINTN)n->Length[1] << 8);
}

/* The device's path with a file path node for \EFI\efistub\<name>.efi appended. */
static EFI_DEVICE_PATH_PROTOCOL *file_path(EFI_DEVICE_PATH_PROTOCOL *dev, const CHAR16 *name)
{
    static const CHAR16 dir[] = L"\\EFI\\efistub\\";
    static const CHAR16 ext[] = L".efi";
    const EFI_DEVICE_PATH_PROTOCOL *n = dev;
    UINTN dev_len = 0, path_chars, node, i;
    UINT8 *buf;
    CHAR16 *p;
    EFI_DEVICE_PATH_PROTOCOL *fp, *end;

    while (!(n->Type == END_DEVICE_PATH_TYPE && n->SubType == END_ENTIRE_DEVICE_PATH_SUBTYPE)) {
        dev_len += node_len(n);
        n = (const EFI_DEVICE_PATH_PROTOCOL *)((const UINT8 *)n + node_len(n));
    }
    path_chars = strlen16(dir) + strlen16(name) + strlen16(ext) + 1;
    node = sizeof(EFI_DEVICE_PATH_PROTOCOL) + path_chars * sizeof(CHAR16);
    if (gBS->AllocatePool(EfiLoaderData, dev_len + node + sizeof(EFI_DEVICE_PATH_PROTOCOL),
                          (VOID **)&buf) != EFI_SUCCESS)
        return NULL;
    gBS->CopyMem(buf, dev, dev_len);
    fp = (EFI_DEVICE_PATH_PROTOCOL *)(buf + dev_len);
    fp->Type = MEDIA_DEVICE_PATH;
    fp->SubType = 0x04; /* MEDIA_FILEPATH_DP */
    fp->Length[0] = (UINT8)node;
    fp->Length[1] = (UINT8)(node >> 8);
    p = (CHAR16 *)((UINT8 *)fp + sizeof(EFI_DEVICE_PATH_PROTOCOL));
    for (i = 0; dir[i]; i++)
        *p++ = dir[i];
    for (i = 0; name[i]; i++)
        *p++ = name[i];
    for (i = 0; ext[i]; i++)
        *p++ = ext[i];
    *p = 0;
    end = (EFI_DEVICE_PATH_PROTOCOL *)((UINT8 *)fp + node);
    end->Type = END_DEVICE_PATH_TYPE;
    end->SubType = END_ENTIRE_DEVICE_PATH_SUBTYPE;
    end->Length[0] = sizeof(EFI_DEVICE_PATH_PROTOCOL);
    end->Length[1] = 0;
    return (EFI_DEVICE_PATH_PROTOCOL *)buf;
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_LOADED_IMAGE_PROTOCOL *li = NULL;
    EFI_DEVICE_PATH_PROTOCOL *dev = NULL, *path;
    EFI_HANDLE child;
    EFI_STATUS status;
    UINTN i, exit_size;
    CHAR16 *exit_data;

    lib_init(image, st);
    if (gBS->HandleProtocol(image, &loaded_image_guid, (VOID **)&li) != EFI_SUCCESS ||
        gBS->HandleProtocol(li->DeviceHandle, &device_path_guid, (VOID **)&dev) != EFI_SUCCESS) {
        print(L"RUNNER cannot find its own device\r\n");
        return EFI_ABORTED;
    }
    gBS->SetWatchdogTimer(0, 0, 0, NULL);
    for (i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
        path = file_path(dev, programs[i]);
        child = NULL;
        status = gBS->LoadImage(FALSE, image, path, NULL, 0, &child);
        if (status == EFI_SUCCESS) {
            exit_size = 0;
            exit_data = NULL;
            status = gBS->StartImage(child, &exit_size, &exit_data);
            print(L"RESULT ");
            print(programs[i]);
            print(L" status=");
            print_status(status);
            print(L" exitdatasize=");
            print_dec(exit_size);
            print(L" exitdata=");
            if (exit_data) {
                print(exit_data);
                gBS->FreePool(exit_data);
            }
            print(L"\r\n");
        } else {
            print(L"RESULT ");
            print(programs[i]);
            print(L" loadimage-failed=");
            print_status(status);
            print(L"\r\n");
        }
        gBS->FreePool(path);
    }
    print(L"RUNNER finished\r\n");
    return EFI_SUCCESS;
}
