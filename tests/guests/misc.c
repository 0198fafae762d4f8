/*
 * misc: table headers and CRCs (UEFI 2.10 sections 4.2-4.5), CopyMem / SetMem /
 * CalculateCrc32, TPLs, monotonic counters, Stall, SetWatchdogTimer,
 * ConOut modes and GetTime.
 */
#include "lib.h"

static UINT8 crc_copy[1024];

/* The header sizes depend on the pointer width: 64-bit targets and IA32. */
#if __SIZEOF_POINTER__ == 8
#define ST_SIZE L"120"
#define BS_SIZE L"376"
#define RT_SIZE L"136"
#else
#define ST_SIZE L"72"
#define BS_SIZE L"200"
#define RT_SIZE L"80"
#endif

/* The table's CRC32, computed over HeaderSize bytes with the CRC32 field zeroed. */
static int header_crc_ok(const EFI_TABLE_HEADER *hdr, const CHAR16 *name)
{
    UINT32 crc = 0;
    EFI_STATUS status;

    if (hdr->HeaderSize < sizeof(EFI_TABLE_HEADER) || hdr->HeaderSize > sizeof(crc_copy))
        return CHECK(0, name);
    gBS->CopyMem(crc_copy, (VOID *)hdr, hdr->HeaderSize);
    ((EFI_TABLE_HEADER *)crc_copy)->CRC32 = 0;
    status = gBS->CalculateCrc32(crc_copy, hdr->HeaderSize, &crc);
    if (status != EFI_SUCCESS || crc != hdr->CRC32) {
        print(L"  note: computed ");
        print_hex(crc);
        print(L", header says ");
        print_hex(hdr->CRC32);
        print(L"\r\n");
    }
    return CHECK(status == EFI_SUCCESS && crc == hdr->CRC32, name);
}

static void test_tables(void)
{
    CHECK(gST->Hdr.Signature == EFI_SYSTEM_TABLE_SIGNATURE, L"SystemTable: signature IBI SYST");
    CHECK(gST->Hdr.Revision >= (2U << 16), L"SystemTable: revision >= 2.0");
    CHECK(gST->Hdr.HeaderSize == sizeof(EFI_SYSTEM_TABLE), L"SystemTable: HeaderSize == " ST_SIZE);
    CHECK(gBS->Hdr.Signature == EFI_BOOT_SERVICES_SIGNATURE, L"BootServices: signature BOOTSERV");
    CHECK(gBS->Hdr.Revision >= (2U << 16), L"BootServices: revision >= 2.0");
    CHECK(gBS->Hdr.HeaderSize == sizeof(EFI_BOOT_SERVICES), L"BootServices: HeaderSize == " BS_SIZE L" (44 services)");
    CHECK(gRT->Hdr.Signature == EFI_RUNTIME_SERVICES_SIGNATURE, L"RuntimeServices: signature RUNTSERV");
    CHECK(gRT->Hdr.Revision >= (2U << 16), L"RuntimeServices: revision >= 2.0");
    CHECK(gRT->Hdr.HeaderSize == sizeof(EFI_RUNTIME_SERVICES), L"RuntimeServices: HeaderSize == " RT_SIZE L" (14 services)");
    header_crc_ok(&gST->Hdr, L"SystemTable: header CRC32 matches CalculateCrc32");
    header_crc_ok(&gBS->Hdr, L"BootServices: header CRC32 matches CalculateCrc32");
    header_crc_ok(&gRT->Hdr, L"RuntimeServices: header CRC32 matches CalculateCrc32");
    CHECK(gST->FirmwareVendor != NULL && gST->FirmwareVendor[0] != 0, L"SystemTable: FirmwareVendor is a non-empty string");
    CHECK(gST->ConOut != NULL && gST->ConsoleOutHandle != NULL, L"SystemTable: ConOut and its handle set");
    CHECK(gST->NumberOfTableEntries == 0 || gST->ConfigurationTable != NULL,
          L"SystemTable: ConfigurationTable set when it has entries");
}

static void test_mem_services(void)
{
    static UINT8 buf[64];
    static const CHAR8 text[] = "123456789";
    UINT32 crc = 0;
    UINTN i;
    int ok;

    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (UINT8)i;
    gBS->CopyMem(buf + 8, buf, 32); /* destination above source: copies backwards */
    ok = 1;
    for (i = 0; i < 32; i++)
        if (buf[8 + i] != (UINT8)i)
            ok = 0;
    for (i = 0; i < 8; i++)
        if (buf[i] != (UINT8)i)
            ok = 0;
    CHECK(ok, L"CopyMem: overlapping, destination above source");

    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (UINT8)i;
    gBS->CopyMem(buf, buf + 8, 32); /* destination below source */
    ok = 1;
    for (i = 0; i < 32; i++)
        if (buf[i] != (UINT8)(i + 8))
            ok = 0;
    for (i = 32; i < sizeof(buf); i++)
        if (buf[i] != (UINT8)i)
            ok = 0;
    CHECK(ok, L"CopyMem: overlapping, destination below source");

    gBS->CopyMem(buf, buf + 1, 0);
    CHECK(buf[0] == 8, L"CopyMem: zero length copies nothing");

    gBS->SetMem(buf + 4, 16, 0xA5);
    ok = buf[3] == 11 && buf[20] == 28; /* values left by the copy above */
    for (i = 4; i < 20; i++)
        if (buf[i] != 0xA5)
            ok = 0;
    CHECK(ok, L"SetMem: fills exactly the range");

    CHECK_STATUS(gBS->CalculateCrc32((VOID *)text, 9, &crc), EFI_SUCCESS, L"CalculateCrc32: succeeds");
    CHECK(crc == 0xCBF43926, L"CalculateCrc32: \"123456789\" == 0xCBF43926");
    CHECK_STATUS(gBS->CalculateCrc32((VOID *)text, 0, &crc), EFI_INVALID_PARAMETER,
                 L"CalculateCrc32: DataSize 0 -> EFI_INVALID_PARAMETER");
    CHECK_STATUS(gBS->CalculateCrc32((VOID *)text, 9, NULL), EFI_INVALID_PARAMETER,
                 L"CalculateCrc32: NULL Crc32 -> EFI_INVALID_PARAMETER");
}

static void test_tpl_and_time(void)
{
    EFI_TPL old;
    UINT64 a = 0, b = 0, c = 0;
    UINT32 high = 0;
    EFI_STATUS status;

    old = gBS->RaiseTPL(TPL_NOTIFY);
    gBS->RestoreTPL(old);
    CHECK(old == TPL_APPLICATION, L"RaiseTPL(TPL_NOTIFY): returns TPL_APPLICATION");
    old = gBS->RaiseTPL(TPL_CALLBACK);
    gBS->RestoreTPL(old);
    CHECK(old == TPL_APPLICATION, L"RestoreTPL: back at TPL_APPLICATION");

    status = gBS->GetNextMonotonicCount(&a);
    CHECK_STATUS(status, EFI_SUCCESS, L"GetNextMonotonicCount: succeeds");
    gBS->GetNextMonotonicCount(&b);
    gBS->GetNextMonotonicCount(&c);
    CHECK(a < b && b < c, L"GetNextMonotonicCount: strictly increases");
    CHECK_STATUS(gBS->GetNextMonotonicCount(NULL), EFI_INVALID_PARAMETER,
                 L"GetNextMonotonicCount: NULL -> EFI_INVALID_PARAMETER");
    CHECK_STATUS(gRT->GetNextHighMonotonicCount(&high), EFI_SUCCESS, L"GetNextHighMonotonicCount: succeeds");

    CHECK_STATUS(gBS->Stall(10), EFI_SUCCESS, L"Stall(10): succeeds");
    CHECK_STATUS(gBS->SetWatchdogTimer(0, 0, 0, NULL), EFI_SUCCESS, L"SetWatchdogTimer(0): disables the watchdog");
}

static void test_console(void)
{
    EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *out = gST->ConOut;
    UINTN cols = 0, rows = 0;
    EFI_STATUS status;

    CHECK(out->Mode != NULL && out->Mode->MaxMode >= 1, L"ConOut: Mode->MaxMode >= 1");
    CHECK(out->Mode != NULL && out->Mode->Mode >= 0 && out->Mode->Mode < out->Mode->MaxMode,
          L"ConOut: current Mode->Mode below MaxMode");
    status = out->QueryMode(out, 0, &cols, &rows);
    CHECK_STATUS(status, EFI_SUCCESS, L"ConOut QueryMode(0): succeeds");
    CHECK(cols == 80 && rows == 25, L"ConOut QueryMode(0): 80x25");
    if (out->Mode) {
        status = out->QueryMode(out, (UINTN)out->Mode->MaxMode, &cols, &rows);
        CHECK_STATUS(status, EFI_UNSUPPORTED, L"ConOut QueryMode(MaxMode) -> EFI_UNSUPPORTED");
    }
    CHECK_STATUS(out->TestString(out, L"plain ASCII"), EFI_SUCCESS, L"ConOut TestString: ASCII supported");
    CHECK_STATUS(out->OutputString(out, L""), EFI_SUCCESS, L"ConOut OutputString: succeeds");
}

static void test_get_time(void)
{
    EFI_TIME t;
    EFI_TIME_CAPABILITIES caps;
    EFI_STATUS status;

    memset(&t, 0, sizeof(t));
    memset(&caps, 0, sizeof(caps));
    status = gRT->GetTime(&t, &caps);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"GetTime: succeeds"))
        return;
    print(L"  info: year ");
    print_dec(t.Year);
    print(L"\r\n");
    CHECK(t.Year >= 2024 && t.Year <= 9999, L"GetTime: year >= 2024");
    CHECK(t.Month >= 1 && t.Month <= 12, L"GetTime: month 1..12");
    CHECK(t.Day >= 1 && t.Day <= 31, L"GetTime: day 1..31");
    CHECK(t.Hour <= 23 && t.Minute <= 59 && t.Second <= 59, L"GetTime: hour, minute, second in range");
    CHECK(t.Nanosecond <= 999999999, L"GetTime: nanosecond in range");
    CHECK(t.TimeZone == 0x07FF || (t.TimeZone >= -1440 && t.TimeZone <= 1440),
          L"GetTime: TimeZone in range or unspecified");
    CHECK(caps.Resolution >= 1, L"GetTime: Capabilities.Resolution >= 1");
    CHECK_STATUS(gRT->GetTime(NULL, NULL), EFI_INVALID_PARAMETER, L"GetTime: NULL Time -> EFI_INVALID_PARAMETER");
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    print(L"misc: tables, CRCs, memory helpers, TPL, time, console\r\n");
    test_tables();
    test_mem_services();
    test_tpl_and_time();
    test_console();
    test_get_time();
    return lib_done();
}
