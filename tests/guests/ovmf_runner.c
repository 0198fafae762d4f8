/*
 * ovmf_runner: a validation helper, not a test program for efistub.
 * Booted by run-ovmf.sh as EFI/BOOT/BOOTX64.EFI on real firmware (OVMF), it
 * loads each guest program from \EFI\efistub\NAME.efi on the same drive with
 * LoadImage + StartImage and prints what StartImage returned, including the
 * ExitData of exit.efi, so the programs' return codes are checked too:
 *   RESULT <name> status=<hex> exitdatasize=<n> exitdata=<string>
 *
 * For image.efi, which loads its child from the Linux initrd LOAD_FILE2, the
 * runner installs such a LOAD_FILE2 itself (on the vendor media path
 * LINUX_EFI_INITRD_MEDIA_GUID, as OVMF's QemuKernelLoaderFsDxe does for QEMU
 * -initrd) and serves \EFI\efistub\exit.efi through it: QEMU's x86 -kernel
 * loader accepts -initrd only for a Linux kernel, so on x86 there is no other way
 * to give image.efi a child on OVMF.
 */
#include "lib.h"

static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
static EFI_GUID device_path_guid = EFI_DEVICE_PATH_PROTOCOL_GUID;

static EFI_GUID load_file2_guid = EFI_LOAD_FILE2_PROTOCOL_GUID;
static EFI_GUID initrd_media_guid = LINUX_EFI_INITRD_MEDIA_GUID;
static EFI_GUID simple_fs_guid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID;

static const CHAR16 *const programs[] = {
    L"hello", L"memory", L"protocols", L"misc", L"variables", L"reloc", L"exit", L"events",
    L"image", L"files", L"textutil", L"hii", L"devtext",
#if defined(__x86_64__) || defined(__i386__)
    L"ports",
#endif
};

/* The initrd LOAD_FILE2 for image.efi. */
static VENDOR_MEDIA_PATH initrd_path;
static UINT8 *initrd_data;
static UINTN initrd_size;

/* As OVMF's QemuKernelInitrdLoadFile2: FilePath must be the end node. */
static EFI_STATUS EFIAPI initrd_load_file(EFI_LOAD_FILE2_PROTOCOL *This,
                                          EFI_DEVICE_PATH_PROTOCOL *FilePath, BOOLEAN BootPolicy,
                                          UINTN *BufferSize, VOID *Buffer)
{
    (void)This;
    if (BootPolicy)
        return EFI_UNSUPPORTED;
    if (BufferSize == NULL || FilePath == NULL)
        return EFI_INVALID_PARAMETER;
    if (FilePath->Type != END_DEVICE_PATH_TYPE || FilePath->SubType != END_ENTIRE_DEVICE_PATH_SUBTYPE)
        return EFI_NOT_FOUND;
    if (Buffer == NULL || *BufferSize < initrd_size) {
        *BufferSize = initrd_size;
        return EFI_BUFFER_TOO_SMALL;
    }
    gBS->CopyMem(Buffer, initrd_data, initrd_size);
    *BufferSize = initrd_size;
    return EFI_SUCCESS;
}

static EFI_LOAD_FILE2_PROTOCOL initrd_load_file2 = { initrd_load_file };

/* Reads \EFI\efistub\<name> from the runner's own drive into pool memory. */
static int read_file(EFI_HANDLE device, CHAR16 *name, UINT8 **data, UINTN *size)
{
    EFI_SIMPLE_FILE_SYSTEM_PROTOCOL *fs = NULL;
    EFI_FILE_PROTOCOL *root = NULL, *file = NULL;
    UINTN cap = 1024 * 1024;
    int ok = 0;

    if (gBS->HandleProtocol(device, &simple_fs_guid, (VOID **)&fs) != EFI_SUCCESS ||
        fs->OpenVolume(fs, &root) != EFI_SUCCESS)
        return 0;
    if (root->Open(root, &file, name, EFI_FILE_MODE_READ, 0) == EFI_SUCCESS) {
        if (gBS->AllocatePool(EfiLoaderData, cap, (VOID **)data) == EFI_SUCCESS) {
            *size = cap;
            ok = file->Read(file, size, *data) == EFI_SUCCESS && *size > 0 && *size < cap;
        }
        file->Close(file);
    }
    root->Close(root);
    return ok;
}

static EFI_HANDLE install_initrd(EFI_HANDLE device)
{
    EFI_HANDLE h = NULL;
    static EFI_GUID device_path = EFI_DEVICE_PATH_PROTOCOL_GUID;

    if (!read_file(device, L"\\EFI\\efistub\\exit.efi", &initrd_data, &initrd_size)) {
        print(L"RUNNER cannot read \\EFI\\efistub\\exit.efi for image's initrd\r\n");
        return NULL;
    }
    make_vendor_media_path(&initrd_path, &initrd_media_guid);
    if (gBS->InstallMultipleProtocolInterfaces(&h, &device_path, &initrd_path, &load_file2_guid,
                                               &initrd_load_file2, NULL) != EFI_SUCCESS)
        return NULL;
    return h;
}

static void uninstall_initrd(EFI_HANDLE h)
{
    static EFI_GUID device_path = EFI_DEVICE_PATH_PROTOCOL_GUID;
    if (!h)
        return;
    gBS->UninstallMultipleProtocolInterfaces(h, &device_path, &initrd_path, &load_file2_guid,
                                             &initrd_load_file2, NULL);
    gBS->FreePool(initrd_data);
}

/* The device's path with a file path node for \EFI\efistub\<name>.efi appended. */
static EFI_DEVICE_PATH_PROTOCOL *file_path(EFI_DEVICE_PATH_PROTOCOL *dev, const CHAR16 *name)
{
    CHAR16 dir_name[64], file[72];
    UINTN size = dp_path_size(dev);

    if (!size)
        return NULL;
    cat16(dir_name, 64, L"\\EFI\\efistub\\", name);
    cat16(file, 72, dir_name, L".efi");
    return dp_append_file_node(dev, size - sizeof(EFI_DEVICE_PATH_PROTOCOL), file);
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_LOADED_IMAGE_PROTOCOL *li = NULL;
    EFI_DEVICE_PATH_PROTOCOL *dev = NULL, *path;
    EFI_HANDLE child, initrd = NULL;
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
        int is_image = strcmp16(programs[i], L"image") == 0;
        if (is_image)
            initrd = install_initrd(li->DeviceHandle);
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
        if (is_image)
            uninstall_initrd(initrd);
    }
    print(L"RUNNER finished\r\n");
    return EFI_SUCCESS;
}
