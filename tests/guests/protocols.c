/*
 * protocols: the handle database (UEFI 2.10 section 7.3) and
 * InstallConfigurationTable (7.3) / LocateDevicePath.
 */
#include "lib.h"

static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
static EFI_GUID device_path_guid = EFI_DEVICE_PATH_PROTOCOL_GUID;
static EFI_GUID load_file2_guid = EFI_LOAD_FILE2_PROTOCOL_GUID;

/* Made-up GUIDs: no firmware has them. */
static EFI_GUID unknown_guid =
    { 0x161f9f9e, 0x7f45, 0x4a0a, { 0x87, 0x8d, 0x60, 0x35, 0xc2, 0x3c, 0xcd, 0x4e } };
static EFI_GUID guid_a =
    { 0xd5a1c3e5, 0x32bd, 0x41b3, { 0xb5, 0x09, 0x15, 0xd6, 0x87, 0xab, 0xab, 0x2f } };
static EFI_GUID guid_b =
    { 0xda7c6c19, 0x53e7, 0x4f9e, { 0x9b, 0x69, 0x6a, 0xc5, 0x5e, 0xc8, 0xd4, 0xcb } };
static EFI_GUID guid_c =
    { 0x99c3344c, 0x9cbd, 0x4c3d, { 0xb9, 0x7a, 0xf1, 0x68, 0x84, 0xd0, 0x02, 0xad } };
static EFI_GUID guid_d =
    { 0x5cc8a2ad, 0x9f72, 0x4d7e, { 0x9d, 0x29, 0xfe, 0xb6, 0x22, 0x78, 0x82, 0x1c } };
static EFI_GUID table_guid =
    { 0x36f2ca5b, 0x98dd, 0x4f8a, { 0xae, 0x40, 0xcc, 0xca, 0x34, 0x19, 0xab, 0xed } };
static EFI_GUID vendor_guid =
    { 0xcbabedae, 0xa60b, 0x4f40, { 0xa2, 0x9e, 0xa9, 0x61, 0x43, 0x2d, 0x5f, 0x31 } };

/* Stand-in protocol interfaces: only their addresses matter. */
static UINT64 iface_a = 0xa, iface_a2 = 0xa2, iface_b = 0xb, iface_c = 0xc, iface_d = 0xd;
static UINT64 wrong_iface = 0xbad;
static UINT64 table1 = 1, table2 = 2;

static VENDOR_MEDIA_PATH installed_path;

static EFI_STATUS EFIAPI dummy_load_file(EFI_LOAD_FILE2_PROTOCOL *This,
                                         EFI_DEVICE_PATH_PROTOCOL *FilePath, BOOLEAN BootPolicy,
                                         UINTN *BufferSize, VOID *Buffer)
{
    (void)This;
    (void)FilePath;
    (void)BootPolicy;
    (void)BufferSize;
    (void)Buffer;
    return EFI_UNSUPPORTED;
}

static EFI_LOAD_FILE2_PROTOCOL load_file2 = { dummy_load_file };

static void test_loaded_image(void)
{
    EFI_LOADED_IMAGE_PROTOCOL *li = NULL;
    VOID *iface;
    EFI_STATUS status;

    status = gBS->HandleProtocol(gImage, &loaded_image_guid, (VOID **)&li);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"HandleProtocol: image handle supports LOADED_IMAGE")) {
        CHECK(li != NULL, L"LoadedImage: interface pointer is not NULL");
        CHECK(li->Revision == EFI_LOADED_IMAGE_PROTOCOL_REVISION, L"LoadedImage: Revision == 0x1000");
        CHECK(li->SystemTable == gST, L"LoadedImage: SystemTable is ours");
        CHECK(li->ImageCodeType == EfiLoaderCode, L"LoadedImage: ImageCodeType == EfiLoaderCode");
        CHECK(li->ImageDataType == EfiLoaderData, L"LoadedImage: ImageDataType == EfiLoaderData");
        CHECK(li->ImageBase != NULL && li->ImageSize > 0, L"LoadedImage: ImageBase and ImageSize set");
    }

    iface = &iface_a;
    status = gBS->HandleProtocol(gImage, &unknown_guid, &iface);
    CHECK_STATUS(status, EFI_UNSUPPORTED, L"HandleProtocol: unknown GUID -> EFI_UNSUPPORTED");
    status = gBS->HandleProtocol(NULL, &loaded_image_guid, &iface);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"HandleProtocol: NULL handle -> EFI_INVALID_PARAMETER");
    status = gBS->HandleProtocol(gImage, NULL, &iface);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"HandleProtocol: NULL Protocol -> EFI_INVALID_PARAMETER");

    iface = &iface_a;
    status = gBS->LocateProtocol(&unknown_guid, NULL, &iface);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"LocateProtocol: unknown GUID -> EFI_NOT_FOUND");
    CHECK(iface == NULL, L"LocateProtocol: unknown GUID sets *Interface to NULL");
    status = gBS->LocateProtocol(&loaded_image_guid, NULL, &iface);
    CHECK(status == EFI_SUCCESS && iface != NULL, L"LocateProtocol: LOADED_IMAGE is found");
}

static int handles_contain(EFI_HANDLE *handles, UINTN n, EFI_HANDLE h)
{
    UINTN i;
    for (i = 0; i < n; i++)
        if (handles[i] == h)
            return 1;
    return 0;
}

static void test_install_single(void)
{
    EFI_HANDLE h = NULL, found[4], *buf = NULL;
    EFI_GUID **guids = NULL;
    EFI_OPEN_PROTOCOL_INFORMATION_ENTRY *info = NULL;
    VOID *iface = NULL;
    UINTN size, n = 0;
    EFI_STATUS status;

    status = gBS->InstallProtocolInterface(&h, &guid_a, EFI_NATIVE_INTERFACE, &iface_a);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"InstallProtocolInterface: new GUID on a NULL handle"))
        return;
    CHECK(h != NULL, L"InstallProtocolInterface: creates a handle");
    status = gBS->InstallProtocolInterface(&h, &guid_a, EFI_NATIVE_INTERFACE, &iface_a);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"InstallProtocolInterface: same GUID twice on a handle -> EFI_INVALID_PARAMETER");

    status = gBS->LocateProtocol(&guid_a, NULL, &iface);
    CHECK(status == EFI_SUCCESS && iface == &iface_a, L"LocateProtocol: finds the installed interface");
    iface = NULL;
    status = gBS->HandleProtocol(h, &guid_a, &iface);
    CHECK(status == EFI_SUCCESS && iface == &iface_a, L"HandleProtocol: new handle gives the installed interface");

    size = 0;
    status = gBS->LocateHandle(ByProtocol, &guid_a, NULL, &size, NULL);
    CHECK_STATUS(status, EFI_BUFFER_TOO_SMALL, L"LocateHandle ByProtocol: size probe -> EFI_BUFFER_TOO_SMALL");
    CHECK(size == sizeof(EFI_HANDLE), L"LocateHandle ByProtocol: size probe reports one handle");
    size = sizeof(found);
    status = gBS->LocateHandle(ByProtocol, &guid_a, NULL, &size, found);
    CHECK_STATUS(status, EFI_SUCCESS, L"LocateHandle ByProtocol: succeeds");
    CHECK(size == sizeof(EFI_HANDLE) && found[0] == h, L"LocateHandle ByProtocol: returns the new handle");
    size = sizeof(found);
    status = gBS->LocateHandle(ByProtocol, &unknown_guid, NULL, &size, found);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"LocateHandle ByProtocol: unknown GUID -> EFI_NOT_FOUND");

    status = gBS->LocateHandleBuffer(ByProtocol, &guid_a, NULL, &n, &buf);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"LocateHandleBuffer ByProtocol: succeeds")) {
        CHECK(n == 1 && buf && buf[0] == h, L"LocateHandleBuffer ByProtocol: returns the new handle");
        CHECK_STATUS(gBS->FreePool(buf), EFI_SUCCESS, L"LocateHandleBuffer: buffer is pool memory (FreePool)");
    }
    buf = NULL;
    status = gBS->LocateHandleBuffer(AllHandles, NULL, NULL, &n, &buf);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"LocateHandleBuffer AllHandles: succeeds")) {
        CHECK(handles_contain(buf, n, h) && handles_contain(buf, n, gImage),
              L"LocateHandleBuffer AllHandles: includes the new handle and the image handle");
        gBS->FreePool(buf);
    }
    status = gBS->LocateHandleBuffer(ByProtocol, &unknown_guid, NULL, &n, &buf);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"LocateHandleBuffer ByProtocol: unknown GUID -> EFI_NOT_FOUND");

    status = gBS->ProtocolsPerHandle(h, &guids, &n);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"ProtocolsPerHandle: new handle")) {
        CHECK(n == 1 && guid_eq(guids[0], &guid_a), L"ProtocolsPerHandle: lists exactly the installed GUID");
        CHECK_STATUS(gBS->FreePool(guids), EFI_SUCCESS, L"ProtocolsPerHandle: buffer is pool memory (FreePool)");
    }
    status = gBS->ProtocolsPerHandle(gImage, &guids, &n);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"ProtocolsPerHandle: image handle")) {
        UINTN i;
        int has = 0;
        for (i = 0; i < n; i++)
            if (guid_eq(guids[i], &loaded_image_guid))
                has = 1;
        CHECK(has, L"ProtocolsPerHandle: image handle lists LOADED_IMAGE");
        gBS->FreePool(guids);
    }

    iface = NULL;
    status = gBS->OpenProtocol(h, &guid_a, &iface, gImage, NULL, EFI_OPEN_PROTOCOL_GET_PROTOCOL);
    CHECK(status == EFI_SUCCESS && iface == &iface_a, L"OpenProtocol GET_PROTOCOL: gives the interface");
    status = gBS->OpenProtocolInformation(h, &guid_a, &info, &n);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"OpenProtocolInformation: succeeds")) {
        /* Other entries may exist: EDK2 records each HandleProtocol call as a
           BY_HANDLE_PROTOCOL open by the firmware's own image handle. */
        UINTN i;
        int found = 0;
        for (i = 0; i < n; i++)
            if (info[i].AgentHandle == gImage && info[i].ControllerHandle == NULL &&
                info[i].Attributes == EFI_OPEN_PROTOCOL_GET_PROTOCOL && info[i].OpenCount == 1)
                found = 1;
        CHECK(found, L"OpenProtocolInformation: records the GET_PROTOCOL open by our image");
        gBS->FreePool(info);
    }
    status = gBS->CloseProtocol(h, &guid_a, gImage, NULL);
    CHECK_STATUS(status, EFI_SUCCESS, L"CloseProtocol: closes the GET_PROTOCOL open");
    status = gBS->CloseProtocol(h, &guid_a, gImage, NULL);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"CloseProtocol: not open any more -> EFI_NOT_FOUND");
    status = gBS->OpenProtocol(h, &guid_a, NULL, gImage, NULL, EFI_OPEN_PROTOCOL_TEST_PROTOCOL);
    CHECK_STATUS(status, EFI_SUCCESS, L"OpenProtocol TEST_PROTOCOL: NULL Interface allowed");
    status = gBS->OpenProtocol(h, &unknown_guid, &iface, gImage, NULL, EFI_OPEN_PROTOCOL_GET_PROTOCOL);
    CHECK_STATUS(status, EFI_UNSUPPORTED, L"OpenProtocol: GUID not on the handle -> EFI_UNSUPPORTED");
    status = gBS->OpenProtocol(h, &guid_a, NULL, gImage, NULL, EFI_OPEN_PROTOCOL_GET_PROTOCOL);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"OpenProtocol GET_PROTOCOL: NULL Interface -> EFI_INVALID_PARAMETER");

    status = gBS->ReinstallProtocolInterface(h, &guid_a, &iface_a, &iface_a2);
    CHECK_STATUS(status, EFI_SUCCESS, L"ReinstallProtocolInterface: succeeds");
    iface = NULL;
    gBS->HandleProtocol(h, &guid_a, &iface);
    CHECK(iface == &iface_a2, L"ReinstallProtocolInterface: HandleProtocol gives the new interface");

    status = gBS->UninstallProtocolInterface(h, &guid_a, &wrong_iface);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"UninstallProtocolInterface: wrong interface -> EFI_NOT_FOUND");
    status = gBS->UninstallProtocolInterface(h, &guid_a, &iface_a2);
    CHECK_STATUS(status, EFI_SUCCESS, L"UninstallProtocolInterface: succeeds");
    iface = &iface_a;
    status = gBS->LocateProtocol(&guid_a, NULL, &iface);
    CHECK(status == EFI_NOT_FOUND && iface == NULL, L"LocateProtocol: uninstalled GUID -> EFI_NOT_FOUND");
}

static void test_install_multiple(void)
{
    EFI_HANDLE h = NULL, h2 = NULL;
    EFI_GUID **guids = NULL;
    VOID *iface;
    UINTN n = 0;
    EFI_STATUS status;

    status = gBS->InstallMultipleProtocolInterfaces(&h, &guid_b, &iface_b, &guid_c, &iface_c, NULL);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"InstallMultipleProtocolInterfaces: two GUIDs"))
        return;
    CHECK(h != NULL, L"InstallMultipleProtocolInterfaces: creates a handle");
    iface = NULL;
    status = gBS->HandleProtocol(h, &guid_b, &iface);
    CHECK(status == EFI_SUCCESS && iface == &iface_b, L"InstallMultipleProtocolInterfaces: first interface on the handle");
    iface = NULL;
    status = gBS->HandleProtocol(h, &guid_c, &iface);
    CHECK(status == EFI_SUCCESS && iface == &iface_c, L"InstallMultipleProtocolInterfaces: second interface on the handle");
    status = gBS->ProtocolsPerHandle(h, &guids, &n);
    if (status == EFI_SUCCESS) {
        CHECK(n == 2, L"ProtocolsPerHandle: two GUIDs on the handle");
        gBS->FreePool(guids);
    } else {
        CHECK_STATUS(status, EFI_SUCCESS, L"ProtocolsPerHandle: two GUIDs on the handle");
    }

    /* A failing uninstall puts back what it had already removed. */
    status = gBS->UninstallMultipleProtocolInterfaces(h, &guid_b, &iface_b, &guid_c, &wrong_iface, NULL);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"UninstallMultipleProtocolInterfaces: one wrong interface -> EFI_INVALID_PARAMETER");
    iface = NULL;
    status = gBS->LocateProtocol(&guid_b, NULL, &iface);
    CHECK(status == EFI_SUCCESS && iface == &iface_b, L"UninstallMultipleProtocolInterfaces: failure reinstalls the first");

    status = gBS->UninstallMultipleProtocolInterfaces(h, &guid_b, &iface_b, &guid_c, &iface_c, NULL);
    CHECK_STATUS(status, EFI_SUCCESS, L"UninstallMultipleProtocolInterfaces: removes both");
    status = gBS->LocateProtocol(&guid_b, NULL, &iface);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"UninstallMultipleProtocolInterfaces: first GUID -> LocateProtocol EFI_NOT_FOUND");
    status = gBS->LocateProtocol(&guid_c, NULL, &iface);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"UninstallMultipleProtocolInterfaces: second GUID -> LocateProtocol EFI_NOT_FOUND");

    /* A failing install removes what it had already installed. */
    status = gBS->InstallMultipleProtocolInterfaces(&h2, &guid_d, &iface_d, &guid_d, &iface_d, NULL);
    CHECK(EFI_ERROR(status), L"InstallMultipleProtocolInterfaces: same GUID twice fails");
    status = gBS->LocateProtocol(&guid_d, NULL, &iface);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"InstallMultipleProtocolInterfaces: failure leaves nothing installed");
}

static EFI_CONFIGURATION_TABLE *find_table(const EFI_GUID *guid)
{
    UINTN i;
    for (i = 0; i < gST->NumberOfTableEntries; i++)
        if (guid_eq(&gST->ConfigurationTable[i].VendorGuid, guid))
            return &gST->ConfigurationTable[i];
    return NULL;
}

static int system_table_crc_ok(void)
{
    EFI_SYSTEM_TABLE copy = *gST;
    UINT32 crc = 0;
    copy.Hdr.CRC32 = 0;
    if (gBS->CalculateCrc32(&copy, gST->Hdr.HeaderSize, &crc) != EFI_SUCCESS)
        return 0;
    return crc == gST->Hdr.CRC32;
}

static void test_configuration_table(void)
{
    UINTN count0 = gST->NumberOfTableEntries;
    EFI_CONFIGURATION_TABLE *t;
    EFI_STATUS status;

    CHECK(find_table(&table_guid) == NULL, L"ConfigurationTable: made-up GUID absent at start");
    status = gBS->InstallConfigurationTable(&table_guid, &table1);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"InstallConfigurationTable: add"))
        return;
    t = find_table(&table_guid);
    CHECK(t && t->VendorTable == &table1, L"InstallConfigurationTable: entry appears in ST->ConfigurationTable");
    CHECK(gST->NumberOfTableEntries == count0 + 1, L"InstallConfigurationTable: add grows NumberOfTableEntries by 1");
    CHECK(system_table_crc_ok(), L"InstallConfigurationTable: system table CRC32 updated");

    status = gBS->InstallConfigurationTable(&table_guid, &table2);
    CHECK_STATUS(status, EFI_SUCCESS, L"InstallConfigurationTable: replace");
    t = find_table(&table_guid);
    CHECK(t && t->VendorTable == &table2, L"InstallConfigurationTable: replace updates the pointer");
    CHECK(gST->NumberOfTableEntries == count0 + 1, L"InstallConfigurationTable: replace keeps the count");

    status = gBS->InstallConfigurationTable(&table_guid, NULL);
    CHECK_STATUS(status, EFI_SUCCESS, L"InstallConfigurationTable: delete");
    CHECK(find_table(&table_guid) == NULL, L"InstallConfigurationTable: deleted entry is gone");
    CHECK(gST->NumberOfTableEntries == count0, L"InstallConfigurationTable: delete shrinks the count");
    CHECK(system_table_crc_ok(), L"InstallConfigurationTable: system table CRC32 updated after delete");

    status = gBS->InstallConfigurationTable(&table_guid, NULL);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"InstallConfigurationTable: delete of an absent GUID -> EFI_NOT_FOUND");
    status = gBS->InstallConfigurationTable(NULL, &table1);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"InstallConfigurationTable: NULL Guid -> EFI_INVALID_PARAMETER");
}

static void test_locate_device_path(void)
{
    VENDOR_MEDIA_PATH query;
    EFI_DEVICE_PATH_PROTOCOL *dp;
    EFI_HANDLE dev = NULL, h = NULL;
    EFI_STATUS status;

    make_vendor_media_path(&query, &vendor_guid);
    dp = &query.vendor;
    status = gBS->LocateDevicePath(&load_file2_guid, &dp, &dev);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"LocateDevicePath: LOAD_FILE2 on a made-up vendor path -> EFI_NOT_FOUND");
    status = gBS->LocateDevicePath(&load_file2_guid, NULL, &dev);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"LocateDevicePath: NULL DevicePath -> EFI_INVALID_PARAMETER");

    /* The way Linux finds its initrd: a handle with the vendor path and LOAD_FILE2. */
    make_vendor_media_path(&installed_path, &vendor_guid);
    status = gBS->InstallMultipleProtocolInterfaces(&h, &device_path_guid, &installed_path,
                                                    &load_file2_guid, &load_file2, NULL);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"InstallMultipleProtocolInterfaces: DEVICE_PATH + LOAD_FILE2"))
        return;
    /* Device == NULL is only an error once a handle matched (spec and EDK2). */
    dp = &query.vendor;
    status = gBS->LocateDevicePath(&load_file2_guid, &dp, NULL);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"LocateDevicePath: match with NULL Device -> EFI_INVALID_PARAMETER");
    dp = &query.vendor;
    status = gBS->LocateDevicePath(&load_file2_guid, &dp, &dev);
    CHECK_STATUS(status, EFI_SUCCESS, L"LocateDevicePath: finds the LOAD_FILE2 handle by its vendor path");
    CHECK(dev == h, L"LocateDevicePath: returns that handle");
    CHECK(dp == &query.end, L"LocateDevicePath: DevicePath advanced to the end node");
    status = gBS->UninstallMultipleProtocolInterfaces(h, &device_path_guid, &installed_path,
                                                      &load_file2_guid, &load_file2, NULL);
    CHECK_STATUS(status, EFI_SUCCESS, L"UninstallMultipleProtocolInterfaces: DEVICE_PATH + LOAD_FILE2");
    dp = &query.vendor;
    status = gBS->LocateDevicePath(&load_file2_guid, &dp, &dev);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"LocateDevicePath: after uninstall -> EFI_NOT_FOUND");
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    print(L"protocols: handle database tests\r\n");
    test_loaded_image();
    test_install_single();
    test_install_multiple();
    test_configuration_table();
    test_locate_device_path();
    return lib_done();
}
