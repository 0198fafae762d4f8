/*
 * devtext: EFI_DEVICE_PATH_TO_TEXT_PROTOCOL and EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL (UEFI 2.10 10.6):
 * device paths to text and back, in the text forms of 10.6.1.6 as EDK2 writes them, which the
 * EDK2 Shell and boot managers show (map, bcfg) and read.
 */
#include "lib.h"

typedef EFI_DEVICE_PATH_PROTOCOL DP;

static EFI_GUID to_text_guid = EFI_DEVICE_PATH_TO_TEXT_PROTOCOL_GUID;
static EFI_GUID from_text_guid = EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL_GUID;
static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
static EFI_GUID loaded_image_path_guid = EFI_LOADED_IMAGE_DEVICE_PATH_PROTOCOL_GUID;

static EFI_DEVICE_PATH_TO_TEXT_PROTOCOL *to_text;
static EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL *from_text;

/* -- building device paths ------------------------------------------------------------------------ */

/* A node of `type`/`sub` with `len` bytes of data at p; returns the byte after it. */
static UINT8 *node(UINT8 *p, UINT8 type, UINT8 sub, const void *data, UINTN len)
{
    dp_set_node((DP *)p, type, sub, len + 4);
    memcpy(p + 4, data, len);
    return p + 4 + len;
}

static UINT8 *le(UINT8 *p, UINT64 v, int bytes)
{
    int i;
    for (i = 0; i < bytes; i++)
        *p++ = (UINT8)(v >> (8 * i));
    return p;
}

static UINT8 *end_node(UINT8 *p, UINT8 sub)
{
    return node(p, END_DEVICE_PATH_TYPE, sub, NULL, 0);
}

#define EISA_PNP_ID(n) (((UINT32)(n) << 16) | 0x41d0)

static UINT8 *acpi(UINT8 *p, UINT32 hid, UINT32 uid)
{
    UINT8 d[8];
    le(le(d, hid, 4), uid, 4);
    return node(p, 0x02, 0x01, d, sizeof(d));
}

static UINT8 *pci(UINT8 *p, UINT8 device, UINT8 function)
{
    UINT8 d[2] = { function, device };
    return node(p, 0x01, 0x01, d, sizeof(d));
}

static UINT8 *sata(UINT8 *p, UINT16 port, UINT16 multiplier, UINT16 lun)
{
    UINT8 d[6];
    le(le(le(d, port, 2), multiplier, 2), lun, 2);
    return node(p, 0x03, 0x12, d, sizeof(d));
}

/* HD(): PartitionNumber, PartitionStart, PartitionSize, Signature[16], MBRType, SignatureType */
static UINT8 *hd(UINT8 *p, UINT32 number, UINT64 start, UINT64 size, const UINT8 *signature, UINT8 mbr_type,
                 UINT8 signature_type)
{
    UINT8 d[38], *q = le(le(le(d, number, 4), start, 8), size, 8);
    memcpy(q, signature, 16);
    q[16] = mbr_type;
    q[17] = signature_type;
    return node(p, MEDIA_DEVICE_PATH, MEDIA_HARDDRIVE_DP, d, sizeof(d));
}

static UINT8 *file(UINT8 *p, const CHAR16 *name)
{
    return node(p, MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP, name, (strlen16(name) + 1) * sizeof(CHAR16));
}

/* 8F9A9C4D-13B9-4E34-8B1B-4D0F2A36D6A0 as an EFI_GUID in memory */
static const UINT8 gpt_signature[16] = { 0x4d, 0x9c, 0x9a, 0x8f, 0xb9, 0x13, 0x34, 0x4e,
                                         0x8b, 0x1b, 0x4d, 0x0f, 0x2a, 0x36, 0xd6, 0xa0 };
#define GPT_GUID_TEXT L"8F9A9C4D-13B9-4E34-8B1B-4D0F2A36D6A0"
/* 6F0F8A1C-5B7E-4B1E-9A43-65666973747A */
static const UINT8 vendor_guid[16] = { 0x1c, 0x8a, 0x0f, 0x6f, 0x7e, 0x5b, 0x1e, 0x4b,
                                       0x9a, 0x43, 0x65, 0x66, 0x69, 0x73, 0x74, 0x7a };
#define VENDOR_GUID_TEXT L"6F0F8A1C-5B7E-4B1E-9A43-65666973747A"

/* -- checks --------------------------------------------------------------------------------------- */

static void print_text(const CHAR16 *label, const CHAR16 *text)
{
    print(label);
    if (text) {
        print(L"\"");
        print(text);
        print(L"\"");
    } else {
        print(L"NULL");
    }
    print(L"\r\n");
}

/* PASS when text is want; FAIL with a note of what came instead. Frees text. */
static int check_text(CHAR16 *text, const CHAR16 *want, const CHAR16 *name)
{
    int ok = text && strcmp16(text, want) == 0;
    if (!ok)
        print_text(L"  note: got ", text);
    if (text)
        gBS->FreePool(text);
    return check(ok, name);
}

/* PASS when the node at got has exactly the `size` bytes of want (the caller checked its length). Frees got. */
static int check_bytes(DP *got, const VOID *want, UINTN size, const CHAR16 *name)
{
    int ok = got && memcmp(got, want, size) == 0;
    if (!ok)
        print(got ? L"  note: other bytes\r\n" : L"  note: got NULL\r\n");
    if (got)
        gBS->FreePool(got);
    return check(ok, name);
}

/* PASS when got is a device path of exactly the `size` bytes of want. Frees got. */
static int check_path(DP *got, const VOID *want, UINTN size, const CHAR16 *name)
{
    if (got && dp_path_size(got) != size) {
        print(L"  note: a path of ");
        print_dec(dp_path_size(got));
        print(L" bytes\r\n");
        gBS->FreePool(got);
        return check(0, name);
    }
    return check_bytes(got, want, size, name);
}

/* PASS when got is a node of exactly the `length` bytes of want. Frees got. */
static int check_node(DP *got, const VOID *want, UINTN length, const CHAR16 *name)
{
    if (got && dp_node_length(got) != length) {
        print(L"  note: a node of ");
        print_dec(dp_node_length(got));
        print(L" bytes\r\n");
        gBS->FreePool(got);
        return check(0, name);
    }
    return check_bytes(got, want, length, name);
}

/* One node: its bytes, its text and its DisplayOnly text (NULL: the same). */
struct node_case {
    UINT8 bytes[64];
    const CHAR16 *text;
    const CHAR16 *display;
};

static UINT8 *guid_node(UINT8 *p, UINT8 type, UINT8 sub, const UINT8 *guid, const UINT8 *data, UINTN len)
{
    UINT8 d[48];
    memcpy(d, guid, 16);
    memcpy(d + 16, data, len);
    return node(p, type, sub, d, 16 + len);
}

static struct node_case cases[32];
static UINTN ncases;

/* The node just built at NEXT (its end, unused) has these texts. */
static void add(UINT8 *end, const CHAR16 *text, const CHAR16 *display)
{
    (void)end;
    cases[ncases].text = text;
    cases[ncases].display = display;
    ncases++;
}

#define NEXT (cases[ncases].bytes)

static void build_cases(void)
{
    UINT8 d[64], *q;
    static const UINT8 vendor_data[] = { 0x01, 0x02, 0xa0, 0xff };

    add(acpi(NEXT, EISA_PNP_ID(0x0303), 0), L"Acpi(PNP0303,0x0)", NULL);
    add(acpi(NEXT, EISA_PNP_ID(0x0a08), 1), L"PcieRoot(0x1)", NULL);
    /* AcpiEx: HID PNP0A03, UID 0, CID 0, HIDSTR "", UIDSTR "ABC", CIDSTR "" */
    q = le(le(le(d, EISA_PNP_ID(0x0a03), 4), 0, 4), 0, 4);
    memcpy(q, "\0ABC\0", 6);
    add(node(NEXT, 0x02, 0x02, d, 18), L"AcpiExp(PNP0A03,0,ABC)", L"PciRoot(ABC)");
    /* AcpiEx: HID PNP0A03, UID 1, CID PNP0A08, three empty strings */
    q = le(le(le(d, EISA_PNP_ID(0x0a03), 4), 1, 4), EISA_PNP_ID(0x0a08), 4);
    memcpy(q, "\0\0\0", 3);
    add(node(NEXT, 0x02, 0x02, d, 15), L"AcpiEx(PNP0A03,PNP0A08,0x1,,,)", L"");
    add(pci(NEXT, 0x1f, 0x2), L"Pci(0x1F,0x2)", NULL);
    add(guid_node(NEXT, 0x01, 0x04, vendor_guid, NULL, 0), L"VenHw(" VENDOR_GUID_TEXT L")", NULL);
    add(guid_node(NEXT, 0x01, 0x04, vendor_guid, vendor_data, sizeof(vendor_data)),
        L"VenHw(" VENDOR_GUID_TEXT L",0102A0FF)", NULL);
    le(d, 2, 4);
    add(node(NEXT, 0x01, 0x05, d, 4), L"Ctrl(0x2)", NULL);
    le(le(le(d, 11, 4), 0xfed00000, 8), 0xfed003ff, 8);
    add(node(NEXT, 0x01, 0x03, d, 20), L"MemoryMapped(0xB,0xFED00000,0xFED003FF)", NULL);
    add(sata(NEXT, 0, 0xffff, 0), L"Sata(0x0,0xFFFF,0x0)", NULL);
    le(le(d, 1, 2), 0, 2);
    add(node(NEXT, 0x03, 0x02, d, 4), L"Scsi(0x1,0x0)", NULL);
    d[0] = 1;
    d[1] = 0;
    add(node(NEXT, 0x03, 0x05, d, 2), L"USB(0x1,0x0)", NULL);
    q = le(d, 1, 4);
    memcpy(q, "\xef\xcd\xab\x89\x67\x45\x23\x01", 8);
    add(node(NEXT, 0x03, 0x17, d, 12), L"NVMe(0x1,01-23-45-67-89-AB-CD-EF)", NULL);
    memset(d, 0, sizeof(d));
    memcpy(d, "\x52\x54\x00\x12\x34\x56", 6);
    d[32] = 1;
    add(node(NEXT, 0x03, 0x0b, d, 33), L"MAC(525400123456,0x1)", NULL);
    /* IPv4: Local 192.168.0.2, Remote 192.168.0.1, ports 0, TCP, static, gateway, mask */
    memset(d, 0, sizeof(d));
    memcpy(d, "\xc0\xa8\x00\x02\xc0\xa8\x00\x01", 8);
    d[12] = 6;
    d[14] = 1;
    memcpy(d + 15, "\xc0\xa8\x00\xfe\xff\xff\xff\x00", 8);
    add(node(NEXT, 0x03, 0x0c, d, 23), L"IPv4(192.168.0.1,TCP,Static,192.168.0.2,192.168.0.254,255.255.255.0)",
        L"IPv4(192.168.0.1)");
    /* IPv6: Local FE80::2, Remote 2001:DB8::1, ports 0, UDP, stateless, prefix 64, gateway FE80::1 */
    memset(d, 0, sizeof(d));
    memcpy(d, "\xfe\x80", 2);
    d[15] = 2;
    memcpy(d + 16, "\x20\x01\x0d\xb8", 4);
    d[31] = 1;
    d[36] = 17;
    d[38] = 1;
    d[39] = 64;
    memcpy(d + 40, "\xfe\x80", 2);
    d[55] = 1;
    add(node(NEXT, 0x03, 0x0d, d, 56),
        L"IPv6(2001:0DB8:0000:0000:0000:0000:0000:0001,UDP,StatelessAutoConfigure,"
        L"FE80:0000:0000:0000:0000:0000:0000:0002,0x40,FE80:0000:0000:0000:0000:0000:0000:0001)",
        L"IPv6(2001:0DB8:0000:0000:0000:0000:0000:0001)");
    add(node(NEXT, 0x03, 0x18, "http://boot.example/efi/boot.efi", 32), L"Uri(http://boot.example/efi/boot.efi)", NULL);
    add(guid_node(NEXT, 0x03, 0x0a, vendor_guid, NULL, 0), L"VenMsg(" VENDOR_GUID_TEXT L")", NULL);
    add(hd(NEXT, 1, 0x800, 0x100000, gpt_signature, 2, 2), L"HD(1,GPT," GPT_GUID_TEXT L",0x800,0x100000)",
        L"HD(1,GPT," GPT_GUID_TEXT L")");
    memset(d, 0, 16);
    memcpy(d, "\x78\x56\x34\x12", 4);
    add(hd(NEXT, 2, 0x800, 0x1000, d, 1, 1), L"HD(2,MBR,0x12345678,0x800,0x1000)", L"HD(2,MBR,0x12345678)");
    le(le(le(d, 0, 4), 0x10, 8), 0x20, 8);
    add(node(NEXT, 0x04, 0x02, d, 20), L"CDROM(0x0,0x10,0x20)", L"CDROM(0x0)");
    add(guid_node(NEXT, 0x04, 0x03, vendor_guid, NULL, 0), L"VenMedia(" VENDOR_GUID_TEXT L")", NULL);
    add(file(NEXT, L"\\EFI\\BOOT\\BOOTX64.EFI"), L"\\EFI\\BOOT\\BOOTX64.EFI", NULL);
    add(guid_node(NEXT, 0x04, 0x07, vendor_guid, NULL, 0), L"Fv(" VENDOR_GUID_TEXT L")", NULL);
    add(guid_node(NEXT, 0x04, 0x06, vendor_guid, NULL, 0), L"FvFile(" VENDOR_GUID_TEXT L")", NULL);
    le(le(le(d, 0, 4), 0, 8), 0xfff, 8);
    add(node(NEXT, 0x04, 0x08, d, 20), L"Offset(0x0,0xFFF)", NULL);
    le(le(d, 2, 2), 0, 2);
    memcpy(d + 4, "Disk", 5);
    add(node(NEXT, 0x05, 0x01, d, 9), L"BBS(HD,Disk,0x0)", L"BBS(HD,Disk)");
    add(node(NEXT, 0x10, 0x01, "\x01\x02", 2), L"Path(16,1,0102)", NULL);
    add(node(NEXT, 0x01, 0x99, "\xaa\xbb", 2), L"HardwarePath(153,AABB)", NULL);
}

/* -- the tests ------------------------------------------------------------------------------------ */

static UINT8 known[256];
static UINTN known_size;
#define KNOWN_TEXT L"PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,GPT," GPT_GUID_TEXT \
                   L",0x800,0x100000)/\\EFI\\BOOT\\BOOTX64.EFI"
#define KNOWN_DISPLAY L"PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,GPT," GPT_GUID_TEXT \
                      L")/\\EFI\\BOOT\\BOOTX64.EFI"

static void test_known_path(void)
{
    UINT8 *p = known;
    CHAR16 *text;
    p = acpi(p, EISA_PNP_ID(0x0a03), 0);
    p = pci(p, 0x1f, 0x2);
    p = sata(p, 0, 0xffff, 0);
    p = hd(p, 1, 0x800, 0x100000, gpt_signature, 2, 2);
    p = file(p, L"\\EFI\\BOOT\\BOOTX64.EFI");
    p = end_node(p, END_ENTIRE_DEVICE_PATH_SUBTYPE);
    known_size = (UINTN)(p - known);

    check_text(to_text->ConvertDevicePathToText((DP *)known, FALSE, FALSE), KNOWN_TEXT,
               L"ConvertDevicePathToText: PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,GPT,...,0x800,0x100000)"
               L"/\\EFI\\BOOT\\BOOTX64.EFI");
    check_text(to_text->ConvertDevicePathToText((DP *)known, FALSE, TRUE), KNOWN_TEXT,
               L"ConvertDevicePathToText: AllowShortcuts gives the same");
    /* DisplayOnly HD() without start and size came to EDK2 in 2024; older EDK2 writes them. */
    text = to_text->ConvertDevicePathToText((DP *)known, TRUE, FALSE);
    print_text(L"  info: DisplayOnly: ", text);
    CHECK(text && (strcmp16(text, KNOWN_DISPLAY) == 0 || strcmp16(text, KNOWN_TEXT) == 0),
          L"ConvertDevicePathToText DisplayOnly: HD(1,GPT,guid) (EDK2 before 2024: with start and size)");
    if (text)
        CHECK(gBS->FreePool(text) == EFI_SUCCESS, L"the text is pool memory (FreePool)");
    check_path(from_text->ConvertTextToDevicePath(KNOWN_TEXT), known, known_size,
                L"ConvertTextToDevicePath of that text gives the path");
    check_path(from_text->ConvertTextToDevicePath(L"\\EFI\\BOOT\\BOOTX64.EFI"), known + known_size - 52, 52,
                L"ConvertTextToDevicePath: \\EFI\\BOOT\\BOOTX64.EFI is one file path node and End");
}

static void test_nodes(void)
{
    UINTN i, length;
    CHAR16 name[200];
    int display_ok = 1;
    CHAR16 *text;
    const CHAR16 *display;
    const UINT8 *bytes;
    DP *back;

    build_cases();
    for (i = 0; i < ncases; i++) {
        bytes = cases[i].bytes;
        display = cases[i].display ? cases[i].display : cases[i].text;
        length = dp_node_length((DP *)bytes);
        cat16(name, 200, L"ConvertDeviceNodeToText: ", cases[i].text);
        check_text(to_text->ConvertDeviceNodeToText((DP *)bytes, FALSE, FALSE), cases[i].text, name);

        back = from_text->ConvertTextToDeviceNode(cases[i].text);
        cat16(name, 200, L"ConvertTextToDeviceNode gives the node: ", cases[i].text);
        check_node(back, bytes, length, name);

        /* DisplayOnly AcpiEx with empty strings differs between EDK2 versions: not checked (""). */
        if (!display[0])
            continue;
        text = to_text->ConvertDeviceNodeToText((DP *)bytes, TRUE, FALSE);
        if (!text || strcmp16(text, display) != 0) {
            print_text(L"  info: DisplayOnly: ", text);
            /* EDK2 before 2024 writes HD() with start and size with DisplayOnly too */
            if (!(text && strcmp16(text, cases[i].text) == 0 && display[0] == L'H' && display[1] == L'D'))
                display_ok = 0;
        }
        if (text)
            gBS->FreePool(text);
    }
    CHECK(display_ok, L"ConvertDeviceNodeToText DisplayOnly: IPv4/IPv6 only the remote address, CDROM(entry), "
                      L"BBS(type,string), PciRoot(UIDSTR), HD(n,type,signature), the rest as without");
}

static void test_instances_and_ends(void)
{
    UINT8 multi[64], only_end[4], end_entire[4], *p = multi;
    UINTN size;
    CHAR16 *text;

    p = acpi(p, EISA_PNP_ID(0x0a03), 0);
    p = pci(p, 0x1, 0x0);
    p = end_node(p, END_INSTANCE_DEVICE_PATH_SUBTYPE);
    p = acpi(p, EISA_PNP_ID(0x0a03), 0);
    p = pci(p, 0x2, 0x0);
    p = end_node(p, END_ENTIRE_DEVICE_PATH_SUBTYPE);
    size = (UINTN)(p - multi);
    text = to_text->ConvertDevicePathToText((DP *)multi, FALSE, FALSE);
    print_text(L"  info: two instances: ", text);
    /* EDK2 writes a / after the , between instances */
    check_text(text, L"PciRoot(0x0)/Pci(0x1,0x0),/PciRoot(0x0)/Pci(0x2,0x0)",
               L"ConvertDevicePathToText: two instances, joined by ,/ (EDK2)");
    check_path(from_text->ConvertTextToDevicePath(L"PciRoot(0x0)/Pci(0x1,0x0),/PciRoot(0x0)/Pci(0x2,0x0)"), multi,
                size, L"ConvertTextToDevicePath: A,/B gives two instances");
    check_path(from_text->ConvertTextToDevicePath(L"PciRoot(0x0)/Pci(0x1,0x0),PciRoot(0x0)/Pci(0x2,0x0)"), multi,
                size, L"ConvertTextToDevicePath: A,B (the spec's form) gives the same");
    end_node(end_entire, END_ENTIRE_DEVICE_PATH_SUBTYPE);
    end_node(only_end, END_ENTIRE_DEVICE_PATH_SUBTYPE);
    check_text(to_text->ConvertDevicePathToText((DP *)only_end, FALSE, FALSE), L"",
               L"ConvertDevicePathToText of an End node alone: an empty string");
    check_text(to_text->ConvertDeviceNodeToText((DP *)(multi + 18), FALSE, FALSE), L",",
               L"ConvertDeviceNodeToText of an End-of-instance node: ,");
    check_text(to_text->ConvertDeviceNodeToText((DP *)end_entire, FALSE, FALSE), L"Path(127,255)",
               L"ConvertDeviceNodeToText of the End node: Path(127,255)");
}

static void test_nulls_and_bad_text(void)
{
    DP *path;

    CHECK(to_text->ConvertDeviceNodeToText(NULL, FALSE, FALSE) == NULL, L"ConvertDeviceNodeToText(NULL) is NULL");
    CHECK(to_text->ConvertDevicePathToText(NULL, FALSE, FALSE) == NULL, L"ConvertDevicePathToText(NULL) is NULL");
    CHECK(from_text->ConvertTextToDeviceNode(NULL) == NULL, L"ConvertTextToDeviceNode(NULL) is NULL");
    CHECK(from_text->ConvertTextToDevicePath(NULL) == NULL, L"ConvertTextToDevicePath(NULL) is NULL");
    CHECK(from_text->ConvertTextToDeviceNode(L"") == NULL, L"ConvertTextToDeviceNode(\"\") is NULL");
    CHECK(from_text->ConvertTextToDevicePath(L"") == NULL, L"ConvertTextToDevicePath(\"\") is NULL");
    CHECK(from_text->ConvertTextToDeviceNode(L"Dns()") == NULL, L"ConvertTextToDeviceNode(\"Dns()\"): no server is NULL");

    /* Not checked: a node too long for its 16-bit Length, such as Path(1,1,<65532 bytes>). efistub gives
       NULL; EDK2 2022.11 (Debian 12) writes the data through the NULL node it got (x86 OVMF scribbles
       over its first 64 KiB of memory, AAVMF takes a synchronous exception). */

    /* What the firmware makes of text that does not read: facts, not checks (EDK2 reads anyway). */
    path = from_text->ConvertTextToDevicePath(L"PciRoot(0x0)/Pci(0x1F,0x2");
    print(L"  info: ConvertTextToDevicePath(\"PciRoot(0x0)/Pci(0x1F,0x2\"): ");
    if (path) {
        print(L"a path of ");
        print_dec(dp_path_size(path));
        print(L" bytes\r\n");
        gBS->FreePool(path);
    } else {
        print(L"NULL\r\n");
    }
    path = from_text->ConvertTextToDeviceNode(L"Pci(0x100000000000000000000,0x0)");
    print(L"  info: ConvertTextToDeviceNode(\"Pci(0x100000000000000000000,0x0)\"): ");
    if (path) {
        CHAR16 *text = to_text->ConvertDeviceNodeToText(path, FALSE, FALSE);
        print_text(L"", text);
        if (text)
            gBS->FreePool(text);
        gBS->FreePool(path);
    } else {
        print(L"NULL\r\n");
    }
}

static int ends_with(const CHAR16 *s, const CHAR16 *tail)
{
    UINTN a = strlen16(s), b = strlen16(tail);
    return a >= b && strcmp16(s + a - b, tail) == 0;
}

static void test_own_image(void)
{
    EFI_LOADED_IMAGE_PROTOCOL *li = NULL;
    DP *path = NULL, *back;
    CHAR16 *text, *file_text;
    UINTN size;
    EFI_STATUS status;

    status = gBS->HandleProtocol(gImage, &loaded_image_path_guid, (VOID **)&path);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"HandleProtocol(LOADED_IMAGE_DEVICE_PATH)") || !path)
        return;
    gBS->HandleProtocol(gImage, &loaded_image_guid, (VOID **)&li);
    text = to_text->ConvertDevicePathToText(path, FALSE, FALSE);
    print_text(L"  info: our LOADED_IMAGE_DEVICE_PATH: ", text);
    CHECK(text && text[0], L"ConvertDevicePathToText of our LOADED_IMAGE_DEVICE_PATH is a text");
    if (!text)
        return;
    file_text = li && li->FilePath ? to_text->ConvertDevicePathToText(li->FilePath, FALSE, FALSE) : NULL;
    CHECK(file_text && file_text[0] && ends_with(text, file_text),
          L"it ends with the text of our LOADED_IMAGE FilePath");
    if (file_text)
        gBS->FreePool(file_text);
    size = dp_path_size(path);
    back = from_text->ConvertTextToDevicePath(text);
    CHECK(back && size && dp_path_size(back) == size && memcmp(back, path, size) == 0,
          L"ConvertTextToDevicePath of that text gives the same path");
    if (back)
        gBS->FreePool(back);
    gBS->FreePool(text);
    text = to_text->ConvertDevicePathToText(path, TRUE, FALSE);
    print_text(L"  info: DisplayOnly: ", text);
    if (text)
        gBS->FreePool(text);
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_STATUS status;

    lib_init(image, st);
    status = gBS->LocateProtocol(&to_text_guid, NULL, (VOID **)&to_text);
    CHECK_STATUS(status, EFI_SUCCESS, L"LocateProtocol(DEVICE_PATH_TO_TEXT)");
    status = gBS->LocateProtocol(&from_text_guid, NULL, (VOID **)&from_text);
    CHECK_STATUS(status, EFI_SUCCESS, L"LocateProtocol(DEVICE_PATH_FROM_TEXT)");
    if (to_text && from_text) {
        test_known_path();
        test_nodes();
        test_instances_and_ends();
        test_nulls_and_bad_text();
        test_own_image();
    }
    return lib_done();
}
