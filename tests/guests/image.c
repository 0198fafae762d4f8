/*
 * image: a boot chain parent (UEFI 2.10 7.4 image services, 13.2 LOAD_FILE2).
 *
 * It gets a child image's bytes the way the Linux EFI stub gets its initrd: a
 * LOAD_FILE2 handle on the vendor media device path LINUX_EFI_INITRD_MEDIA_GUID
 * (LocateDevicePath, HandleProtocol, LoadFile size probe, LoadFile into an
 * AllocatePool buffer). Then LoadImage from that buffer, checks the child's
 * LOADED_IMAGE, gives it LoadOptions L"child-options" as boot loaders do, and
 * StartImage. With exit.efi as the child (efistub --initrd exit.efi, or QEMU
 * -initrd exit.efi on OVMF) StartImage returns EFI_INVALID_PARAMETER with
 * ExitData L"exit-data-marker" ("PASS child-exit"); a child that returns
 * EFI_SUCCESS from its entry point without ExitData gives "PASS child-return".
 */
#include "lib.h"

static EFI_GUID load_file2_guid = EFI_LOAD_FILE2_PROTOCOL_GUID;
static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
static EFI_GUID initrd_media_guid = LINUX_EFI_INITRD_MEDIA_GUID;
/* A made-up protocol for a handle that is not an image. */
static EFI_GUID not_image_guid =
    { 0x6b1e4f0a, 0x3c27, 0x4d8e, { 0xa1, 0x5f, 0x92, 0x0c, 0x7d, 0x33, 0xe8, 0x61 } };
static UINT64 not_image_iface = 0x1a;

static CHAR16 child_options[] = L"child-options";
static const CHAR16 exit_marker[] = L"exit-data-marker";

static VENDOR_MEDIA_PATH initrd_path;

/* The child's bytes from the initrd LOAD_FILE2, as the Linux stub loads them. */
static int load_child(VOID **buffer, UINTN *size)
{
    EFI_DEVICE_PATH_PROTOCOL *dp;
    EFI_HANDLE handle = NULL;
    EFI_LOAD_FILE2_PROTOCOL *lf2 = NULL;
    EFI_STATUS status;

    make_vendor_media_path(&initrd_path, &initrd_media_guid);
    dp = &initrd_path.vendor;
    status = gBS->LocateDevicePath(&load_file2_guid, &dp, &handle);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"LocateDevicePath: LOAD_FILE2 on the Linux initrd media path")) {
        print(L"  info: no initrd LOAD_FILE2: run with efistub --initrd CHILD.efi (QEMU: -kernel image.efi -initrd CHILD.efi)\r\n");
        return 0;
    }
    status = gBS->HandleProtocol(handle, &load_file2_guid, (VOID **)&lf2);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"HandleProtocol: LOAD_FILE2 on the initrd handle"))
        return 0;
    *size = 0;
    status = lf2->LoadFile(lf2, dp, FALSE, size, NULL);
    if (!CHECK_STATUS(status, EFI_BUFFER_TOO_SMALL, L"LoadFile: size probe -> EFI_BUFFER_TOO_SMALL"))
        return 0;
    CHECK(*size > 0, L"LoadFile: size probe reports the file size");
    print(L"  info: child image size ");
    print_dec(*size);
    print(L"\r\n");
    status = gBS->AllocatePool(EfiLoaderData, *size, buffer);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePool: buffer for the child image"))
        return 0;
    status = lf2->LoadFile(lf2, dp, FALSE, size, *buffer);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"LoadFile: reads the child image"))
        return 0;
    CHECK(((UINT8 *)*buffer)[0] == 'M' && ((UINT8 *)*buffer)[1] == 'Z', L"LoadFile: the child image starts with MZ");
    return 1;
}

static void test_child(VOID *buffer, UINTN size)
{
    EFI_LOADED_IMAGE_PROTOCOL *ours = NULL, *li = NULL;
    EFI_HANDLE child = NULL, again = NULL;
    EFI_STATUS status;
    UINTN exit_size = 0;
    CHAR16 *exit_data = NULL;

    status = gBS->HandleProtocol(gImage, &loaded_image_guid, (VOID **)&ours);
    CHECK_STATUS(status, EFI_SUCCESS, L"HandleProtocol: our own LOADED_IMAGE");

    status = gBS->LoadImage(FALSE, gImage, NULL, buffer, size, &child);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"LoadImage: child from a memory buffer"))
        return;
    CHECK(child != NULL, L"LoadImage: returns a handle");
    status = gBS->HandleProtocol(child, &loaded_image_guid, (VOID **)&li);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"HandleProtocol: child's LOADED_IMAGE")) {
        print(L"  info: child ImageBase ");
        print_ptr(li->ImageBase);
        print(L" ImageSize ");
        print_hex(li->ImageSize);
        print(L"\r\n");
        CHECK(li->ParentHandle == gImage, L"LoadedImage: child's ParentHandle is our image handle");
        CHECK(li->SystemTable == gST, L"LoadedImage: child's SystemTable is ours");
        CHECK(((UINTN)li->ImageBase & (EFI_PAGE_SIZE - 1)) == 0, L"LoadedImage: child's ImageBase is page aligned");
        CHECK(ours == NULL || li->ImageBase != ours->ImageBase, L"LoadedImage: child's ImageBase is not ours");
        CHECK(li->ImageSize > 0, L"LoadedImage: child's ImageSize > 0");
        li->LoadOptions = child_options;
        li->LoadOptionsSize = sizeof(child_options);
    }

    print(L"image: starting the child\r\n");
    status = gBS->StartImage(child, &exit_size, &exit_data);
    print(L"  info: child status ");
    print_status(status);
    print(L" exit data size ");
    print_dec(exit_size);
    print(L" \"");
    if (exit_data && exit_size >= sizeof(CHAR16))
        print(exit_data);
    print(L"\"\r\n");
    if (status == EFI_INVALID_PARAMETER && exit_size == sizeof(exit_marker) && exit_data &&
        strcmp16(exit_data, exit_marker) == 0) {
        print(L"  info: the child left through Exit (exit.efi)\r\n");
        CHECK(1, L"child-exit");
    } else if (status == EFI_SUCCESS && exit_size == 0) {
        print(L"  info: the child returned from its entry point\r\n");
        CHECK(1, L"child-return");
    } else {
        print(L"  note: expected exit.efi's EFI_INVALID_PARAMETER, 34, \"exit-data-marker\", or EFI_SUCCESS without ExitData\r\n");
        CHECK(0, L"child-exit or child-return");
    }
    if (exit_data)
        CHECK_STATUS(gBS->FreePool(exit_data), EFI_SUCCESS, L"FreePool: the child's ExitData");

    /* The parent goes on after its child ended. */
    CHECK_STATUS(gST->ConOut->OutputString(gST->ConOut, L"image: parent runs on\r\n"), EFI_SUCCESS,
                 L"ConOut: works in the parent after StartImage returned");
    status = gBS->LoadImage(FALSE, gImage, NULL, buffer, size, &again);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"LoadImage: the same buffer again"))
        CHECK_STATUS(gBS->UnloadImage(again), EFI_SUCCESS, L"UnloadImage: a loaded image that never started");
}

static void test_bad_loads(void)
{
    static UINT8 garbage[64];
    EFI_HANDLE h = NULL, not_image = NULL;
    EFI_STATUS status;
    UINTN i, exit_size = 0;
    CHAR16 *exit_data = NULL;

    for (i = 0; i < sizeof(garbage); i++)
        garbage[i] = (UINT8)(0x5a ^ (i * 37));
    status = gBS->LoadImage(FALSE, gImage, NULL, garbage, sizeof(garbage), &h);
    print(L"  info: LoadImage of 64 garbage bytes -> ");
    print_status(status);
    print(L"\r\n");
    /* EDK2 (OVMF) gives EFI_UNSUPPORTED: its PE/COFF loader finds no PE header. */
    CHECK_STATUS(status, EFI_UNSUPPORTED, L"LoadImage: 64 garbage bytes -> EFI_UNSUPPORTED");
    if (status == EFI_SUCCESS)
        gBS->UnloadImage(h);

    status = gBS->LoadImage(FALSE, gImage, NULL, garbage, sizeof(garbage), NULL);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"LoadImage: NULL ImageHandle -> EFI_INVALID_PARAMETER");

    status = gBS->InstallProtocolInterface(&not_image, &not_image_guid, EFI_NATIVE_INTERFACE, &not_image_iface);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"InstallProtocolInterface: a handle that is not an image")) {
        status = gBS->StartImage(not_image, &exit_size, &exit_data);
        CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"StartImage: handle that is not an image -> EFI_INVALID_PARAMETER");
        gBS->UninstallProtocolInterface(not_image, &not_image_guid, &not_image_iface);
    }
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    VOID *buffer = NULL;
    UINTN size = 0;

    lib_init(image, st);
    print(L"image: LoadImage / StartImage of a child from the initrd LOAD_FILE2\r\n");
    if (load_child(&buffer, &size))
        test_child(buffer, size);
    test_bad_loads();
    if (buffer)
        gBS->FreePool(buffer);
    return lib_done();
}
