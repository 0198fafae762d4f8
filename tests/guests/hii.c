/*
 * hii: EFI_HII_DATABASE_PROTOCOL and EFI_HII_STRING_PROTOCOL (UEFI 2.10 34.8, 34.2)
 * as EDK2 applications use them: a package list of two string packages, then its
 * strings, languages, new and changed strings, export, update and removal.
 */
#include "lib.h"

static EFI_GUID hii_database_guid = EFI_HII_DATABASE_PROTOCOL_GUID;
static EFI_GUID hii_string_guid = EFI_HII_STRING_PROTOCOL_GUID;
static EFI_GUID hii_config_routing_guid = EFI_HII_CONFIG_ROUTING_PROTOCOL_GUID;
/* A made-up package list GUID. */
static EFI_GUID list_guid =
    { 0x6a3d2f8e, 0x51c4, 0x4b0e, { 0x9e, 0x1a, 0x7c, 0x55, 0x03, 0xd2, 0xe8, 0x41 } };

#define LIST_HEADER sizeof(EFI_HII_PACKAGE_LIST_HEADER)
#define LIST_LENGTH_AT __builtin_offsetof(EFI_HII_PACKAGE_LIST_HEADER, PackageLength)
#define STRING_HEADER __builtin_offsetof(EFI_HII_STRING_PACKAGE_HDR, Language)

static EFI_HII_DATABASE_PROTOCOL *db;
static EFI_HII_STRING_PROTOCOL *hs;

/* A byte buffer the package lists are built in. */
static UINT8 buf[4096];
static UINTN len;

static void put8(UINT8 v) { buf[len++] = v; }
static void put16(UINT16 v) { put8(v & 0xff); put8(v >> 8); }
static void put32(UINT32 v) { put16(v & 0xffff); put16(v >> 16); }
static void put32_at(UINTN at, UINT32 v)
{
    buf[at] = v & 0xff; buf[at + 1] = (v >> 8) & 0xff; buf[at + 2] = (v >> 16) & 0xff; buf[at + 3] = v >> 24;
}
static void put_text(const CHAR16 *s)
{
    do put16(*s); while (*s++);
}

static UINTN begin_list(void)
{
    len = 0;
    memcpy(buf, &list_guid, sizeof(EFI_GUID));
    len = sizeof(EFI_GUID);
    put32(0);
    return 0;
}

static void end_list(void)
{
    put32((UINT32)sizeof(EFI_HII_PACKAGE_HEADER) | ((UINT32)EFI_HII_PACKAGE_END << 24));
    put32_at(LIST_LENGTH_AT, (UINT32)len);
}

/* A string package header for an ASCII language; returns where the package starts. */
static UINTN begin_strings(const char *language)
{
    UINTN start = len, n = 0, i;
    while (language[n])
        n++;
    put32(0);                          /* Header, patched by end_strings */
    put32(STRING_HEADER + n + 1);      /* HdrSize */
    put32(STRING_HEADER + n + 1);      /* StringInfoOffset */
    for (i = 0; i < 16; i++)
        put16(0);                      /* LanguageWindow */
    put16(1);                          /* LanguageName: string 1 */
    for (i = 0; i <= n; i++)
        put8((UINT8)language[i]);
    return start;
}

static void end_strings(UINTN start)
{
    put8(EFI_HII_SIBT_END);
    put32_at(start, (UINT32)(len - start) | (EFI_HII_PACKAGE_STRINGS << 24));
}

/* en-US: 1 "English", 2 "World", 3-4 skipped, 5 "five" and 6 "six" in one block,
   7 a duplicate of 2. fr-FR: 1 "Francais", 2 "Monde". */
static void build_list(void)
{
    UINTN p;
    begin_list();
    p = begin_strings("en-US");
    put8(EFI_HII_SIBT_STRING_UCS2); put_text(L"English");
    put8(EFI_HII_SIBT_STRING_UCS2); put_text(L"World");
    put8(EFI_HII_SIBT_SKIP1); put8(2);
    put8(EFI_HII_SIBT_STRINGS_UCS2); put16(2); put_text(L"five"); put_text(L"six");
    put8(EFI_HII_SIBT_DUPLICATE); put16(2);
    end_strings(p);
    p = begin_strings("fr-FR");
    put8(EFI_HII_SIBT_STRING_UCS2); put_text(L"Francais");
    put8(EFI_HII_SIBT_STRING_UCS2); put_text(L"Monde");
    end_strings(p);
    end_list();
}

/* A replacement for the string packages: en-US 1 "English", 2 "Updated". */
static void build_update(void)
{
    UINTN p;
    begin_list();
    p = begin_strings("en-US");
    put8(EFI_HII_SIBT_STRING_UCS2); put_text(L"English");
    put8(EFI_HII_SIBT_STRING_UCS2); put_text(L"Updated");
    end_strings(p);
    end_list();
}

/* GetString into a fresh pool buffer after a size probe; NULL and the status in *st on failure. */
static CHAR16 *get_string(EFI_HII_HANDLE h, const char *language, EFI_STRING_ID id, EFI_STATUS *st)
{
    CHAR16 probe, *s;
    UINTN size = 0;
    *st = hs->GetString(hs, (CHAR8 *)language, h, id, &probe, &size, NULL);
    if (*st != EFI_BUFFER_TOO_SMALL)
        return NULL;
    if (gBS->AllocatePool(EfiLoaderData, size, (VOID **)&s) != EFI_SUCCESS)
        return NULL;
    *st = hs->GetString(hs, (CHAR8 *)language, h, id, s, &size, NULL);
    if (*st != EFI_SUCCESS) {
        gBS->FreePool(s);
        return NULL;
    }
    return s;
}

static int string_is(EFI_HII_HANDLE h, const char *language, EFI_STRING_ID id, const CHAR16 *want)
{
    EFI_STATUS st;
    CHAR16 *s = get_string(h, language, id, &st);
    int ok = s && strcmp16(s, want) == 0;
    if (!ok) {
        print(L"  note: ");
        print(s ? s : L"(no string)");
        print(L", status ");
        print_status(st);
        print(L"\r\n");
    }
    if (s)
        gBS->FreePool(s);
    return ok;
}

static EFI_STATUS string_status(EFI_HII_HANDLE h, const char *language, EFI_STRING_ID id)
{
    EFI_STATUS st;
    CHAR16 *s = get_string(h, language, id, &st);
    if (s)
        gBS->FreePool(s);
    return st;
}

static int listed(EFI_HII_HANDLE h, UINT8 type)
{
    EFI_HII_HANDLE *handles;
    UINTN size = 0, i, found = 0;
    if (db->ListPackageLists(db, type, NULL, &size, NULL) != EFI_BUFFER_TOO_SMALL || size == 0)
        return 0;
    if (gBS->AllocatePool(EfiLoaderData, size, (VOID **)&handles) != EFI_SUCCESS)
        return 0;
    if (db->ListPackageLists(db, type, NULL, &size, handles) == EFI_SUCCESS)
        for (i = 0; i < size / sizeof(EFI_HII_HANDLE); i++)
            found |= handles[i] == h;
    gBS->FreePool(handles);
    return found;
}

static void test_hii(void)
{
    EFI_HII_HANDLE h = NULL, h2 = NULL, again;
    VOID *routing = NULL;
    EFI_HANDLE driver = (EFI_HANDLE)1;
    EFI_STRING_ID id = 0, id_de = 0;
    CHAR8 languages[64];
    CHAR16 probe;
    UINT8 *exported = NULL;
    UINTN size;
    UINT32 length;

    if (!CHECK_STATUS(gBS->LocateProtocol(&hii_database_guid, NULL, (VOID **)&db), EFI_SUCCESS,
                      L"LocateProtocol(HII_DATABASE)") ||
        !CHECK_STATUS(gBS->LocateProtocol(&hii_string_guid, NULL, (VOID **)&hs), EFI_SUCCESS,
                      L"LocateProtocol(HII_STRING)"))
        return;
    CHECK_STATUS(gBS->LocateProtocol(&hii_config_routing_guid, NULL, &routing), EFI_SUCCESS,
                 L"LocateProtocol(HII_CONFIG_ROUTING)");

    build_list();
    CHECK_STATUS(db->NewPackageList(db, buf, NULL, NULL), EFI_INVALID_PARAMETER, L"NewPackageList: NULL Handle");
    CHECK_STATUS(db->NewPackageList(db, NULL, NULL, &h), EFI_INVALID_PARAMETER, L"NewPackageList: NULL list");
    if (!CHECK_STATUS(db->NewPackageList(db, buf, NULL, &h), EFI_SUCCESS, L"NewPackageList") || !h)
        return;
    CHECK_STATUS(db->NewPackageList(db, buf, NULL, &again), EFI_INVALID_PARAMETER,
                 L"NewPackageList: the same GUID and driver handle again");

    /* Languages */
    size = 0;
    CHECK_STATUS(hs->GetLanguages(hs, h, NULL, &size), EFI_BUFFER_TOO_SMALL, L"GetLanguages: size probe");
    CHECK(size == sizeof("en-US;fr-FR"), L"GetLanguages: size of \"en-US;fr-FR\" and NUL");
    size = sizeof(languages);
    CHECK(hs->GetLanguages(hs, h, languages, &size) == EFI_SUCCESS && strcmp8(languages, "en-US;fr-FR") == 0,
          L"GetLanguages: en-US;fr-FR");
    size = 4;
    CHECK_STATUS(hs->GetLanguages(hs, h, NULL, &size), EFI_INVALID_PARAMETER,
                 L"GetLanguages: NULL Languages with a size");

    /* Strings */
    size = 0;
    CHECK_STATUS(hs->GetString(hs, (CHAR8 *)"en-US", h, 2, &probe, &size, NULL), EFI_BUFFER_TOO_SMALL,
                 L"GetString: size probe");
    CHECK(size == sizeof(L"World"), L"GetString: size of L\"World\" and NUL");
    CHECK(string_is(h, "en-US", 1, L"English"), L"GetString: en-US 1 English");
    CHECK(string_is(h, "en-US", 2, L"World"), L"GetString: en-US 2 World");
    CHECK(string_is(h, "en-US", 5, L"five") && string_is(h, "en-US", 6, L"six"),
          L"GetString: SIBT_STRINGS_UCS2 gives 5 and 6");
    CHECK(string_is(h, "en-US", 7, L"World"), L"GetString: SIBT_DUPLICATE 7 gives string 2");
    CHECK(string_is(h, "EN-us", 2, L"World"), L"GetString: language tags compare without case");
    CHECK(string_is(h, "fr-FR", 2, L"Monde"), L"GetString: fr-FR 2 Monde");
    CHECK_STATUS(string_status(h, "en-US", 3), EFI_NOT_FOUND, L"GetString: a skipped ID is NOT_FOUND");
    CHECK_STATUS(string_status(h, "en-US", 99), EFI_NOT_FOUND, L"GetString: an ID beyond the last is NOT_FOUND");
    CHECK_STATUS(string_status(h, "fr-FR", 5), EFI_INVALID_LANGUAGE,
                 L"GetString: an ID only en-US has, in fr-FR, is INVALID_LANGUAGE");
    CHECK_STATUS(string_status(h, "de-DE", 1), EFI_INVALID_LANGUAGE,
                 L"GetString: a language no package has is INVALID_LANGUAGE");
    size = 0;
    CHECK_STATUS(hs->GetString(hs, (CHAR8 *)"en-US", h, 0, &probe, &size, NULL), EFI_INVALID_PARAMETER,
                 L"GetString: ID 0");
    size = 2;
    CHECK_STATUS(hs->GetString(hs, (CHAR8 *)"en-US", h, 1, NULL, &size, NULL), EFI_INVALID_PARAMETER,
                 L"GetString: NULL String with a size");
    CHECK_STATUS(hs->GetString(hs, NULL, h, 1, &probe, &size, NULL), EFI_INVALID_PARAMETER,
                 L"GetString: NULL Language");

    /* New and changed strings */
    CHECK_STATUS(hs->NewString(hs, h, &id, (CHAR8 *)"en-US", NULL, L"added", NULL), EFI_SUCCESS, L"NewString");
    CHECK(id > 7, L"NewString: the new ID is past the package's last (7)");
    CHECK(string_is(h, "en-US", id, L"added"), L"GetString: the new string");
    CHECK_STATUS(hs->SetString(hs, h, 2, (CHAR8 *)"en-US", L"Earth", NULL), EFI_SUCCESS, L"SetString");
    CHECK(string_is(h, "en-US", 2, L"Earth"), L"GetString: the changed string");
    CHECK(string_is(h, "fr-FR", 2, L"Monde"), L"SetString: the other language keeps its string");
    CHECK_STATUS(hs->NewString(hs, h, &id_de, (CHAR8 *)"de-DE", L"Deutsch", L"Welt", NULL), EFI_SUCCESS,
                 L"NewString: a new language with its name");
    CHECK(string_is(h, "de-DE", id_de, L"Welt"), L"GetString: the new language's string");
    size = sizeof(languages);
    CHECK(hs->GetLanguages(hs, h, languages, &size) == EFI_SUCCESS && strcmp8(languages, "en-US;fr-FR;de-DE") == 0,
          L"GetLanguages: de-DE added");

    /* The database */
    CHECK(listed(h, EFI_HII_PACKAGE_TYPE_ALL), L"ListPackageLists(ALL) has the list");
    CHECK(listed(h, EFI_HII_PACKAGE_STRINGS), L"ListPackageLists(STRINGS) has the list");
    size = 0;
    CHECK_STATUS(db->ListPackageLists(db, EFI_HII_PACKAGE_TYPE_GUID, NULL, &size, NULL), EFI_INVALID_PARAMETER,
                 L"ListPackageLists(TYPE_GUID) without a GUID");
    CHECK(db->GetPackageListHandle(db, h, &driver) == EFI_SUCCESS && driver == NULL,
          L"GetPackageListHandle: the NULL driver handle it was added with");
    size = 0;
    CHECK_STATUS(db->ExportPackageLists(db, h, &size, NULL), EFI_BUFFER_TOO_SMALL, L"ExportPackageLists: size probe");
    if (size > LIST_HEADER && gBS->AllocatePool(EfiLoaderData, size, (VOID **)&exported) == EFI_SUCCESS) {
        CHECK_STATUS(db->ExportPackageLists(db, h, &size, exported), EFI_SUCCESS, L"ExportPackageLists");
        memcpy(&length, exported + LIST_LENGTH_AT, 4);
        CHECK(guid_eq((EFI_GUID *)exported, &list_guid) && length == size,
              L"ExportPackageLists: our GUID, PackageLength == BufferSize");
    }

    CHECK_STATUS(db->RemovePackageList(db, h), EFI_SUCCESS, L"RemovePackageList");
    CHECK_STATUS(db->RemovePackageList(db, h), EFI_NOT_FOUND, L"RemovePackageList: again");
    CHECK_STATUS(string_status(h, "en-US", 1), EFI_NOT_FOUND, L"GetString: a removed list");
    CHECK(!listed(h, EFI_HII_PACKAGE_TYPE_ALL), L"ListPackageLists: the removed list is gone");
    if (exported) {
        CHECK_STATUS(db->NewPackageList(db, exported, NULL, &h2), EFI_SUCCESS, L"NewPackageList: the exported list");
        CHECK(string_is(h2, "en-US", 2, L"Earth") && string_is(h2, "en-US", id, L"added") &&
              string_is(h2, "fr-FR", 1, L"Francais") && string_is(h2, "de-DE", id_de, L"Welt"),
              L"the exported list has every string, changed and new ones too");
        build_update();
        CHECK_STATUS(db->UpdatePackageList(db, h2, buf), EFI_SUCCESS, L"UpdatePackageList");
        CHECK(string_is(h2, "en-US", 2, L"Updated"), L"UpdatePackageList: the new string package");
        CHECK_STATUS(string_status(h2, "fr-FR", 1), EFI_INVALID_LANGUAGE,
                     L"UpdatePackageList: the old string packages are gone");
        CHECK_STATUS(db->RemovePackageList(db, h2), EFI_SUCCESS, L"RemovePackageList: the re-added list");
        gBS->FreePool(exported);
    }
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    test_hii();
    return lib_done();
}
