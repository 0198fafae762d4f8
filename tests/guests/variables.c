/* variables: GetVariable / SetVariable / GetNextVariableName / QueryVariableInfo (UEFI 2.10 8.2). */
#include "lib.h"

#define NV EFI_VARIABLE_NON_VOLATILE
#define BS EFI_VARIABLE_BOOTSERVICE_ACCESS
#define RT EFI_VARIABLE_RUNTIME_ACCESS

/* A made-up vendor GUID: these names exist nowhere else. */
static EFI_GUID vendor =
    { 0x0e86f127, 0x3ab8, 0x4b42, { 0xb1, 0xdf, 0x0f, 0x86, 0x78, 0x08, 0x13, 0x9f } };
static CHAR16 name[] = L"EfistubTestVar";
static CHAR16 missing[] = L"EfistubMissingVar";
static CHAR16 volatile_name[] = L"EfistubVolatileVar";
static CHAR16 rt_only_name[] = L"EfistubRtOnlyVar";
static CHAR16 empty_name[] = L"";
static UINT8 data1[12] = { 'e', 'f', 'i', 's', 't', 'u', 'b', 0x00, 0xff, 0x10, 0x20, 0x30 };
static UINT8 data2[5] = { 5, 4, 3, 2, 1 };

/* Walks GetNextVariableName from the start, growing the name buffer as told. */
static int enumerate_finds(const CHAR16 *want, const EFI_GUID *want_guid, UINTN *resized)
{
    CHAR16 *buf = NULL, *bigger;
    UINTN cap = 4, size, steps = 0;
    EFI_GUID guid;
    EFI_STATUS status;
    int found = 0;

    *resized = 0;
    /* Start deliberately small (room for one character) to exercise EFI_BUFFER_TOO_SMALL. */
    if (gBS->AllocatePool(EfiLoaderData, cap, (VOID **)&buf) != EFI_SUCCESS)
        return 0;
    buf[0] = 0;
    memset(&guid, 0, sizeof(guid));
    while (steps++ < 10000) {
        size = cap;
        status = gRT->GetNextVariableName(&size, buf, &guid);
        if (status == EFI_BUFFER_TOO_SMALL) {
            if (size <= cap)
                break; /* the firmware must ask for more than it had */
            if (gBS->AllocatePool(EfiLoaderData, size, (VOID **)&bigger) != EFI_SUCCESS)
                break;
            memset(bigger, 0, size);
            gBS->CopyMem(bigger, buf, cap);
            gBS->FreePool(buf);
            buf = bigger;
            cap = size;
            (*resized)++;
            continue;
        }
        if (status != EFI_SUCCESS)
            break; /* EFI_NOT_FOUND: the end of the list */
        if (strcmp16(buf, want) == 0 && guid_eq(&guid, want_guid))
            found = 1;
    }
    gBS->FreePool(buf);
    return found;
}

static void test_variables(void)
{
    UINT8 buf[32];
    UINT32 attrs;
    UINTN size, resized = 0;
    EFI_STATUS status;

    size = sizeof(buf);
    status = gRT->GetVariable(missing, &vendor, &attrs, &size, buf);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"GetVariable: missing name -> EFI_NOT_FOUND");

    status = gRT->SetVariable(name, &vendor, NV | BS | RT, sizeof(data1), data1);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"SetVariable: NV+BS+RT variable"))
        return;

    size = 4;
    status = gRT->GetVariable(name, &vendor, &attrs, &size, buf);
    CHECK_STATUS(status, EFI_BUFFER_TOO_SMALL, L"GetVariable: small buffer -> EFI_BUFFER_TOO_SMALL");
    CHECK(size == sizeof(data1), L"GetVariable: small buffer reports the real DataSize");
    size = 0;
    status = gRT->GetVariable(name, &vendor, NULL, &size, NULL);
    CHECK_STATUS(status, EFI_BUFFER_TOO_SMALL, L"GetVariable: size probe with NULL Data -> EFI_BUFFER_TOO_SMALL");
    CHECK(size == sizeof(data1), L"GetVariable: size probe reports the real DataSize");

    memset(buf, 0, sizeof(buf));
    attrs = 0;
    size = sizeof(buf);
    status = gRT->GetVariable(name, &vendor, &attrs, &size, buf);
    CHECK_STATUS(status, EFI_SUCCESS, L"GetVariable: succeeds");
    CHECK(size == sizeof(data1) && memcmp(buf, data1, sizeof(data1)) == 0, L"GetVariable: data matches");
    CHECK(attrs == (NV | BS | RT), L"GetVariable: attributes match");
    size = sizeof(buf);
    status = gRT->GetVariable(name, &vendor, NULL, &size, buf);
    CHECK_STATUS(status, EFI_SUCCESS, L"GetVariable: NULL Attributes allowed");

    CHECK(enumerate_finds(name, &vendor, &resized), L"GetNextVariableName: enumeration finds the variable");
    CHECK(resized > 0, L"GetNextVariableName: small name buffer -> EFI_BUFFER_TOO_SMALL with a larger size");

    status = gRT->SetVariable(name, &vendor, NV | BS | RT, sizeof(data2), data2);
    CHECK_STATUS(status, EFI_SUCCESS, L"SetVariable: overwrite with new data");
    size = sizeof(buf);
    status = gRT->GetVariable(name, &vendor, &attrs, &size, buf);
    CHECK(status == EFI_SUCCESS && size == sizeof(data2) && memcmp(buf, data2, sizeof(data2)) == 0,
          L"GetVariable: sees the overwritten data");

    status = gRT->SetVariable(name, &vendor, NV | BS | RT, 0, NULL);
    CHECK_STATUS(status, EFI_SUCCESS, L"SetVariable: DataSize 0 deletes");
    size = sizeof(buf);
    status = gRT->GetVariable(name, &vendor, &attrs, &size, buf);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"GetVariable: deleted variable -> EFI_NOT_FOUND");
    CHECK(!enumerate_finds(name, &vendor, &resized), L"GetNextVariableName: deleted variable not listed");
    status = gRT->SetVariable(name, &vendor, NV | BS | RT, 0, NULL);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"SetVariable: deleting a missing variable -> EFI_NOT_FOUND");

    status = gRT->SetVariable(volatile_name, &vendor, BS | RT, sizeof(data2), data2);
    CHECK_STATUS(status, EFI_SUCCESS, L"SetVariable: volatile BS+RT variable");
    size = sizeof(buf);
    attrs = 0;
    status = gRT->GetVariable(volatile_name, &vendor, &attrs, &size, buf);
    CHECK(status == EFI_SUCCESS && attrs == (BS | RT) && size == sizeof(data2),
          L"GetVariable: volatile variable with its attributes");
    status = gRT->SetVariable(volatile_name, &vendor, BS | RT, 0, NULL);
    CHECK_STATUS(status, EFI_SUCCESS, L"SetVariable: delete the volatile variable");

    status = gRT->SetVariable(rt_only_name, &vendor, NV | RT, sizeof(data2), data2);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"SetVariable: RUNTIME_ACCESS without BOOTSERVICE_ACCESS -> EFI_INVALID_PARAMETER");
    status = gRT->SetVariable(rt_only_name, &vendor, RT, sizeof(data2), data2);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"SetVariable: RUNTIME_ACCESS alone -> EFI_INVALID_PARAMETER");
    status = gRT->SetVariable(empty_name, &vendor, BS, sizeof(data2), data2);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"SetVariable: empty name -> EFI_INVALID_PARAMETER");
}

static void test_query(void)
{
    UINT64 max = 0, remaining = 0, max_var = 0;
    EFI_STATUS status;

    status = gRT->QueryVariableInfo(NV | BS | RT, &max, &remaining, &max_var);
    CHECK_STATUS(status, EFI_SUCCESS, L"QueryVariableInfo: NV+BS+RT succeeds");
    CHECK(max > 0 && max >= remaining, L"QueryVariableInfo: MaximumVariableStorageSize >= RemainingVariableStorageSize");
    CHECK(max_var > 0 && max_var <= max, L"QueryVariableInfo: MaximumVariableSize in 1..MaximumVariableStorageSize");
    status = gRT->QueryVariableInfo(BS | RT, &max, &remaining, &max_var);
    CHECK_STATUS(status, EFI_SUCCESS, L"QueryVariableInfo: volatile BS+RT succeeds");
    status = gRT->QueryVariableInfo(NV | RT, &max, &remaining, &max_var);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"QueryVariableInfo: RUNTIME_ACCESS without BOOTSERVICE_ACCESS -> EFI_INVALID_PARAMETER");
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    print(L"variables: variable services\r\n");
    test_variables();
    test_query();
    return lib_done();
}
