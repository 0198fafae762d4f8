/*
 * textutil: EFI_UNICODE_COLLATION2_PROTOCOL and EFI_UNICODE_COLLATION_PROTOCOL (UEFI 2.10 19.1)
 * and EFI_DEVICE_PATH_UTILITIES_PROTOCOL (10.5), the string and device path helpers the EDK2
 * shell and other EDK2 applications take from the firmware.
 */
#include "lib.h"

typedef EFI_DEVICE_PATH_PROTOCOL DP;

static EFI_GUID uc2_guid = EFI_UNICODE_COLLATION_PROTOCOL2_GUID;
static EFI_GUID uc_guid = EFI_UNICODE_COLLATION_PROTOCOL_GUID;
static EFI_GUID dpu_guid = EFI_DEVICE_PATH_UTILITIES_PROTOCOL_GUID;

static EFI_UNICODE_COLLATION_PROTOCOL *uc;
static EFI_DEVICE_PATH_UTILITIES_PROTOCOL *dpu;

/* The CHAR16 characters of s as 4-digit hex numbers, for info lines. */
static void print_units(const CHAR16 *s)
{
    static const CHAR16 hex[] = L"0123456789abcdef";
    CHAR16 buf[6];
    int i;
    for (; *s; s++) {
        for (i = 0; i < 4; i++)
            buf[i] = hex[(*s >> (4 * (3 - i))) & 0xf];
        buf[4] = s[1] ? L' ' : 0;
        buf[5] = 0;
        print(buf);
    }
}

static void info_units(const CHAR16 *what, const CHAR16 *s)
{
    print(L"  info: ");
    print(what);
    print(L": ");
    print_units(s);
    print(L"\r\n");
}

static void copy16(CHAR16 *dst, const CHAR16 *src)
{
    while ((*dst++ = *src++) != 0)
        ;
}

/* -- Unicode collation ---------------------------------------------------------------------------- */

static void test_stricoll(void)
{
    CHAR16 e_lower[] = { 0xe9, L't', 0xe9, 0 }, e_upper[] = { 0xc9, L'T', 0xc9, 0 };
    CHECK(uc->StriColl(uc, L"Boot", L"bOOT") == 0, L"StriColl: Boot == bOOT");
    CHECK(uc->StriColl(uc, L"", L"") == 0, L"StriColl: empty == empty");
    CHECK(uc->StriColl(uc, L"abc", L"ABD") < 0, L"StriColl: abc < ABD");
    CHECK(uc->StriColl(uc, L"ABD", L"abc") > 0, L"StriColl: ABD > abc");
    CHECK(uc->StriColl(uc, L"a", L"B") < 0, L"StriColl: a < B (case is ignored)");
    CHECK(uc->StriColl(uc, L"abc", L"ab") > 0, L"StriColl: abc > ab (the longer one)");
    CHECK(uc->StriColl(uc, L"ab", L"ABC") < 0, L"StriColl: ab < ABC");
    CHECK(uc->StriColl(uc, L"_", L"a") > 0, L"StriColl: _ > a (compared in upper case)");
    CHECK(uc->StriColl(uc, e_lower, e_upper) == 0, L"StriColl: Latin-1 e-acute t e-acute == upper case");
}

static void test_metaimatch(void)
{
    CHECK(uc->MetaiMatch(uc, L"BOOTX64.EFI", L"*.EFI"), L"MetaiMatch: BOOTX64.EFI ~ *.EFI");
    CHECK(uc->MetaiMatch(uc, L"bootx64.efi", L"*.EFI"), L"MetaiMatch: bootx64.efi ~ *.EFI");
    CHECK(!uc->MetaiMatch(uc, L"bootx64.efi.bak", L"*.EFI"), L"MetaiMatch: bootx64.efi.bak !~ *.EFI");
    CHECK(uc->MetaiMatch(uc, L"bootx64.efi", L"boot?64.efi"), L"MetaiMatch: bootx64.efi ~ boot?64.efi");
    CHECK(uc->MetaiMatch(uc, L"BOOTX64.EFI", L"boot?64.efi"), L"MetaiMatch: BOOTX64.EFI ~ boot?64.efi");
    CHECK(!uc->MetaiMatch(uc, L"bootaa64.efi", L"boot?64.efi"), L"MetaiMatch: bootaa64.efi !~ boot?64.efi");
    CHECK(uc->MetaiMatch(uc, L"Boot", L"[a-c]*"), L"MetaiMatch: Boot ~ [a-c]*");
    CHECK(uc->MetaiMatch(uc, L"c", L"[a-c]*"), L"MetaiMatch: c ~ [a-c]*");
    CHECK(!uc->MetaiMatch(uc, L"dog", L"[a-c]*"), L"MetaiMatch: dog !~ [a-c]*");
    CHECK(uc->MetaiMatch(uc, L"B", L"[xyb]"), L"MetaiMatch: B ~ [xyb]");
    CHECK(!uc->MetaiMatch(uc, L"Bx", L"[xyb]"), L"MetaiMatch: Bx !~ [xyb]");
    CHECK(uc->MetaiMatch(uc, L"BOOTIA32.EFI", L"*[0-9][0-9].efi"), L"MetaiMatch: BOOTIA32.EFI ~ *[0-9][0-9].efi");
    CHECK(uc->MetaiMatch(uc, L"", L"*"), L"MetaiMatch: empty ~ *");
    CHECK(!uc->MetaiMatch(uc, L"", L"?"), L"MetaiMatch: empty !~ ?");
    CHECK(!uc->MetaiMatch(uc, L"a", L""), L"MetaiMatch: a !~ empty pattern");
    CHECK(uc->MetaiMatch(uc, L"a*b", L"a*b"), L"MetaiMatch: a*b ~ a*b");
    CHECK(uc->MetaiMatch(uc, L"abcabd", L"*ab?"), L"MetaiMatch: abcabd ~ *ab? (after a false start)");
}

static void test_case(void)
{
    CHAR16 s[32];
    CHAR16 latin[] = { 0xe9, 0xff, 0xdf, 0xc0, 0x101, 0 };
    copy16(s, L"Hello, World 123_xyz");
    uc->StrUpr(uc, s);
    CHECK(strcmp16(s, L"HELLO, WORLD 123_XYZ") == 0, L"StrUpr: Hello, World 123_xyz");
    copy16(s, L"Hello, World 123_XYZ");
    uc->StrLwr(uc, s);
    CHECK(strcmp16(s, L"hello, world 123_xyz") == 0, L"StrLwr: Hello, World 123_XYZ");
    s[0] = 0;
    uc->StrUpr(uc, s);
    CHECK(s[0] == 0, L"StrUpr: empty string");
    /* Latin-1 beyond ASCII: facts of the firmware's case table, not checks. */
    copy16(s, latin);
    info_units(L"StrUpr of 00e9 00ff 00df 00c0 0101", s);
    uc->StrUpr(uc, s);
    info_units(L"  gives", s);
    copy16(s, latin);
    uc->StrLwr(uc, s);
    info_units(L"StrLwr of the same gives", s);
}

static void test_fat(void)
{
    CHAR8 name83[] = "BOOTX64 EFI";
    CHAR8 nul_inside[] = { 'A', 'B', 0, 'C', 'D' };
    CHAR8 high[] = { 'A', (CHAR8)0xe9, 0 };
    CHAR8 fat[16];
    CHAR16 s[16];
    BOOLEAN lossy;
    int i;

    for (i = 0; i < 16; i++)
        s[i] = 0xffff;
    uc->FatToStr(uc, 11, name83, s);
    CHECK(strcmp16(s, L"BOOTX64 EFI") == 0, L"FatToStr: 11 bytes of BOOTX64 EFI");
    for (i = 0; i < 16; i++)
        s[i] = 0xffff;
    uc->FatToStr(uc, 4, name83, s);
    CHECK(strcmp16(s, L"BOOT") == 0 && s[5] == 0xffff, L"FatToStr: FatSize 4 gives BOOT and a NUL");
    uc->FatToStr(uc, 5, nul_inside, s);
    CHECK(strcmp16(s, L"AB") == 0, L"FatToStr: stops at a NUL before FatSize");
    uc->FatToStr(uc, 2, high, s);
    info_units(L"FatToStr of 41 e9", s);

    memset(fat, 0xaa, sizeof(fat));
    lossy = uc->StrToFat(uc, L"bootx64.efi", 11, fat);
    CHECK(!lossy, L"StrToFat: bootx64.efi is valid FAT (FALSE)");
    CHECK(memcmp(fat, "BOOTX64EFI", 10) == 0 && (UINT8)fat[10] == 0xaa,
          L"StrToFat: bootx64.efi gives BOOTX64EFI (. skipped, upper case, no NUL)");

    memset(fat, 0xaa, sizeof(fat));
    lossy = uc->StrToFat(uc, L"my file+name.txt", 11, fat);
    CHECK(lossy, L"StrToFat: my file+name.txt is lossy (TRUE)");
    CHECK(memcmp(fat, "MYFILE_NAME", 11) == 0 && (UINT8)fat[11] == 0xaa,
          L"StrToFat: my file+name.txt gives MYFILE_NAME (space skipped, + is _, FatSize 11)");

    memset(fat, 0xaa, sizeof(fat));
    lossy = uc->StrToFat(uc, L"abcdefghijk", 8, fat);
    CHECK(!lossy && memcmp(fat, "ABCDEFGH", 8) == 0 && (UINT8)fat[8] == 0xaa,
          L"StrToFat: at most FatSize (8) bytes");

    memset(fat, 0xaa, sizeof(fat));
    {
        CHAR16 wide[] = { L'a', 0x4e2d, L'~', L'!', 0 };
        lossy = uc->StrToFat(uc, wide, 8, fat);
    }
    CHECK(lossy && memcmp(fat, "A_~!", 4) == 0 && (UINT8)fat[4] == 0xaa,
          L"StrToFat: U+4E2D becomes _ (TRUE), ~ and ! are valid");

    memset(fat, 0xaa, sizeof(fat));
    lossy = uc->StrToFat(uc, L"a", 0, fat);
    CHECK(!lossy && (UINT8)fat[0] == 0xaa, L"StrToFat: FatSize 0 writes nothing");
}

static void test_collation(void)
{
    EFI_UNICODE_COLLATION_PROTOCOL *old = NULL;
    EFI_STATUS status;

    status = gBS->LocateProtocol(&uc2_guid, NULL, (VOID **)&uc);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"LocateProtocol(UNICODE_COLLATION2)") || !uc)
        return;
    CHECK(uc->SupportedLanguages && strcmp8(uc->SupportedLanguages, "en") == 0,
          L"UNICODE_COLLATION2 SupportedLanguages is \"en\" (RFC 4646)");
    status = gBS->LocateProtocol(&uc_guid, NULL, (VOID **)&old);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"LocateProtocol(UNICODE_COLLATION)") && old) {
        CHECK(old->SupportedLanguages && strcmp8(old->SupportedLanguages, "eng") == 0,
              L"UNICODE_COLLATION SupportedLanguages is \"eng\" (ISO 639-2)");
        CHECK(old->StriColl(old, L"Boot", L"bOOT") == 0 && old->StriColl(old, L"abc", L"ABD") < 0,
              L"UNICODE_COLLATION StriColl works the same");
    }
    test_stricoll();
    test_metaimatch();
    test_case();
    test_fat();
}

/* -- device path utilities ------------------------------------------------------------------------ */

#define END_NODE 0x7f, 0xff, 4, 0
/* PciRoot(0x0)/Pci(0x4,0x0): an ACPI node (12 bytes), a PCI node (6), End (4). */
static UINT8 pci_path[] = { 0x02, 0x01, 12, 0, 0xd0, 0x41, 0x03, 0x0a, 0, 0, 0, 0,
                            0x01, 0x01, 6, 0, 0x00, 0x04, END_NODE };
#define PCI_PATH 22
/* A file path node \EFI (4 + 10 bytes). */
static UINT8 file_node[] = { 0x04, 0x04, 14, 0, '\\', 0, 'E', 0, 'F', 0, 'I', 0, 0, 0 };
#define FILE_NODE 14
static UINT8 file_path[] = { 0x04, 0x04, 14, 0, '\\', 0, 'E', 0, 'F', 0, 'I', 0, 0, 0, END_NODE };
#define FILE_PATH 18
/* Invalid: a PCI node of Length 2. */
static UINT8 short_node_path[] = { 0x01, 0x01, 2, 0, 0x00, 0x04, END_NODE };
/* Invalid: a file path node whose name has no NUL. */
static UINT8 unterminated_file_path[] = { 0x04, 0x04, 8, 0, 'A', 0, 'B', 0, END_NODE };

static int free_ok(VOID *p)
{
    return p && gBS->FreePool(p) == EFI_SUCCESS;
}

static void test_device_paths(void)
{
    UINT8 expected[64];
    DP *dup, *appended, *joined, *node, *multi, *next, *walk, *copy;
    UINTN size;
    EFI_STATUS status;

    status = gBS->LocateProtocol(&dpu_guid, NULL, (VOID **)&dpu);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"LocateProtocol(DEVICE_PATH_UTILITIES)") || !dpu)
        return;

    CHECK(dpu->GetDevicePathSize((DP *)pci_path) == PCI_PATH, L"GetDevicePathSize: PciRoot/Pci/End is 22");
    CHECK(dpu->GetDevicePathSize((DP *)file_path) == FILE_PATH, L"GetDevicePathSize: a file path \\EFI is 18");
    CHECK(dpu->GetDevicePathSize(NULL) == 0, L"GetDevicePathSize(NULL) is 0");
    CHECK(dpu->GetDevicePathSize((DP *)short_node_path) == 0, L"GetDevicePathSize: a node of length 2 gives 0");
    CHECK(dpu->GetDevicePathSize((DP *)unterminated_file_path) == 0,
          L"GetDevicePathSize: a file path node without NUL gives 0");

    dup = dpu->DuplicateDevicePath((DP *)pci_path);
    CHECK(dup && dup != (DP *)pci_path && memcmp(dup, pci_path, PCI_PATH) == 0,
          L"DuplicateDevicePath: a new copy of the 22 bytes");
    CHECK(free_ok(dup), L"DuplicateDevicePath: the copy is pool memory (FreePool)");
    CHECK(dpu->DuplicateDevicePath(NULL) == NULL, L"DuplicateDevicePath(NULL) is NULL");
    CHECK(dpu->DuplicateDevicePath((DP *)short_node_path) == NULL, L"DuplicateDevicePath of a bad node is NULL");

    /* PciRoot/Pci/\EFI/End */
    memcpy(expected, pci_path, PCI_PATH - 4);
    memcpy(expected + PCI_PATH - 4, file_path, FILE_PATH);
    appended = dpu->AppendDeviceNode((DP *)pci_path, (DP *)file_node);
    CHECK(appended && dpu->GetDevicePathSize(appended) == PCI_PATH + FILE_NODE &&
          memcmp(appended, expected, PCI_PATH + FILE_NODE) == 0,
          L"AppendDeviceNode: PciRoot/Pci + \\EFI gives PciRoot/Pci/\\EFI/End (36 bytes)");
    joined = dpu->AppendDevicePath((DP *)pci_path, (DP *)file_path);
    CHECK(joined && memcmp(joined, expected, PCI_PATH + FILE_NODE) == 0,
          L"AppendDevicePath: PciRoot/Pci/End + \\EFI/End gives the same");
    CHECK(free_ok(appended) && free_ok(joined), L"FreePool of both");
    node = dpu->AppendDeviceNode(NULL, (DP *)file_node);
    CHECK(node && memcmp(node, file_path, FILE_PATH) == 0, L"AppendDeviceNode(NULL, node): the node and End");
    free_ok(node);
    node = dpu->AppendDevicePath(NULL, NULL);
    CHECK(node && dpu->GetDevicePathSize(node) == 4 && ((UINT8 *)node)[0] == 0x7f && ((UINT8 *)node)[1] == 0xff,
          L"AppendDevicePath(NULL, NULL): an End node");
    free_ok(node);
    node = dpu->AppendDevicePath((DP *)pci_path, NULL);
    CHECK(node && memcmp(node, pci_path, PCI_PATH) == 0, L"AppendDevicePath(path, NULL): a copy of the path");
    free_ok(node);
    CHECK(dpu->AppendDevicePath((DP *)pci_path, (DP *)short_node_path) == NULL,
          L"AppendDevicePath with a bad node is NULL");

    CHECK(dpu->CreateDeviceNode(0x01, 0x01, 3) == NULL, L"CreateDeviceNode: length 3 (< 4) gives NULL");
    node = dpu->CreateDeviceNode(0x01, 0x01, 6);
    CHECK(node && node->Type == 1 && node->SubType == 1 && node->Length[0] == 6 && node->Length[1] == 0 &&
          ((UINT8 *)node)[4] == 0 && ((UINT8 *)node)[5] == 0,
          L"CreateDeviceNode(1, 1, 6): header set, data zeroed");
    CHECK(free_ok(node), L"CreateDeviceNode: the node is pool memory (FreePool)");

    /* Two instances: PciRoot/Pci/EndInstance/\EFI/End */
    CHECK(!dpu->IsDevicePathMultiInstance((DP *)pci_path), L"IsDevicePathMultiInstance: one instance is FALSE");
    CHECK(!dpu->IsDevicePathMultiInstance(NULL), L"IsDevicePathMultiInstance(NULL) is FALSE");
    multi = dpu->AppendDevicePathInstance((DP *)pci_path, (DP *)file_path);
    memcpy(expected, pci_path, PCI_PATH);
    expected[PCI_PATH - 3] = 0x01; /* the first End becomes an End of instance */
    memcpy(expected + PCI_PATH, file_path, FILE_PATH);
    CHECK(multi && dpu->GetDevicePathSize(multi) == PCI_PATH + FILE_PATH &&
          memcmp(multi, expected, PCI_PATH + FILE_PATH) == 0,
          L"AppendDevicePathInstance: PciRoot/Pci/EndInstance/\\EFI/End (40 bytes)");
    CHECK(multi && dpu->IsDevicePathMultiInstance(multi), L"IsDevicePathMultiInstance: two instances is TRUE");
    CHECK(dpu->AppendDevicePathInstance((DP *)pci_path, NULL) == NULL, L"AppendDevicePathInstance(path, NULL) is NULL");
    copy = dpu->AppendDevicePathInstance(NULL, (DP *)file_path);
    CHECK(copy && memcmp(copy, file_path, FILE_PATH) == 0, L"AppendDevicePathInstance(NULL, instance): a copy");
    free_ok(copy);

    if (multi) {
        walk = multi;
        size = 0;
        next = dpu->GetNextDevicePathInstance(&walk, &size);
        CHECK(next && size == PCI_PATH && memcmp(next, pci_path, PCI_PATH) == 0,
              L"GetNextDevicePathInstance: the first instance with an End node, size 22");
        CHECK(walk == (DP *)((UINT8 *)multi + PCI_PATH), L"GetNextDevicePathInstance: moves to the second instance");
        free_ok(next);
        next = dpu->GetNextDevicePathInstance(&walk, &size);
        CHECK(next && size == FILE_PATH && memcmp(next, file_path, FILE_PATH) == 0,
              L"GetNextDevicePathInstance: the second instance, size 18");
        CHECK(walk == NULL, L"GetNextDevicePathInstance: NULL after the last instance");
        free_ok(next);
        size = 99;
        CHECK(dpu->GetNextDevicePathInstance(&walk, &size) == NULL && size == 0,
              L"GetNextDevicePathInstance of NULL: NULL, size 0");
        walk = (DP *)pci_path;
        next = dpu->GetNextDevicePathInstance(&walk, &size);
        CHECK(next && size == PCI_PATH && walk == NULL, L"GetNextDevicePathInstance of a single instance path");
        free_ok(next);
        CHECK(free_ok(multi), L"FreePool of the multi-instance path");
    }
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    test_collation();
    test_device_paths();
    return lib_done();
}
