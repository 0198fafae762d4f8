/*
 * authvar: SetVariable calls read from files on its own volume, one after the other, each
 * status printed: the same writes (authenticated ones, signed by a test's keys) run on
 * efistub and on real firmware (OVMF), and the test compares the two outputs.
 *
 * The volume: \authvar\01.bin, 02.bin, ... (at most 99; the first missing one ends the list).
 * Each file is a header, then the Data of the call (DataSize: the rest of the file):
 *
 *     CHAR16   VariableName[64];   NUL-terminated
 *     EFI_GUID VendorGuid;
 *     UINT32   Attributes;
 *     UINT32   Reserved;           0
 *
 * Output: "  info: authvar NN NAME -> 0x<status>" for each call, then the platform's mode as
 * "  info: SetupMode N" and "  info: SecureBoot N" ("-> 0x<status>" when GetVariable fails),
 * and two checks: that the volume opened, and that at least one file was there.
 * Run it as the removable-media boot file of its volume (efistub --esp DIR, or OVMF with a
 * fat:rw DIR disk).
 */
#include "lib.h"

typedef struct {
    CHAR16 VariableName[64];
    EFI_GUID VendorGuid;
    UINT32 Attributes;
    UINT32 Reserved;
} AUTHVAR_CALL;

static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
static EFI_GUID sfs_guid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID;
static EFI_GUID file_info_guid = EFI_FILE_INFO_ID;
static EFI_GUID global_variable = /* EFI_GLOBAL_VARIABLE */
    { 0x8be4df61, 0x93ca, 0x11d2, { 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c } };
static UINT64 info_space[128]; /* an EFI_FILE_INFO, 8-byte aligned */

static EFI_FILE_PROTOCOL *open_volume(void)
{
    EFI_LOADED_IMAGE_PROTOCOL *loaded = NULL;
    EFI_SIMPLE_FILE_SYSTEM_PROTOCOL *sfs = NULL;
    EFI_FILE_PROTOCOL *root = NULL;

    if (gBS->HandleProtocol(gImage, &loaded_image_guid, (VOID **)&loaded) != EFI_SUCCESS || !loaded)
        return NULL;
    if (gBS->HandleProtocol(loaded->DeviceHandle, &sfs_guid, (VOID **)&sfs) != EFI_SUCCESS || !sfs)
        return NULL;
    if (sfs->OpenVolume(sfs, &root) != EFI_SUCCESS)
        return NULL;
    return root;
}

/* The whole file NAME in pool memory: its size in *size, or NULL. */
static UINT8 *read_file(EFI_FILE_PROTOCOL *root, CHAR16 *name, UINTN *size)
{
    EFI_FILE_PROTOCOL *file = NULL;
    UINTN info_size = sizeof(info_space), length;
    UINT8 *buffer = NULL;

    if (root->Open(root, &file, name, EFI_FILE_MODE_READ, 0) != EFI_SUCCESS)
        return NULL;
    if (file->GetInfo(file, &file_info_guid, &info_size, info_space) == EFI_SUCCESS) {
        length = (UINTN)((EFI_FILE_INFO *)info_space)->FileSize;
        if (gBS->AllocatePool(EfiLoaderData, length ? length : 1, (VOID **)&buffer) == EFI_SUCCESS) {
            *size = length;
            if (file->Read(file, size, buffer) != EFI_SUCCESS || *size != length) {
                gBS->FreePool(buffer);
                buffer = NULL;
            }
        }
    }
    file->Close(file);
    return buffer;
}

static void print_mode(CHAR16 *name)
{
    UINT8 value = 0xff;
    UINTN size = sizeof(value);
    EFI_STATUS status = gRT->GetVariable(name, &global_variable, NULL, &size, &value);

    print(L"  info: ");
    print(name);
    if (status == EFI_SUCCESS) {
        print(L" ");
        print_dec(value);
    } else {
        print(L" -> ");
        print_status(status);
    }
    print(L"\r\n");
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    CHAR16 path[] = L"\\authvar\\00.bin";
    EFI_FILE_PROTOCOL *root;
    AUTHVAR_CALL *call;
    UINTN index, size, calls = 0;
    UINT8 *file;
    EFI_STATUS status;

    lib_init(image, st);
    root = open_volume();
    if (!CHECK(root != NULL, L"authvar: opened the volume it was loaded from"))
        return lib_done();
    for (index = 1; index < 100; index++) {
        path[9] = (CHAR16)(L'0' + index / 10);
        path[10] = (CHAR16)(L'0' + index % 10);
        size = 0;
        file = read_file(root, path, &size);
        if (!file)
            break;
        calls++;
        call = (AUTHVAR_CALL *)file;
        call->VariableName[63] = 0;
        if (size < sizeof(*call)) {
            print(L"  info: authvar ");
            print(&path[9]);
            print(L" is shorter than its header\r\n");
            gBS->FreePool(file);
            continue;
        }
        status = gRT->SetVariable(call->VariableName, &call->VendorGuid, call->Attributes,
                                  size - sizeof(*call), file + sizeof(*call));
        print(L"  info: authvar ");
        path[11] = 0;
        print(&path[9]);
        path[11] = L'.';
        print(L" ");
        print(call->VariableName);
        print(L" -> ");
        print_status(status);
        print(L"\r\n");
        gBS->FreePool(file);
    }
    root->Close(root);
    print_mode(L"SetupMode");
    print_mode(L"SecureBoot");
    CHECK(calls > 0, L"authvar: found \\authvar\\01.bin");
    return lib_done();
}
