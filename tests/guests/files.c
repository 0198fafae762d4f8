/*
 * files: EFI_SIMPLE_FILE_SYSTEM_PROTOCOL and EFI_FILE_PROTOCOL (UEFI 2.10 13.4, 13.5)
 * on the volume this program was loaded from, reached as boot loaders reach it:
 * HandleProtocol(ImageHandle, LOADED_IMAGE) -> DeviceHandle ->
 * HandleProtocol(DeviceHandle, SIMPLE_FILE_SYSTEM) -> OpenVolume.
 *
 * The volume must hold (make-files-esp.sh makes it; README.md, "files"):
 *   \EFI\BOOT\BOOT<ARCH>.EFI       this program
 *   \files\hello.txt               "hello, efi\n" (11 bytes)
 *   \files\Mixed Case Name.TXT     4096 bytes, byte i = i & 0xFF
 *   \files\sub\                    an empty directory
 *   \files\child.efi               a copy of this architecture's exit.efi
 *
 * Writes are tested only on a writable volume: the probe
 * Open("files\new.txt", READ|WRITE|CREATE) gives EFI_WRITE_PROTECTED on a
 * read-only one (efistub --esp DIR without --esp-writable). On a writable one
 * (efistub --esp-writable, QEMU fat:rw) the program creates, writes, truncates,
 * renames and deletes files\new.txt and creates and deletes files\newdir\ (with
 * files\newdir\inner.txt); it removes leftovers of an interrupted earlier run
 * first, and leaves the volume as it found it.
 *
 * The expectations are those of EDK2's FAT driver (FatPkg/EnhancedFatDxe, OVMF)
 * where UEFI leaves a choice; README.md lists them.
 */
#include "lib.h"

static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
static EFI_GUID sfs_guid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID;
static EFI_GUID device_path_guid = EFI_DEVICE_PATH_PROTOCOL_GUID;
static EFI_GUID file_info_guid = EFI_FILE_INFO_ID;
static EFI_GUID fs_info_guid = EFI_FILE_SYSTEM_INFO_ID;
/* A made-up information type. */
static EFI_GUID unknown_info_guid =
    { 0x3d0c5a7e, 0x91b4, 0x4f2a, { 0x8e, 0x61, 0x27, 0xc9, 0x40, 0xd5, 0x1b, 0x86 } };

#define HELLO_SIZE 11
#define MIXED_SIZE 4096
static const UINT8 hello_bytes[HELLO_SIZE] = "hello, efi\n";
static const CHAR16 exit_marker[] = L"exit-data-marker";

#define MODE_R EFI_FILE_MODE_READ
#define MODE_RW (EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE)
#define MODE_RWC (EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE | EFI_FILE_MODE_CREATE)

/* 8-byte aligned buffers for EFI_FILE_INFO and EFI_FILE_SYSTEM_INFO. */
static UINT64 info_space[160];
#define INFO ((EFI_FILE_INFO *)info_space)
static UINT8 data[8192];

static EFI_LOADED_IMAGE_PROTOCOL *gLoaded;
static int gFsInfoOk;
static BOOLEAN gFsReadOnly;
static UINTN gClosed, gCloseFailures;

/* ---- helpers ---- */

static CHAR16 lower16(CHAR16 c)
{
    return (c >= L'A' && c <= L'Z') ? (CHAR16)(c + (L'a' - L'A')) : c;
}

static int stricmp16(const CHAR16 *a, const CHAR16 *b)
{
    while (*a && lower16(*a) == lower16(*b)) {
        a++;
        b++;
    }
    return (int)lower16(*a) - (int)lower16(*b);
}

static int contains_i16(const CHAR16 *hay, const CHAR16 *needle)
{
    UINTN i;
    for (; *hay; hay++) {
        for (i = 0; needle[i] && lower16(hay[i]) == lower16(needle[i]); i++)
            ;
        if (!needle[i])
            return 1;
    }
    return 0;
}

static int is_dot_name(const CHAR16 *name)
{
    return strcmp16(name, L".") == 0 || strcmp16(name, L"..") == 0;
}

static int is_hello(const UINT8 *buf, UINTN n)
{
    return n == HELLO_SIZE && memcmp(buf, hello_bytes, HELLO_SIZE) == 0;
}

static int pattern_ok(const UINT8 *buf, UINTN offset, UINTN n)
{
    UINTN i;
    for (i = 0; i < n; i++)
        if (buf[i] != (UINT8)((offset + i) & 0xFF))
            return 0;
    return 1;
}

static void info_status(const CHAR16 *what, EFI_STATUS s)
{
    print(L"  info: ");
    print(what);
    print(L" -> ");
    print_status(s);
    print(L"\r\n");
}

/* A status check that, when the status is right, also needs `ok`. */
static int check_st(EFI_STATUS got, EFI_STATUS want, int ok, const CHAR16 *name)
{
    if (got != want)
        return check_status(got, want, name);
    return check(ok, name);
}

/* A value check that prints both values (decimal) when they differ. */
static int check_eq(UINT64 got, UINT64 want, const CHAR16 *name)
{
    if (got != want) {
        print(L"  note: got ");
        print_dec(got);
        print(L", expected ");
        print_dec(want);
        print(L"\r\n");
    }
    return check(got == want, name);
}

/* Status first, then the value. */
static int check_st_eq(EFI_STATUS s, UINT64 got, UINT64 want, const CHAR16 *name)
{
    if (s != EFI_SUCCESS)
        return check_status(s, EFI_SUCCESS, name);
    return check_eq(got, want, name);
}

static EFI_STATUS fopen_(EFI_FILE_PROTOCOL *from, EFI_FILE_PROTOCOL **out, const CHAR16 *name,
                         UINT64 mode, UINT64 attributes)
{
    EFI_FILE_PROTOCOL *h = NULL;
    EFI_STATUS s = from->Open(from, &h, (CHAR16 *)name, mode, attributes);
    *out = NULL;
    if (s == EFI_SUCCESS && h == NULL) {
        print(L"  note: Open returned EFI_SUCCESS and a NULL handle\r\n");
        return EFI_ABORTED;
    }
    if (s == EFI_SUCCESS)
        *out = h;
    return s;
}

/* Every handle opened is closed through here; the last check counts the failures. */
static void fclose_(EFI_FILE_PROTOCOL *f, const CHAR16 *what)
{
    EFI_STATUS s;
    if (!f)
        return;
    s = f->Close(f);
    gClosed++;
    if (s != EFI_SUCCESS) {
        print(L"  note: Close(");
        print(what);
        print(L") -> ");
        print_status(s);
        print(L"\r\n");
        gCloseFailures++;
    }
}

/* Close a handle that an unexpected EFI_SUCCESS gave us. */
static void close_if(EFI_STATUS s, EFI_FILE_PROTOCOL *f, const CHAR16 *what)
{
    if (s == EFI_SUCCESS)
        fclose_(f, what);
}

static EFI_STATUS get_info(EFI_FILE_PROTOCOL *f)
{
    UINTN size = sizeof(info_space);
    memset(info_space, 0, sizeof(info_space));
    return f->GetInfo(f, &file_info_guid, &size, info_space);
}

static EFI_STATUS read_some(EFI_FILE_PROTOCOL *f, UINTN *n, UINTN cap)
{
    *n = cap;
    return f->Read(f, n, data);
}

static void print_info_entry(UINTN index, const EFI_FILE_INFO *fi)
{
    print(L"  info: entry ");
    print_dec(index);
    print(L": \"");
    print(fi->FileName);
    if (fi->Attribute & EFI_FILE_DIRECTORY) {
        print(L"\" directory");
    } else {
        print(L"\" ");
        print_dec(fi->FileSize);
        print(L" bytes");
    }
    print(L", attributes ");
    print_hex_digits(fi->Attribute, 2);
    print(L"\r\n");
}

/* ---- the volume ---- */

/* The path text of the MEDIA_FILEPATH nodes of a device path, concatenated (at most 255 characters). */
static void file_path_text(const EFI_DEVICE_PATH_PROTOCOL *dp, CHAR16 *out, UINTN cap, UINTN *file_nodes)
{
    UINTN used = 0, len, i, guard;
    *file_nodes = 0;
    out[0] = 0;
    for (guard = 0; dp && guard < 64 && dp->Type != END_DEVICE_PATH_TYPE; guard++) {
        len = dp_node_length(dp);
        if (len < sizeof(EFI_DEVICE_PATH_PROTOCOL))
            break;
        if (dp->Type == MEDIA_DEVICE_PATH && dp->SubType == MEDIA_FILEPATH_DP) {
            const UINT8 *p = (const UINT8 *)dp + sizeof(EFI_DEVICE_PATH_PROTOCOL);
            (*file_nodes)++;
            for (i = 0; i + 1 < len - sizeof(EFI_DEVICE_PATH_PROTOCOL) && used + 1 < cap; i += 2) {
                CHAR16 c = (CHAR16)(p[i] | (p[i + 1] << 8));
                if (!c)
                    break;
                out[used++] = c;
            }
            out[used] = 0;
        }
        dp = (const EFI_DEVICE_PATH_PROTOCOL *)((const UINT8 *)dp + len);
    }
}

static EFI_FILE_PROTOCOL *open_volume(void)
{
    EFI_SIMPLE_FILE_SYSTEM_PROTOCOL *sfs = NULL;
    EFI_FILE_PROTOCOL *root = NULL;
    EFI_STATUS s;
    CHAR16 text[256];
    UINTN nodes;

    s = gBS->HandleProtocol(gImage, &loaded_image_guid, (VOID **)&gLoaded);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"HandleProtocol: our LOADED_IMAGE") || !gLoaded)
        return NULL;
    if (!CHECK(gLoaded->DeviceHandle != NULL, L"LoadedImage: DeviceHandle is set"))
        return NULL;
    file_path_text(gLoaded->FilePath, text, 256, &nodes);
    print(L"  info: our FilePath: ");
    print_dec(nodes);
    print(L" file path node(s) \"");
    print(text);
    print(L"\"\r\n");

    s = gBS->HandleProtocol(gLoaded->DeviceHandle, &sfs_guid, (VOID **)&sfs);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"HandleProtocol: SIMPLE_FILE_SYSTEM on our DeviceHandle") || !sfs) {
        print(L"  info: no file system on our device: run with efistub --esp DIR (see tests/guests/README.md)\r\n");
        return NULL;
    }
    print(L"  info: SimpleFileSystem Revision ");
    print_hex(sfs->Revision);
    print(L"\r\n");
    CHECK(sfs->Revision == EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_REVISION, L"SimpleFileSystem: Revision 0x00010000");

    s = sfs->OpenVolume(sfs, &root);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"OpenVolume: gives the root directory") ||
        !CHECK(root != NULL, L"OpenVolume: the root handle is not NULL"))
        return NULL;
    print(L"  info: root EFI_FILE_PROTOCOL Revision ");
    print_hex(root->Revision);
    print(L"\r\n");
    CHECK(root->Revision == EFI_FILE_PROTOCOL_REVISION || root->Revision == EFI_FILE_PROTOCOL_REVISION2,
          L"File: Revision 0x00010000 or 0x00020000");
    return root;
}

static void test_root_info(EFI_FILE_PROTOCOL *root)
{
    EFI_FILE_SYSTEM_INFO *fsi = (EFI_FILE_SYSTEM_INFO *)info_space;
    EFI_STATUS s;
    UINTN size;

    size = 0;
    s = root->GetInfo(root, &file_info_guid, &size, info_space);
    CHECK_STATUS(s, EFI_BUFFER_TOO_SMALL, L"GetInfo(FILE_INFO) on the root, BufferSize 0 -> EFI_BUFFER_TOO_SMALL");
    print(L"  info: root FILE_INFO needs ");
    print_dec(size);
    print(L" bytes\r\n");
    CHECK(size >= SIZE_OF_EFI_FILE_INFO + 2, L"GetInfo(FILE_INFO) on the root: needed size >= SIZE_OF_EFI_FILE_INFO + 2 (82)");

    s = get_info(root);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_INFO) on the root")) {
        print(L"  info: root FileName \"");
        print(INFO->FileName);
        print(L"\" Attribute ");
        print_hex(INFO->Attribute);
        print(L"\r\n");
        CHECK(INFO->Attribute & EFI_FILE_DIRECTORY, L"GetInfo(FILE_INFO) on the root: Attribute has EFI_FILE_DIRECTORY");
    }

    size = 0;
    s = root->GetInfo(root, &fs_info_guid, &size, info_space);
    CHECK_STATUS(s, EFI_BUFFER_TOO_SMALL, L"GetInfo(FILE_SYSTEM_INFO), BufferSize 0 -> EFI_BUFFER_TOO_SMALL");
    CHECK(size >= SIZE_OF_EFI_FILE_SYSTEM_INFO + 2,
          L"GetInfo(FILE_SYSTEM_INFO): needed size >= SIZE_OF_EFI_FILE_SYSTEM_INFO + 2 (38)");
    size = sizeof(info_space);
    memset(info_space, 0, sizeof(info_space));
    s = root->GetInfo(root, &fs_info_guid, &size, info_space);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_SYSTEM_INFO)")) {
        print(L"  info: FILE_SYSTEM_INFO ReadOnly ");
        print_dec(fsi->ReadOnly);
        print(L" VolumeSize ");
        print_dec(fsi->VolumeSize);
        print(L" FreeSpace ");
        print_dec(fsi->FreeSpace);
        print(L" BlockSize ");
        print_dec(fsi->BlockSize);
        print(L" VolumeLabel \"");
        print(fsi->VolumeLabel);
        print(L"\"\r\n");
        CHECK(fsi->BlockSize > 0, L"GetInfo(FILE_SYSTEM_INFO): BlockSize > 0");
        CHECK(fsi->VolumeSize > 0, L"GetInfo(FILE_SYSTEM_INFO): VolumeSize > 0");
        gFsInfoOk = 1;
        gFsReadOnly = fsi->ReadOnly;
    }

    size = sizeof(info_space);
    s = root->GetInfo(root, &unknown_info_guid, &size, info_space);
    CHECK_STATUS(s, EFI_UNSUPPORTED, L"GetInfo(unknown information type) -> EFI_UNSUPPORTED");
}

/* ---- reading a file ---- */

static void test_hello(EFI_FILE_PROTOCOL *root)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s;
    UINTN n;
    UINT64 pos;

    s = fopen_(root, &f, L"files\\hello.txt", MODE_R, 0);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"Open(root, \"files\\hello.txt\", READ)"))
        return;
    s = read_some(f, &n, 64);
    check_st(s, EFI_SUCCESS, is_hello(data, n), L"Read(hello.txt, 64-byte buffer): the 11 bytes \"hello, efi\\n\"");
    s = read_some(f, &n, 64);
    check_st_eq(s, n, 0, L"Read at the end of hello.txt: EFI_SUCCESS and 0 bytes");
    pos = 12345;
    s = f->GetPosition(f, &pos);
    check_st_eq(s, pos, HELLO_SIZE, L"GetPosition after reading hello.txt: 11");
    s = f->SetPosition(f, 0);
    CHECK_STATUS(s, EFI_SUCCESS, L"SetPosition(0) on hello.txt");
    s = read_some(f, &n, 64);
    check_st(s, EFI_SUCCESS, is_hello(data, n), L"Read after SetPosition(0): the same 11 bytes");
    s = f->SetPosition(f, 0xFFFFFFFFFFFFFFFFULL);
    CHECK_STATUS(s, EFI_SUCCESS, L"SetPosition(0xFFFFFFFFFFFFFFFF) on hello.txt");
    pos = 12345;
    s = f->GetPosition(f, &pos);
    check_st_eq(s, pos, HELLO_SIZE, L"GetPosition after SetPosition(0xFFFFFFFFFFFFFFFF): the file size 11");
    s = f->SetPosition(f, 100);
    CHECK_STATUS(s, EFI_SUCCESS, L"SetPosition(100), past the end of hello.txt");
    s = read_some(f, &n, 64);
    CHECK_STATUS(s, EFI_DEVICE_ERROR, L"Read with the position past the end -> EFI_DEVICE_ERROR");

    s = get_info(f);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_INFO) on hello.txt")) {
        check_eq(INFO->FileSize, HELLO_SIZE, L"GetInfo(FILE_INFO) on hello.txt: FileSize 11");
        CHECK(!(INFO->Attribute & EFI_FILE_DIRECTORY), L"GetInfo(FILE_INFO) on hello.txt: not a directory");
        if (strcmp16(INFO->FileName, L"hello.txt") != 0) {
            print(L"  note: FileName \"");
            print(INFO->FileName);
            print(L"\"\r\n");
        }
        CHECK(strcmp16(INFO->FileName, L"hello.txt") == 0, L"GetInfo(FILE_INFO) on hello.txt: FileName \"hello.txt\"");
        check_eq(INFO->Size, SIZE_OF_EFI_FILE_INFO + sizeof(L"hello.txt"),
                 L"GetInfo(FILE_INFO) on hello.txt: Size 100 (80 + the name with its NUL)");
        CHECK(INFO->PhysicalSize >= INFO->FileSize, L"GetInfo(FILE_INFO) on hello.txt: PhysicalSize >= FileSize");
    }
    fclose_(f, L"hello.txt");
}

static void test_case(EFI_FILE_PROTOCOL *root)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s;
    UINTN n, total, chunks, i;
    int ok;

    s = fopen_(root, &f, L"\\FILES\\HELLO.TXT", MODE_R, 0);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"Open(root, \"\\FILES\\HELLO.TXT\"): names are case-insensitive")) {
        s = read_some(f, &n, 64);
        check_st(s, EFI_SUCCESS, is_hello(data, n), L"Read(\\FILES\\HELLO.TXT): hello.txt's 11 bytes");
        fclose_(f, L"\\FILES\\HELLO.TXT");
    }

    s = fopen_(root, &f, L"\\files\\mixed case name.txt", MODE_R, 0);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"Open(root, \"\\files\\mixed case name.txt\")"))
        return;
    s = read_some(f, &n, sizeof(data));
    check_st(s, EFI_SUCCESS, n == MIXED_SIZE && pattern_ok(data, 0, n),
             L"Read(Mixed Case Name.TXT, 8192-byte buffer): 4096 bytes of i & 0xFF");
    s = get_info(f);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_INFO) on Mixed Case Name.TXT")) {
        if (strcmp16(INFO->FileName, L"Mixed Case Name.TXT") != 0) {
            print(L"  note: FileName \"");
            print(INFO->FileName);
            print(L"\"\r\n");
        }
        CHECK(strcmp16(INFO->FileName, L"Mixed Case Name.TXT") == 0,
              L"GetInfo(FILE_INFO): FileName keeps the stored case \"Mixed Case Name.TXT\"");
        check_eq(INFO->FileSize, MIXED_SIZE, L"GetInfo(FILE_INFO) on Mixed Case Name.TXT: FileSize 4096");
    }
    s = f->SetPosition(f, 0);
    CHECK_STATUS(s, EFI_SUCCESS, L"SetPosition(0) on Mixed Case Name.TXT");
    total = chunks = 0;
    ok = 1;
    for (i = 0; i < 10; i++) {
        s = read_some(f, &n, 1000);
        if (s != EFI_SUCCESS) {
            info_status(L"Read of a 1000-byte chunk", s);
            ok = 0;
            break;
        }
        if (n == 0)
            break;
        if (n > 1000 || !pattern_ok(data, total, n))
            ok = 0;
        total += n;
        chunks++;
    }
    if (total != MIXED_SIZE || chunks != 5) {
        print(L"  note: ");
        print_dec(chunks);
        print(L" chunks, ");
        print_dec(total);
        print(L" bytes\r\n");
    }
    CHECK(ok && total == MIXED_SIZE && chunks == 5,
          L"Read in 1000-byte chunks: 1000+1000+1000+1000+96 = 4096 bytes, the pattern intact");
    fclose_(f, L"Mixed Case Name.TXT");
}

/* ---- relative opens ---- */

static void check_open_hello(EFI_FILE_PROTOCOL *dir, const CHAR16 *name, const CHAR16 *label)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s;
    UINTN n;

    s = fopen_(dir, &f, name, MODE_R, 0);
    if (s != EFI_SUCCESS) {
        check_status(s, EFI_SUCCESS, label);
        return;
    }
    s = read_some(f, &n, 64);
    check_st(s, EFI_SUCCESS, is_hello(data, n), label);
    fclose_(f, name);
}

static EFI_FILE_PROTOCOL *test_relative(EFI_FILE_PROTOCOL *root)
{
    EFI_FILE_PROTOCOL *dir;
    EFI_STATUS s;

    s = fopen_(root, &dir, L"files", MODE_R, 0);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"Open(root, \"files\", READ)"))
        return NULL;
    s = get_info(dir);
    check_st(s, EFI_SUCCESS, (INFO->Attribute & EFI_FILE_DIRECTORY) != 0,
             L"GetInfo(FILE_INFO) on files: a directory");
    check_open_hello(dir, L"hello.txt", L"Open(files, \"hello.txt\"): relative to the directory, reads hello.txt");
    check_open_hello(dir, L".\\hello.txt", L"Open(files, \".\\hello.txt\") reads hello.txt");
    check_open_hello(dir, L"..\\files\\hello.txt", L"Open(files, \"..\\files\\hello.txt\") reads hello.txt");
    check_open_hello(dir, L"\\files\\hello.txt",
                     L"Open(files, \"\\files\\hello.txt\"): an absolute path from a sub-directory");
    return dir;
}

/* ---- directory reads ---- */

#define MAX_ENTRIES 32
#define NAME_CHARS 64
static CHAR16 names[MAX_ENTRIES][NAME_CHARS];
static UINT64 entry_attr[MAX_ENTRIES], entry_size[MAX_ENTRIES];

static void copy_name(CHAR16 *dst, const CHAR16 *src)
{
    UINTN i;
    for (i = 0; i + 1 < NAME_CHARS && src[i]; i++)
        dst[i] = src[i];
    dst[i] = 0;
}

static int find_entry(UINTN count, const CHAR16 *name)
{
    UINTN i;
    for (i = 0; i < count; i++)
        if (stricmp16(names[i], name) == 0)
            return (int)i;
    return -1;
}

/* Lists a directory from its current position; 1 when it ended with BufferSize 0. */
static int list_dir(EFI_FILE_PROTOCOL *dir, UINTN *count, int *records_ok, int print_entries)
{
    EFI_STATUS s;
    UINTN n, i;

    *count = 0;
    *records_ok = 1;
    for (i = 0; i <= MAX_ENTRIES; i++) {
        n = sizeof(info_space);
        memset(info_space, 0, sizeof(info_space));
        s = dir->Read(dir, &n, info_space);
        if (s != EFI_SUCCESS) {
            info_status(L"Read of the directory", s);
            *records_ok = 0;
            return 0;
        }
        if (n == 0)
            return 1;
        if (*count == MAX_ENTRIES)
            break;
        if (n < SIZE_OF_EFI_FILE_INFO + 2 || INFO->Size != n ||
            INFO->Size != SIZE_OF_EFI_FILE_INFO + (strlen16(INFO->FileName) + 1) * sizeof(CHAR16)) {
            print(L"  note: entry ");
            print_dec(*count);
            print(L": BufferSize ");
            print_dec(n);
            print(L", Size ");
            print_dec(INFO->Size);
            print(L"\r\n");
            *records_ok = 0;
        }
        copy_name(names[*count], INFO->FileName);
        entry_attr[*count] = INFO->Attribute;
        entry_size[*count] = INFO->FileSize;
        if (print_entries)
            print_info_entry(*count, INFO);
        (*count)++;
    }
    print(L"  note: more than 32 entries\r\n");
    return 0;
}

/* The number of entries other than "." and ".."; *dots counts those. */
static UINTN entries_besides_dots(UINTN count, UINTN *dots)
{
    UINTN i, other = 0;
    *dots = 0;
    for (i = 0; i < count; i++) {
        if (is_dot_name(names[i]))
            (*dots)++;
        else
            other++;
    }
    return other;
}

static void test_listing(EFI_FILE_PROTOCOL *dir)
{
    EFI_FILE_PROTOCOL *sub;
    EFI_STATUS s;
    UINTN count, count2, n, needed, i, dots;
    int records_ok, ended, idx, probe_ok, same_ok, ended2;
    UINT64 pos;

    ended = list_dir(dir, &count, &records_ok, 1);
    CHECK(records_ok, L"Read(files): one EFI_FILE_INFO per call, its Size the BufferSize returned");
    CHECK(ended, L"Read(files): the end of the listing is EFI_SUCCESS with BufferSize 0");
    n = sizeof(info_space);
    s = dir->Read(dir, &n, info_space);
    check_st_eq(s, n, 0, L"Read(files) after the end: BufferSize 0 again");

    idx = find_entry(count, L"hello.txt");
    CHECK(idx >= 0 && !(entry_attr[idx] & EFI_FILE_DIRECTORY) && entry_size[idx] == HELLO_SIZE,
          L"listing of files: hello.txt, 11 bytes");
    idx = find_entry(count, L"Mixed Case Name.TXT");
    CHECK(idx >= 0 && !(entry_attr[idx] & EFI_FILE_DIRECTORY) && entry_size[idx] == MIXED_SIZE,
          L"listing of files: \"Mixed Case Name.TXT\", 4096 bytes");
    if (idx >= 0 && strcmp16(names[idx], L"Mixed Case Name.TXT") != 0)
        print(L"  info: the listing does not keep the case of \"Mixed Case Name.TXT\"\r\n");
    idx = find_entry(count, L"sub");
    CHECK(idx >= 0 && (entry_attr[idx] & EFI_FILE_DIRECTORY), L"listing of files: sub, a directory");
    idx = find_entry(count, L"child.efi");
    CHECK(idx >= 0 && !(entry_attr[idx] & EFI_FILE_DIRECTORY) && entry_size[idx] > 0,
          L"listing of files: child.efi, a file");
    entries_besides_dots(count, &dots);
    for (i = 0; i < count; i++)
        if (!is_dot_name(names[i]) && stricmp16(names[i], L"hello.txt") != 0 &&
            stricmp16(names[i], L"Mixed Case Name.TXT") != 0 && stricmp16(names[i], L"sub") != 0 &&
            stricmp16(names[i], L"child.efi") != 0) {
            print(L"  info: an entry the layout does not have: \"");
            print(names[i]);
            print(L"\"\r\n");
        }
    if (dots) {
        print(L"  info: the listing of files has ");
        print_dec(dots);
        print(L" of \".\" and \"..\" (as a real FAT directory does); accepted\r\n");
    } else {
        print(L"  info: the listing of files has no \".\" or \"..\"\r\n");
    }

    /* Again from the start, every entry first with BufferSize 0. */
    s = dir->SetPosition(dir, 0);
    CHECK_STATUS(s, EFI_SUCCESS, L"SetPosition(0) on the files directory");
    probe_ok = same_ok = 1;
    ended2 = 0;
    count2 = 0;
    for (i = 0; i <= count; i++) {
        n = 0;
        s = dir->Read(dir, &n, info_space);
        if (s == EFI_SUCCESS && n == 0) {
            ended2 = 1;
            break;
        }
        if (s != EFI_BUFFER_TOO_SMALL || n < SIZE_OF_EFI_FILE_INFO + 2) {
            print(L"  note: entry ");
            print_dec(i);
            print(L" with BufferSize 0: status ");
            print_status(s);
            print(L", BufferSize ");
            print_dec(n);
            print(L"\r\n");
            probe_ok = 0;
        }
        needed = n;
        n = sizeof(info_space);
        memset(info_space, 0, sizeof(info_space));
        s = dir->Read(dir, &n, info_space);
        if (s != EFI_SUCCESS || n == 0) {
            print(L"  note: entry ");
            print_dec(i);
            print(L" with a big buffer: status ");
            print_status(s);
            print(L", BufferSize ");
            print_dec(n);
            print(L"\r\n");
            same_ok = 0;
            break;
        }
        count2++;
        if (i >= count || strcmp16(INFO->FileName, names[i]) != 0 || n != needed) {
            print(L"  note: entry ");
            print_dec(i);
            print(L": \"");
            print(INFO->FileName);
            print(L"\", ");
            print_dec(n);
            print(L" bytes; the probe said ");
            print_dec(needed);
            if (i < count) {
                print(L", the first listing had \"");
                print(names[i]);
                print(L"\"");
            }
            print(L"\r\n");
            same_ok = 0;
        }
    }
    CHECK(probe_ok, L"Read(files) with BufferSize 0: EFI_BUFFER_TOO_SMALL and the entry's size, for every entry");
    CHECK(same_ok, L"Read(files) after EFI_BUFFER_TOO_SMALL: the same entry, as in the first listing");
    CHECK(ended2 && count2 == count, L"Read(files) after SetPosition(0): the same entries again, then BufferSize 0");

    s = dir->SetPosition(dir, 5);
    CHECK_STATUS(s, EFI_UNSUPPORTED, L"SetPosition(5) on a directory -> EFI_UNSUPPORTED");
    s = dir->GetPosition(dir, &pos);
    CHECK_STATUS(s, EFI_UNSUPPORTED, L"GetPosition on a directory -> EFI_UNSUPPORTED");

    s = fopen_(dir, &sub, L"sub", MODE_R, 0);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"Open(files, \"sub\", READ)")) {
        s = get_info(sub);
        check_st(s, EFI_SUCCESS, (INFO->Attribute & EFI_FILE_DIRECTORY) != 0, L"GetInfo(FILE_INFO) on sub: a directory");
        ended = list_dir(sub, &count, &records_ok, 0);
        n = entries_besides_dots(count, &dots);
        print(L"  info: the listing of sub has ");
        print_dec(dots);
        print(L" of \".\" and \"..\"\r\n");
        CHECK(ended && records_ok && n == 0, L"Read(sub): an empty directory (nothing but \".\" and \"..\")");
        fclose_(sub, L"sub");
    }
}

/* ---- errors ---- */

static void test_errors(EFI_FILE_PROTOCOL *root)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s;

    s = fopen_(root, &f, L"files\\missing.txt", MODE_R, 0);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"Open(root, \"files\\missing.txt\") -> EFI_NOT_FOUND");
    close_if(s, f, L"files\\missing.txt");
    s = fopen_(root, &f, L"nodir\\hello.txt", MODE_R, 0);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"Open(root, \"nodir\\hello.txt\"), a missing directory -> EFI_NOT_FOUND");
    close_if(s, f, L"nodir\\hello.txt");
    s = fopen_(root, &f, L"files\\hello.txt\\x", MODE_R, 0);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"Open(root, \"files\\hello.txt\\x\"), a file as a directory -> EFI_NOT_FOUND");
    close_if(s, f, L"files\\hello.txt\\x");

    s = fopen_(root, &f, L"files\\hello.txt", EFI_FILE_MODE_WRITE, 0);
    CHECK_STATUS(s, EFI_INVALID_PARAMETER, L"Open with OpenMode WRITE alone -> EFI_INVALID_PARAMETER");
    close_if(s, f, L"hello.txt (WRITE)");
    s = fopen_(root, &f, L"files\\hello.txt", EFI_FILE_MODE_READ | EFI_FILE_MODE_CREATE, 0);
    CHECK_STATUS(s, EFI_INVALID_PARAMETER, L"Open with OpenMode READ|CREATE (CREATE without WRITE) -> EFI_INVALID_PARAMETER");
    close_if(s, f, L"hello.txt (READ|CREATE)");
    s = fopen_(root, &f, L"files\\hello.txt", 0, 0);
    CHECK_STATUS(s, EFI_INVALID_PARAMETER, L"Open with OpenMode 0 -> EFI_INVALID_PARAMETER");
    close_if(s, f, L"hello.txt (mode 0)");

    /* EDK2's FAT driver: ".." above the root is an invalid file name, not a missing file. */
    s = fopen_(root, &f, L"..", MODE_R, 0);
    info_status(L"Open(root, \"..\")", s);
    CHECK_STATUS(s, EFI_INVALID_PARAMETER, L"Open(root, \"..\") -> EFI_INVALID_PARAMETER (as EDK2's FAT driver)");
    close_if(s, f, L"..");

    /* Facts only: UEFI does not say what these give. */
    s = fopen_(root, &f, L"", MODE_R, 0);
    info_status(L"Open(root, \"\")", s);
    close_if(s, f, L"\"\"");
    s = fopen_(root, &f, L"\\", MODE_R, 0);
    info_status(L"Open(root, \"\\\")", s);
    close_if(s, f, L"\\");
}

/* ---- writes ---- */

/* What an earlier, interrupted run may have left on a writable volume. */
static void remove_leftover(EFI_FILE_PROTOCOL *root, const CHAR16 *name)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s = fopen_(root, &f, name, MODE_RW, 0);
    if (s != EFI_SUCCESS)
        return;
    print(L"  info: removing \"");
    print(name);
    print(L"\", left by an earlier run -> ");
    print_status(f->Delete(f));
    print(L"\r\n");
}

static int file_reads(EFI_FILE_PROTOCOL *f, const char *want, UINTN len)
{
    UINTN n;
    if (f->SetPosition(f, 0) != EFI_SUCCESS)
        return 0;
    if (read_some(f, &n, 64) != EFI_SUCCESS)
        return 0;
    return n == len && memcmp(data, want, len) == 0;
}

/* Handles opened READ on any volume: writes through them are refused. */
static void test_read_handles(EFI_FILE_PROTOCOL *root, EFI_FILE_PROTOCOL *dir, int writable)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s, want = writable ? EFI_ACCESS_DENIED : EFI_WRITE_PROTECTED;
    UINTN n;

    if (dir) {
        n = 1;
        s = dir->Write(dir, &n, (VOID *)"x");
        CHECK_STATUS(s, EFI_UNSUPPORTED, L"Write on a directory handle -> EFI_UNSUPPORTED");
    }
    s = fopen_(root, &f, L"files\\hello.txt", MODE_R, 0);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"Open(root, \"files\\hello.txt\", READ) for the read-only handle checks"))
        return;
    n = 1;
    s = f->Write(f, &n, (VOID *)"X");
    CHECK_STATUS(s, want, writable ? L"Write on a handle opened READ -> EFI_ACCESS_DENIED"
                                   : L"Write on a read-only volume -> EFI_WRITE_PROTECTED");
    s = f->Flush(f);
    CHECK_STATUS(s, want, writable ? L"Flush on a handle opened READ -> EFI_ACCESS_DENIED"
                                   : L"Flush on a read-only volume -> EFI_WRITE_PROTECTED");
    s = get_info(f);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_INFO) on hello.txt (READ handle)")) {
        INFO->FileSize = 0;
        s = f->SetInfo(f, &file_info_guid, (UINTN)INFO->Size, INFO);
        CHECK_STATUS(s, want, writable ? L"SetInfo(FileSize 0) on a handle opened READ -> EFI_ACCESS_DENIED"
                                       : L"SetInfo(FileSize 0) on a read-only volume -> EFI_WRITE_PROTECTED");
    }
    CHECK(file_reads(f, (const char *)hello_bytes, HELLO_SIZE), L"hello.txt still reads \"hello, efi\\n\"");
    s = f->Delete(f); /* closes the handle, whatever it returns */
    CHECK_STATUS(s, EFI_WARN_DELETE_FAILURE,
                 L"Delete on a handle opened READ -> EFI_WARN_DELETE_FAILURE (the handle is closed)");
    s = fopen_(root, &f, L"files\\hello.txt", MODE_R, 0);
    CHECK_STATUS(s, EFI_SUCCESS, L"hello.txt is still there after that Delete");
    close_if(s, f, L"hello.txt");
}

static void test_read_only_volume(EFI_FILE_PROTOCOL *root)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s;

    s = fopen_(root, &f, L"files\\new.txt", MODE_R, 0);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"read-only volume: files\\new.txt was not created (Open -> EFI_NOT_FOUND)");
    close_if(s, f, L"files\\new.txt");
    s = fopen_(root, &f, L"files\\hello.txt", MODE_RW, 0);
    CHECK_STATUS(s, EFI_WRITE_PROTECTED, L"read-only volume: Open(hello.txt, READ|WRITE) -> EFI_WRITE_PROTECTED");
    close_if(s, f, L"hello.txt (READ|WRITE)");
    s = fopen_(root, &f, L"files\\newdir", MODE_RWC, EFI_FILE_DIRECTORY);
    CHECK_STATUS(s, EFI_WRITE_PROTECTED, L"read-only volume: creating a directory -> EFI_WRITE_PROTECTED");
    close_if(s, f, L"files\\newdir");
}

static void test_writable_volume(EFI_FILE_PROTOCOL *root, EFI_FILE_PROTOCOL *f)
{
    EFI_FILE_PROTOCOL *g, *d;
    EFI_STATUS s;
    UINTN n, count, dots;
    UINT64 pos, attr;
    int ended, records_ok;

    s = get_info(f);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_INFO) on the new file")) {
        print(L"  info: the new file's Attribute ");
        print_hex(INFO->Attribute);
        print(L"\r\n");
        CHECK(INFO->FileSize == 0 && !(INFO->Attribute & EFI_FILE_DIRECTORY),
              L"GetInfo(FILE_INFO) on the new file: 0 bytes, not a directory");
    }
    n = 5;
    s = f->Write(f, &n, (VOID *)"12345");
    check_st_eq(s, n, 5, L"Write(\"12345\"): 5 bytes written");
    pos = 0;
    s = f->GetPosition(f, &pos);
    check_st_eq(s, pos, 5, L"GetPosition after the write: 5");
    s = f->SetPosition(f, 2);
    CHECK_STATUS(s, EFI_SUCCESS, L"SetPosition(2) on the new file");
    n = 2;
    s = f->Write(f, &n, (VOID *)"ab");
    check_st_eq(s, n, 2, L"Write(\"ab\") at position 2: 2 bytes written");
    CHECK(file_reads(f, "12ab5", 5), L"the new file reads \"12ab5\"");
    s = get_info(f);
    check_st_eq(s, INFO->FileSize, 5, L"GetInfo(FILE_INFO): FileSize 5");

    /* SetInfo: what it refuses, then a truncation. */
    s = get_info(f);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_INFO) for SetInfo")) {
        s = f->SetInfo(f, &file_info_guid, (UINTN)INFO->Size - 1, INFO);
        CHECK_STATUS(s, EFI_BAD_BUFFER_SIZE, L"SetInfo(FILE_INFO) with BufferSize < Info->Size -> EFI_BAD_BUFFER_SIZE");
        attr = INFO->Attribute;
        INFO->Attribute = attr | EFI_FILE_DIRECTORY;
        s = f->SetInfo(f, &file_info_guid, (UINTN)INFO->Size, INFO);
        CHECK_STATUS(s, EFI_ACCESS_DENIED, L"SetInfo(FILE_INFO) adding EFI_FILE_DIRECTORY to a file -> EFI_ACCESS_DENIED");
        INFO->Attribute = attr;
        INFO->FileSize = 3;
        s = f->SetInfo(f, &file_info_guid, (UINTN)INFO->Size, INFO);
        CHECK_STATUS(s, EFI_SUCCESS, L"SetInfo(FILE_INFO) with FileSize 3");
    }
    s = get_info(f);
    check_st_eq(s, INFO->FileSize, 3, L"GetInfo(FILE_INFO) after SetInfo: FileSize 3");
    CHECK(file_reads(f, "12a", 3), L"after the truncation the file reads \"12a\"");
    s = f->Flush(f);
    CHECK_STATUS(s, EFI_SUCCESS, L"Flush on the new file");

    s = fopen_(root, &g, L"files\\new.txt", MODE_R, 0);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"Open(root, \"files\\new.txt\", READ): a second handle")) {
        CHECK(file_reads(g, "12a", 3), L"the second handle reads \"12a\"");
        fclose_(g, L"files\\new.txt (second handle)");
    }

    /* Rename through SetInfo (as systemd-boot's boot counting does). */
    s = get_info(f);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"GetInfo(FILE_INFO) for the rename")) {
        memcpy(INFO->FileName, L"renamed.txt", sizeof(L"renamed.txt"));
        INFO->Size = SIZE_OF_EFI_FILE_INFO + sizeof(L"renamed.txt");
        s = f->SetInfo(f, &file_info_guid, (UINTN)INFO->Size, INFO);
        CHECK_STATUS(s, EFI_SUCCESS, L"SetInfo(FILE_INFO) with FileName \"renamed.txt\"");
    }
    s = fopen_(root, &g, L"files\\renamed.txt", MODE_R, 0);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"after the rename, Open(root, \"files\\renamed.txt\") works")) {
        CHECK(file_reads(g, "12a", 3), L"files\\renamed.txt reads \"12a\"");
        fclose_(g, L"files\\renamed.txt");
    }
    s = fopen_(root, &g, L"files\\new.txt", MODE_R, 0);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"after the rename, Open(root, \"files\\new.txt\") -> EFI_NOT_FOUND");
    close_if(s, g, L"files\\new.txt");
    s = get_info(f);
    check_st(s, EFI_SUCCESS, strcmp16(INFO->FileName, L"renamed.txt") == 0,
             L"GetInfo(FILE_INFO) on the renamed handle: FileName \"renamed.txt\"");

    s = f->Delete(f);
    CHECK_STATUS(s, EFI_SUCCESS, L"Delete of the new file (opened READ|WRITE) -> EFI_SUCCESS");
    s = fopen_(root, &g, L"files\\renamed.txt", MODE_R, 0);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"after Delete, Open of the file -> EFI_NOT_FOUND");
    close_if(s, g, L"files\\renamed.txt");

    /* A directory: create, fill, a refused Delete, empty, Delete. */
    s = fopen_(root, &d, L"files\\newdir", MODE_RWC, EFI_FILE_DIRECTORY);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"Open(root, \"files\\newdir\", READ|WRITE|CREATE, EFI_FILE_DIRECTORY)"))
        return;
    s = get_info(d);
    check_st(s, EFI_SUCCESS, (INFO->Attribute & EFI_FILE_DIRECTORY) != 0, L"GetInfo(FILE_INFO) on newdir: a directory");
    ended = list_dir(d, &count, &records_ok, 0);
    n = entries_besides_dots(count, &dots);
    print(L"  info: the new directory lists ");
    print_dec(dots);
    print(L" of \".\" and \"..\"\r\n");
    CHECK(ended && records_ok && n == 0, L"Read(newdir): empty (nothing but \".\" and \"..\")");
    s = fopen_(d, &g, L"inner.txt", MODE_RWC, 0);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"Open(newdir, \"inner.txt\", READ|WRITE|CREATE)")) {
        n = 5;
        s = g->Write(g, &n, (VOID *)"inner");
        check_st_eq(s, n, 5, L"Write(\"inner\") to newdir\\inner.txt");
        fclose_(g, L"newdir\\inner.txt");
    }
    s = d->Delete(d);
    CHECK_STATUS(s, EFI_WARN_DELETE_FAILURE,
                 L"Delete of a directory that is not empty -> EFI_WARN_DELETE_FAILURE (the handle is closed)");
    s = fopen_(root, &d, L"files\\newdir", MODE_RW, 0);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"newdir is still there, Open(READ|WRITE) works"))
        return;
    s = fopen_(d, &g, L"inner.txt", MODE_RW, 0);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"Open(newdir, \"inner.txt\", READ|WRITE)")) {
        CHECK(file_reads(g, "inner", 5), L"newdir\\inner.txt reads \"inner\"");
        s = g->Delete(g);
        CHECK_STATUS(s, EFI_SUCCESS, L"Delete of newdir\\inner.txt -> EFI_SUCCESS");
    }
    s = d->Delete(d);
    CHECK_STATUS(s, EFI_SUCCESS, L"Delete of the empty directory newdir -> EFI_SUCCESS");
    s = fopen_(root, &d, L"files\\newdir", MODE_R, 0);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"after Delete, Open(root, \"files\\newdir\") -> EFI_NOT_FOUND");
    close_if(s, d, L"files\\newdir");
}

static void test_writes(EFI_FILE_PROTOCOL *root, EFI_FILE_PROTOCOL *dir)
{
    EFI_FILE_PROTOCOL *f;
    EFI_STATUS s;
    int writable;

    remove_leftover(root, L"files\\new.txt");
    remove_leftover(root, L"files\\renamed.txt");
    remove_leftover(root, L"files\\newdir\\inner.txt");
    remove_leftover(root, L"files\\newdir");

    s = fopen_(root, &f, L"files\\new.txt", MODE_RWC, 0);
    if (s == EFI_WRITE_PROTECTED) {
        print(L"  info: volume is read-only\r\n");
        writable = 0;
    } else if (s == EFI_SUCCESS) {
        print(L"  info: volume is writable\r\n");
        writable = 1;
    } else {
        check_status(s, EFI_SUCCESS, L"Open(root, \"files\\new.txt\", READ|WRITE|CREATE): EFI_SUCCESS or EFI_WRITE_PROTECTED");
        return;
    }
    CHECK(1, L"Open(root, \"files\\new.txt\", READ|WRITE|CREATE): EFI_SUCCESS or EFI_WRITE_PROTECTED");
    if (gFsInfoOk)
        CHECK((gFsReadOnly ? 0 : 1) == writable, L"GetInfo(FILE_SYSTEM_INFO): ReadOnly agrees with the write probe");
    if (writable)
        test_writable_volume(root, f);
    else
        test_read_only_volume(root);
    test_read_handles(root, dir, writable);
}

/* ---- LoadImage from a device path ---- */

/* Bytes of `dp` before its first End node; 0 for a malformed path. */
static UINTN device_path_prefix(const EFI_DEVICE_PATH_PROTOCOL *dp)
{
    const UINT8 *start = (const UINT8 *)dp;
    UINTN len, guard;

    print(L"  info: DeviceHandle device path nodes:");
    for (guard = 0; guard < 64; guard++) {
        len = dp_node_length(dp);
        print(L" ");
        print_hex_digits(dp->Type, 2);
        print(L"/");
        print_hex_digits(dp->SubType, 2);
        if (dp->Type == END_DEVICE_PATH_TYPE) {
            print(L"\r\n");
            return (UINTN)((const UINT8 *)dp - start);
        }
        if (len < sizeof(EFI_DEVICE_PATH_PROTOCOL))
            break;
        dp = (const EFI_DEVICE_PATH_PROTOCOL *)((const UINT8 *)dp + len);
    }
    print(L" (malformed)\r\n");
    return 0;
}

static void test_load_image(void)
{
    EFI_DEVICE_PATH_PROTOCOL *dp = NULL, *path;
    EFI_LOADED_IMAGE_PROTOCOL *cli = NULL;
    EFI_HANDLE child = NULL;
    EFI_STATUS s;
    UINTN prefix, nodes, exit_size = 0;
    CHAR16 *exit_data = NULL;
    CHAR16 text[256];

    s = gBS->HandleProtocol(gLoaded->DeviceHandle, &device_path_guid, (VOID **)&dp);
    if (!CHECK_STATUS(s, EFI_SUCCESS, L"HandleProtocol: DEVICE_PATH on our DeviceHandle") || !dp)
        return;
    prefix = device_path_prefix(dp);
    if (!CHECK(prefix > 0, L"the DeviceHandle's device path has nodes before its End node"))
        return;

    path = dp_append_file_node(dp, prefix, L"\\files\\child.efi");
    if (!CHECK(path != NULL, L"AllocatePool: the device path of \\files\\child.efi"))
        return;
    s = gBS->LoadImage(FALSE, gImage, path, NULL, 0, &child);
    if (CHECK_STATUS(s, EFI_SUCCESS, L"LoadImage(FALSE, ImageHandle, device path + \\files\\child.efi, NULL, 0)")) {
        s = gBS->HandleProtocol(child, &loaded_image_guid, (VOID **)&cli);
        if (CHECK_STATUS(s, EFI_SUCCESS, L"HandleProtocol: the child's LOADED_IMAGE") && cli) {
            CHECK(cli->DeviceHandle == gLoaded->DeviceHandle, L"LoadedImage: the child's DeviceHandle is ours");
            CHECK(cli->ParentHandle == gImage, L"LoadedImage: the child's ParentHandle is our image handle");
            file_path_text(cli->FilePath, text, 256, &nodes);
            print(L"  info: the child's FilePath: ");
            print_dec(nodes);
            print(L" file path node(s) \"");
            print(text);
            print(L"\"\r\n");
            CHECK(cli->FilePath && cli->FilePath->Type == MEDIA_DEVICE_PATH &&
                  cli->FilePath->SubType == MEDIA_FILEPATH_DP && contains_i16(text, L"child.efi"),
                  L"LoadedImage: the child's FilePath is a file path node with \"child.efi\"");
        }
        print(L"files: starting child.efi\r\n");
        s = gBS->StartImage(child, &exit_size, &exit_data);
        print(L"  info: child status ");
        print_status(s);
        print(L" exit data size ");
        print_dec(exit_size);
        print(L"\r\n");
        check_st(s, EFI_INVALID_PARAMETER,
                 exit_size == sizeof(exit_marker) && exit_data && strcmp16(exit_data, exit_marker) == 0,
                 L"StartImage(child.efi): exit.efi's EFI_INVALID_PARAMETER and ExitData \"exit-data-marker\"");
        if (exit_data)
            gBS->FreePool(exit_data);
    }
    gBS->FreePool(path);

    path = dp_append_file_node(dp, prefix, L"\\files\\missing.efi");
    if (!path)
        return;
    child = NULL;
    s = gBS->LoadImage(FALSE, gImage, path, NULL, 0, &child);
    CHECK_STATUS(s, EFI_NOT_FOUND, L"LoadImage of device path + \\files\\missing.efi -> EFI_NOT_FOUND");
    if (s == EFI_SUCCESS)
        gBS->UnloadImage(child);
    gBS->FreePool(path);
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_FILE_PROTOCOL *root, *dir = NULL;

    lib_init(image, st);
    print(L"files: SIMPLE_FILE_SYSTEM and FILE_PROTOCOL on our own volume\r\n");
    root = open_volume();
    if (root) {
        test_root_info(root);
        test_hello(root);
        test_case(root);
        dir = test_relative(root);
        if (dir)
            test_listing(dir);
        test_errors(root);
        test_writes(root, dir);
        fclose_(dir, L"files");
        test_load_image();
        fclose_(root, L"root");
        print(L"  info: ");
        print_dec(gClosed);
        print(L" handles closed\r\n");
        CHECK(gCloseFailures == 0, L"Close: every handle opened returned EFI_SUCCESS");
    }
    return lib_done();
}
