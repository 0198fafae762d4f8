/*
 * fuzz: every boot service, runtime service and protocol function efistub puts in a
 * table, called with hostile arguments drawn by a seeded PRNG. For efistub only: never
 * run it on real firmware (it hands services wild pointers and sizes of 2^40 bytes).
 *
 * The functions come from fuzz_table.h, which fuzz_table.py writes from efistub's own
 * firmware and registry: the table each lies in (BS, RT, a protocol found by its GUID
 * with LocateProtocol, or the file protocol OpenVolume gives), its offset there, and
 * its arguments as kinds (This, handle, event, GUID, string, device path, size, ...).
 *
 * LoadOptions (efistub --cmdline): "SEED START COUNT [END]", decimal. Call i (START <=
 * i < START + COUNT) picks one function and an argument for each slot from the pool of
 * its kind (NULL, unmapped, straddling the top of RAM, misaligned, huge sizes, wrong
 * handles, unknown GUIDs, strings and device paths without an end, mixed with valid
 * values so that calls get past the first check) with a PRNG seeded by SEED and i
 * alone, so a run that ends early can go on from the next call with the same draws.
 * The valid buffers are set again before every call. Functions that end the run by
 * design (Exit, ExitBootServices, StartImage, ResetSystem) are never drawn there; END
 * makes the last call a notification function at an unmapped address (1) or one of
 * them with drawn arguments (2 and up).
 *
 * One line before each call and one after it, so a call that ends the run is the last
 * line without its result:
 *
 *   "~C <i> <function>(<kind>:<label>, ...)"
 *   "~R <i> status 0x...", "~R <i> value 0x..." or "~R <i> returned"
 *
 * then "~DONE <calls>". The labels name the pool entries, not addresses, so runs on
 * every architecture and dispatch path can be compared line by line.
 */
#include "lib.h"

struct fuzz_table {
    const CHAR16 *name;
    int by_guid;
    UINT8 guid[16];
};
struct fuzz_function {
    const CHAR16 *name;
    int table;
    int offset8, offset4;
    const char *kinds;
    int returns; /* 0 a status, 1 a value, 2 nothing */
    int implemented;
};
#include "fuzz_table.h"

#define N_TABLES (sizeof(FUZZ_TABLES) / sizeof(FUZZ_TABLES[0]))
#define N_FUNCTIONS (sizeof(FUZZ_FUNCTIONS) / sizeof(FUZZ_FUNCTIONS[0]))
#define SLOTS 12
#define SCRATCH_PAGES 256 /* 1 MiB: every valid size in the pools fits */
#define FIXTURE 4096      /* the part of scratch set again before each call */

#if __SIZEOF_POINTER__ == 8
#define UNMAPPED ((UINTN)0xdead00000000ULL)
#else
#define UNMAPPED ((UINTN)0xFFFF0000u)
#endif
#define ALL_ONES ((UINTN)-1)

typedef UINTN(EFIAPI *FN)(UINTN, UINTN, UINTN, UINTN, UINTN, UINTN, UINTN, UINTN, UINTN, UINTN, UINTN, UINTN);

struct value {
    const CHAR16 *label;
    UINT64 value;
};
#define POOL_MAX 48
struct pool {
    UINTN n;
    struct value v[POOL_MAX];
};

static EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *con;
static EFI_STATUS(EFIAPI *out_string)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *, CHAR16 *);
static UINTN table_base[N_TABLES];
static FN function[N_FUNCTIONS];
static UINT8 *scratch, *top_page; /* top_page: the last page of RAM, when we own it */
static UINT64 top_of_ram;       /* the end of the highest RAM descriptor, when a pointer reaches it */
static UINT8 pristine[FIXTURE];
static struct pool pools[128]; /* by kind letter */
static UINT64 rng_state;
/* What calls gave back in the first out slot (handles, events, files, pools), by position in
   the pools of handles, events and This; it starts as NULL. */
#define HARVEST 4
static UINTN harvest_next;
static struct value *harvested[HARVEST][3];
static volatile UINTN notified;
static CHAR16 line[640];
static UINTN line_len;

static void emit(const CHAR16 *s)
{
    while (*s && line_len < sizeof(line) / sizeof(line[0]) - 3)
        line[line_len++] = *s++;
}

static void emit_hex(UINT64 v)
{
    static const CHAR16 hex[] = L"0123456789abcdef";
    CHAR16 buf[19];
    int i, digits = 1;
    while (digits < 16 && (v >> (4 * digits)))
        digits++;
    buf[0] = L'0';
    buf[1] = L'x';
    for (i = 0; i < digits; i++)
        buf[2 + i] = hex[(v >> (4 * (digits - 1 - i))) & 0xf];
    buf[2 + digits] = 0;
    emit(buf);
}

static void emit_dec(UINT64 v)
{
    CHAR16 buf[21];
    emit(format_dec(buf, v));
}

static void flush_line(void)
{
    line[line_len++] = L'\r';
    line[line_len++] = L'\n';
    line[line_len] = 0;
    out_string(con, line);
    line_len = 0;
}

/* splitmix64: the draws of call i depend on the seed and i only. */
static UINT64 next(void)
{
    UINT64 z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static UINT32 below(UINT32 n)
{
    return (UINT32)(next() >> 32) % n;
}

static void add(int kind, const CHAR16 *label, UINT64 value)
{
    struct pool *p = &pools[kind];
    if (p->n < POOL_MAX) {
        p->v[p->n].label = label;
        p->v[p->n].value = value;
        p->n++;
    }
}

static void add_to(const char *kinds, const CHAR16 *label, UINT64 value)
{
    for (; *kinds; kinds++)
        add(*kinds, label, value);
}

static VOID EFIAPI notify(EFI_EVENT event, VOID *context)
{
    (void)event;
    (void)context;
    notified++;
}

static UINT64 parse(const CHAR16 **s, UINT64 fallback)
{
    UINT64 n = 0;
    int any = 0;
    while (**s == L' ')
        (*s)++;
    while (**s >= L'0' && **s <= L'9') {
        n = n * 10 + (UINT64)(*(*s)++ - L'0');
        any = 1;
    }
    return any ? n : fallback;
}

/* Offsets into scratch of the valid things the pools point at (set again before each call). */
enum {
    AT_BYTES = 0,      /* 256 bytes of pattern */
    AT_OUT = 256,      /* 16 zeroed UINTN out slots */
    AT_SIZE = 512,     /* one UINTN holding a drawn size */
    AT_GUID = 528,     /* a protocol GUID */
    AT_GUID_ODD = 545, /* the same at an odd address */
    AT_STRING = 576,   /* L"fuzz" */
    AT_PATH = 640,     /* VenMedia(LINUX_EFI_INITRD_MEDIA)/End */
    AT_END = 704,      /* End */
    AT_BAD_PATH = 720, /* a node of Length 0, then one of Length 3 */
    AT_PACKAGES = 768, /* an HII package list: header and the end package */
    AT_ASCII = 832,    /* "en-US" */
    AT_STRING_ODD = 849,
    AT_HANDLES = 1024, /* UINTN[16]: an array of events and handles (WaitForEvent) */
};

static const EFI_GUID initrd_media = {0x5568e427, 0x68fc, 0x4f3d, {0xac, 0x74, 0xca, 0x55, 0x52, 0x31, 0xcc, 0x68}};
static const EFI_GUID unknown_guid = {0x0badf00d, 0x1234, 0x5678, {0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78}};
static const EFI_GUID global_variable = {0x8be4df61, 0x93ca, 0x11d2, {0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}};
static const EFI_GUID file_info = {0x09576e92, 0x6d3f, 0x11d2, {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
static const EFI_GUID fs_info = {0x09576e93, 0x6d3f, 0x11d2, {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
static const EFI_GUID rng_raw = {0xe43176d7, 0xb6e8, 0x4827, {0xb7, 0x84, 0x7f, 0xfd, 0xc4, 0xb6, 0x85, 0x61}};
static const EFI_GUID ebs_group = EFI_EVENT_GROUP_EXIT_BOOT_SERVICES;
static const EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;

static void put16(UINT8 *p, UINT16 v)
{
    p[0] = (UINT8)v;
    p[1] = (UINT8)(v >> 8);
}

static void build_pristine(void)
{
    UINTN i;
    UINT8 *p = pristine;
    for (i = 0; i < 256; i++)
        p[i] = (UINT8)(i * 37 + 11);
    memcpy(p + AT_GUID, FUZZ_TABLES[2].guid, 16);
    memcpy(p + AT_GUID_ODD, &global_variable, 16);
    memcpy(p + AT_STRING, L"fuzz", 10);
    memcpy(p + AT_STRING_ODD, L"\\f.txt", 14);
    /* VenMedia: type 4, subtype 3, length 20, the GUID; then End (0x7f, 0xff, 4) */
    p[AT_PATH] = 4;
    p[AT_PATH + 1] = 3;
    put16(p + AT_PATH + 2, 20);
    memcpy(p + AT_PATH + 4, &initrd_media, 16);
    p[AT_PATH + 20] = 0x7f;
    p[AT_PATH + 21] = 0xff;
    put16(p + AT_PATH + 22, 4);
    p[AT_END] = 0x7f;
    p[AT_END + 1] = 0xff;
    put16(p + AT_END + 2, 4);
    p[AT_BAD_PATH] = 1;
    p[AT_BAD_PATH + 1] = 1;
    put16(p + AT_BAD_PATH + 2, 0);
    /* EFI_HII_PACKAGE_LIST_HEADER: a GUID, PackageLength 24; the end package (length 4, type 0xDF) */
    memcpy(p + AT_PACKAGES, &unknown_guid, 16);
    p[AT_PACKAGES + 16] = 24;
    p[AT_PACKAGES + 20] = 4;
    p[AT_PACKAGES + 23] = 0xdf;
    memcpy(p + AT_ASCII, "en-US", 6);
}

static EFI_HANDLE load_child(void);

static void build_pools(void)
{
    UINTN s = (UINTN)scratch, i, count = 0;
    EFI_HANDLE *handles = NULL;
    EFI_EVENT ev;
    UINTN *array = (UINTN *)(pristine + AT_HANDLES);
    UINTN n_array = 0;

    /* Pointers of every kind: the hostile ones */
    add_to("PHEGSADTF", L"null", 0);
    add_to("PHEGSADT", L"unmapped", UNMAPPED);
    add_to("PHEGSADT", L"all-ones", ALL_ONES);
    add_to("PHEGSAD", L"odd", 1);
    if (top_of_ram) {
        add_to("PGSAD", L"top-2", (UINTN)(top_of_ram - 2)); /* straddles the top of RAM */
        add_to("D", L"path-to-top", (UINTN)(top_of_ram - 4)); /* a node that runs off the end */
    }
    /* the last page of RAM when we own it, else the last 2 KiB of scratch: all 'A', no NUL */
    add_to("SA", L"no-terminator", top_page ? (UINTN)top_page : s + SCRATCH_PAGES * EFI_PAGE_SIZE - 2048);
    add_to("P", L"bytes", s + AT_BYTES);
    add_to("P", L"bytes+1", s + AT_BYTES + 1);
    add_to("P", L"out", s + AT_OUT);
    add_to("P", L"out", s + AT_OUT);
    add_to("P", L"out+3", s + AT_OUT + 3);
    add_to("P", L"size", s + AT_SIZE);
    add_to("P", L"size", s + AT_SIZE);
    add_to("P", L"overlap", s + AT_BYTES + 8);
    add_to("P", L"packages", s + AT_PACKAGES);
    add_to("HE", L"garbage", s + AT_BYTES);
    add_to("HE", L"garbage+1", s + AT_BYTES + 1);
    add_to("G", L"guid", s + AT_GUID);
    add_to("G", L"guid-odd", s + AT_GUID_ODD);
    add_to("G", L"unknown", (UINTN)&unknown_guid);
    add_to("G", L"global-variable", (UINTN)&global_variable);
    add_to("G", L"file-info", (UINTN)&file_info);
    add_to("G", L"fs-info", (UINTN)&fs_info);
    add_to("G", L"rng-raw", (UINTN)&rng_raw);
    add_to("G", L"ebs-group", (UINTN)&ebs_group);
    add_to("G", L"loaded-image", (UINTN)&loaded_image_guid);
    for (i = 0; i < N_TABLES; i++)
        if (FUZZ_TABLES[i].by_guid && table_base[i])
            add('G', FUZZ_TABLES[i].name, (UINTN)FUZZ_TABLES[i].guid);
    add_to("S", L"string", s + AT_STRING);
    add_to("S", L"string-odd", s + AT_STRING_ODD);
    add_to("S", L"empty", (UINTN)L"");
    add_to("S", L"escape", (UINTN)L"..\\..\\..\\etc\\passwd");
    add_to("S", L"device-path-text", (UINTN)L"VenMedia(5568E427-68FC-4F3D-AC74-CA555231CC68)/PciRoot(0x0)/Pci(0x1,0x0)");
    add_to("S", L"bad-text", (UINTN)L"Pci(0x1,0x0)))(((/HD(9999999999999999999999,GPT");
    add_to("S", L"bytes", s + AT_BYTES);
    add_to("A", L"en-US", s + AT_ASCII);
    add_to("A", L"en", (UINTN)"en");
    add_to("A", L"empty", (UINTN)"");
    add_to("A", L"bytes", s + AT_BYTES);
    add_to("D", L"initrd-path", s + AT_PATH);
    add_to("D", L"initrd-path", s + AT_PATH);
    add_to("D", L"end", s + AT_END);
    add_to("D", L"length-0", s + AT_BAD_PATH);
    add_to("D", L"bytes", s + AT_BYTES);
    add_to("D", L"path-odd", s + AT_PATH + 1);
    add_to("F", L"notify", (UINTN)notify);
    add_to("F", L"notify", (UINTN)notify);

    /* Handles and events: real ones, mixed in */
    add_to("H", L"image", (UINTN)gImage);
    add_to("H", L"image", (UINTN)gImage);
    add_to("H", L"image+1", (UINTN)gImage + 1);
    add_to("H", L"child", (UINTN)load_child());
    if (gBS->LocateHandleBuffer(AllHandles, NULL, NULL, &count, &handles) == EFI_SUCCESS) {
        static const CHAR16 *names[] = {L"handle0", L"handle1", L"handle2", L"handle3", L"handle4", L"handle5",
                                        L"handle6", L"handle7", L"handle8", L"handle9", L"handle10", L"handle11"};
        for (i = 0; i < count && i < 12; i++) {
            add('H', names[i], (UINTN)handles[i]);
            if (n_array < 8)
                array[n_array++] = (UINTN)handles[i];
        }
    }
    if (gBS->CreateEvent(EVT_TIMER, 0, NULL, NULL, &ev) == EFI_SUCCESS) {
        add_to("EH", L"timer-event", (UINTN)ev);
        add('E', L"timer-event", (UINTN)ev);
        gBS->SetTimer(ev, TimerRelative, 1000);
    }
    if (gBS->CreateEvent(EVT_NOTIFY_SIGNAL, TPL_CALLBACK, (EFI_EVENT_NOTIFY)notify, NULL, &ev) == EFI_SUCCESS) {
        add_to("E", L"signal-event", (UINTN)ev);
        array[n_array++] = (UINTN)ev;
    }
    if (gBS->CreateEvent(EVT_NOTIFY_WAIT, TPL_NOTIFY, (EFI_EVENT_NOTIFY)notify, NULL, &ev) == EFI_SUCCESS)
        add_to("E", L"wait-event", (UINTN)ev);
    if (gST->ConIn) {
        add_to("E", L"wait-for-key", (UINTN)gST->ConIn->WaitForKey);
        array[n_array++] = (UINTN)gST->ConIn->WaitForKey;
    }
    add_to("PE", L"event-array", s + AT_HANDLES);

    /* Sizes, counts, keys, integers */
    add_to("NQ", L"0", 0);
    add_to("NQ", L"1", 1);
    add_to("NQ", L"2", 2);
    add_to("NQ", L"3", 3);
    add_to("NQ", L"7", 7);
    add_to("NQ", L"16", 16);
    add_to("NQ", L"17", 17);
    add_to("NQ", L"512", 512);
    add_to("NQ", L"4095", 4095);
    add_to("NQ", L"4096", 4096);
    add_to("NQ", L"0x10000", 0x10000);
    add_to("NQ", L"0x7fffffff", 0x7fffffff);
    add_to("NQ", L"0x80000000", 0x80000000u);
    add_to("NQ", L"0xffffffff", 0xffffffffu);
    add_to("N", L"all-ones", ALL_ONES);
    add_to("N", L"all-ones>>1", ALL_ONES >> 1);
#if __SIZEOF_POINTER__ == 8
    add_to("N", L"2^40", (UINTN)1 << 40);
#else
    add_to("N", L"0xfffff000", 0xfffff000u);
#endif
    add_to("Q", L"2^40", (UINT64)1 << 40);
    add_to("Q", L"2^63", (UINT64)1 << 63);
    add_to("Q", L"all-ones", ~(UINT64)0);
    add_to("Q", L"scratch", s);
    add_to("W", L"0", 0);
    add_to("W", L"1", 1);
    add_to("W", L"2", 2);
    add_to("W", L"3", 3);
    add_to("W", L"7", 7);
    add_to("W", L"0x27", 0x27);
    add_to("W", L"0x100", EVT_NOTIFY_WAIT);
    add_to("W", L"0x200", EVT_NOTIFY_SIGNAL);
    add_to("W", L"0x80000200", EVT_TIMER | EVT_NOTIFY_SIGNAL);
    add_to("W", L"0x80000000", EVT_TIMER);
    add_to("W", L"0x201", EVT_SIGNAL_EXIT_BOOT_SERVICES);
    add_to("W", L"0x60000202", EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE);
    add_to("W", L"0x20", 0x20);
    add_to("W", L"0xffffffff", 0xffffffffu);
    add_to("B", L"0", 0);
    add_to("B", L"1", 1);
    add_to("B", L"2", 2);
    add_to("B", L"4", 4);
    add_to("B", L"0x7f", 0x7f);
    add_to("B", L"0xff", 0xff);
    add_to("B", L"0xffff", 0xffff);
    add_to("K", L"0", 0);
    add_to("K", L"1", 1);
    add_to("K", L"2", 2);
    add_to("K", L"3", 3);
    add_to("K", L"4", 4);
    add_to("K", L"8", 8);
    add_to("K", L"14", 14);
    add_to("K", L"16", 16);
    add_to("K", L"31", 31);
    add_to("K", L"32", 32);
    add_to("K", L"0x70000000", 0x70000000);
    add_to("K", L"0x80000000", 0x80000000u);
    add_to("K", L"all-ones", ALL_ONES);
    if (n_array == 0)
        array[n_array++] = 0;
    {
        static const CHAR16 *names[HARVEST] = {L"got0", L"got1", L"got2", L"got3"};
        for (i = 0; i < HARVEST; i++) {
            add('H', names[i], 0);
            harvested[i][0] = &pools['H'].v[pools['H'].n - 1];
            add('E', names[i], 0);
            harvested[i][1] = &pools['E'].v[pools['E'].n - 1];
            add('T', names[i], 0);
            harvested[i][2] = &pools['T'].v[pools['T'].n - 1];
        }
    }
}

/* Keep what the call left in the first out slot, if it looks like a pointer into RAM. */
static void harvest(void)
{
    UINTN got = *(UINTN *)(scratch + AT_OUT), j;
    if (!got || (got & 3) || got == ALL_ONES || (got >= (UINTN)scratch && got < (UINTN)scratch + FIXTURE))
        return;
    if (top_of_ram && (UINT64)got >= top_of_ram)
        return;
    for (j = 0; j < 3; j++)
        harvested[harvest_next][j]->value = got;
    harvest_next = (harvest_next + 1) % HARVEST;
}

/* The last page of RAM, when it is free: filled with 'A', so strings there have no end. */
static void own_top_page(void)
{
    UINTN size = 0, key, dsize = 0, i;
    UINT32 version;
    UINT8 *buf = NULL;
    UINT64 top = 0;
    EFI_PHYSICAL_ADDRESS at;

    if (gBS->GetMemoryMap(&size, NULL, &key, &dsize, &version) != EFI_BUFFER_TOO_SMALL || !dsize)
        return;
    size += 8 * dsize;
    if (gBS->AllocatePool(EfiLoaderData, size, (VOID **)&buf) != EFI_SUCCESS)
        return;
    if (gBS->GetMemoryMap(&size, (EFI_MEMORY_DESCRIPTOR *)buf, &key, &dsize, &version) == EFI_SUCCESS)
        for (i = 0; i + dsize <= size; i += dsize) {
            EFI_MEMORY_DESCRIPTOR *d = (EFI_MEMORY_DESCRIPTOR *)(buf + i);
            UINT64 end = d->PhysicalStart + d->NumberOfPages * EFI_PAGE_SIZE;
            if (d->Type != EfiMemoryMappedIO && d->Type != EfiMemoryMappedIOPortSpace && end > top)
                top = end;
        }
    gBS->FreePool(buf);
    if (top < EFI_PAGE_SIZE || top - 1 > (UINT64)ALL_ONES)
        return;
    top_of_ram = top;
    at = top - EFI_PAGE_SIZE;
    if (gBS->AllocatePages(AllocateAddress, EfiLoaderData, 1, &at) != EFI_SUCCESS)
        return;
    top_page = (UINT8 *)(UINTN)at;
    for (i = 0; i < EFI_PAGE_SIZE; i++)
        top_page[i] = 'A';
}

static void read_function(UINTN i)
{
    const struct fuzz_function *f = &FUZZ_FUNCTIONS[i];
    int offset = sizeof(UINTN) == 8 ? f->offset8 : f->offset4;
    if (table_base[f->table] && offset >= 0)
        function[i] = *(FN *)(table_base[f->table] + offset);
}

static void find_tables(void)
{
    UINTN i;
    for (i = 0; i < N_TABLES; i++) {
        VOID *interface = NULL;
        if (i == 0)
            table_base[i] = (UINTN)gBS;
        else if (i == 1)
            table_base[i] = (UINTN)gRT;
        else if (FUZZ_TABLES[i].by_guid &&
                 gBS->LocateProtocol((EFI_GUID *)FUZZ_TABLES[i].guid, NULL, &interface) == EFI_SUCCESS)
            table_base[i] = (UINTN)interface;
    }
    for (i = 0; i < N_FUNCTIONS; i++)
        read_function(i);
    /* the file protocol: the root that OpenVolume of the first SIMPLE_FILE_SYSTEM gives */
    for (i = 0; i < N_FUNCTIONS; i++)
        if (function[i] && strcmp16(FUZZ_FUNCTIONS[i].name, L"SimpleFileSystem.OpenVolume") == 0) {
            UINTN root = 0, j;
            function[i](table_base[FUZZ_FUNCTIONS[i].table], (UINTN)&root, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            for (j = 0; j < N_TABLES && root; j++)
                if (strcmp16(FUZZ_TABLES[j].name, L"FILE_PROTOCOL") == 0)
                    table_base[j] = root;
            break;
        }
    for (i = 0; i < N_FUNCTIONS; i++)
        read_function(i);
    for (i = 0; i < N_TABLES; i++)
        if (table_base[i] && i > 1)
            add('T', FUZZ_TABLES[i].name, table_base[i]);
}

/* The functions that end the run by design: END 2, 3, 4 and 5 make the last call one of them. */
static const CHAR16 *const TERMINAL[] = {L"Exit", L"ExitBootServices", L"StartImage", L"ResetSystem"};

static int terminal(const CHAR16 *name)
{
    UINTN i;
    for (i = 0; i < sizeof(TERMINAL) / sizeof(TERMINAL[0]); i++)
        if (strcmp16(name, TERMINAL[i]) == 0)
            return 1;
    return 0;
}

/* A child image to start and unload: the initrd (exit.efi from the host), loaded through LOAD_FILE2. */
static EFI_HANDLE load_child(void)
{
    EFI_GUID lf2_guid = EFI_LOAD_FILE2_PROTOCOL_GUID;
    EFI_LOAD_FILE2_PROTOCOL *lf2 = NULL;
    EFI_HANDLE child = NULL;
    UINTN size = 0;
    UINT8 *buffer = scratch + 2 * FIXTURE;

    if (gBS->LocateProtocol(&lf2_guid, NULL, (VOID **)&lf2) != EFI_SUCCESS ||
        lf2->LoadFile(lf2, (EFI_DEVICE_PATH_PROTOCOL *)(pristine + AT_PATH), FALSE, &size, NULL) != EFI_BUFFER_TOO_SMALL ||
        size > SCRATCH_PAGES * EFI_PAGE_SIZE / 2 ||
        lf2->LoadFile(lf2, (EFI_DEVICE_PATH_PROTOCOL *)(pristine + AT_PATH), FALSE, &size, buffer) != EFI_SUCCESS ||
        gBS->LoadImage(FALSE, gImage, NULL, buffer, size, &child) != EFI_SUCCESS)
        return NULL;
    return child;
}

static const struct value *draw(int kind)
{
    struct pool *p = &pools[kind];
    return &p->v[below((UINT32)p->n)];
}

/* Draw the arguments of function f into slots; print the call; returns the number of slots. */
static UINTN draw_call(UINT64 index, UINTN f, UINTN *slot)
{
    const struct fuzz_function *fn = &FUZZ_FUNCTIONS[f];
    const char *k;
    UINTN n = 0, i;

    emit(L"~C ");
    emit_dec(index);
    emit(L" ");
    emit(fn->name);
    emit(L"(");
    for (k = fn->kinds; *k && n < SLOTS; k++) {
        const struct value *v;
        CHAR16 kind[3] = {(CHAR16)*k, L':', 0};
        if (k != fn->kinds)
            emit(L", ");
        emit(kind);
        if (*k == 'V') { /* GUID/interface pairs, NULL-ended (or not) */
            UINTN pairs = below(3);
            for (i = 0; i < pairs && n + 2 < SLOTS; i++) {
                v = draw('G');
                slot[n++] = (UINTN)v->value;
                emit(v->label);
                emit(L"/");
                v = draw('P');
                slot[n++] = (UINTN)v->value;
                emit(v->label);
                emit(L" ");
            }
            if (below(8)) {
                slot[n++] = 0;
                emit(L"end");
            } else {
                emit(L"no-end");
            }
            continue;
        }
        if (*k == 'T' && below(4)) { /* mostly the function's own interface */
            slot[n++] = table_base[fn->table];
            emit(L"this");
            continue;
        }
        v = draw(*k);
        emit(v->label);
        if (*k == 'Q' && sizeof(UINTN) == 4) {
            slot[n++] = (UINTN)v->value;
            slot[n++] = (UINTN)(v->value >> 32);
        } else {
            slot[n++] = (UINTN)v->value;
        }
    }
    emit(L")");
    return n;
}

static void reset_fixture(void)
{
    UINTN *size = (UINTN *)(scratch + AT_SIZE);
    static const UINTN sizes[] = {0, 1, 16, 64, 512, 4096, 0x10000, (UINTN)1 << 31, ALL_ONES};
    memcpy(scratch, pristine, FIXTURE);
    *size = sizes[below(sizeof(sizes) / sizeof(sizes[0]))];
}

static void call_one(UINT64 seed, UINT64 index, int end_case)
{
    UINTN slot[SLOTS], i, f, result;
    const struct fuzz_function *fn;

    for (i = 0; i < SLOTS; i++)
        slot[i] = 0;
    rng_state = seed * 0xd1b54a32d192ed03ULL ^ index * 0x8cb92ba72f3d8dd7ULL;
    next();
    for (;;) {
        f = below((UINT32)N_FUNCTIONS);
        if (!function[f])
            continue;
        if (FUZZ_FUNCTIONS[f].returns != 0 && below(2)) /* those end the run on a bad pointer: fewer */
            continue;
        if (end_case ? strcmp16(FUZZ_FUNCTIONS[f].name, TERMINAL[end_case - 2]) == 0
                     : !terminal(FUZZ_FUNCTIONS[f].name))
            break;
    }
    fn = &FUZZ_FUNCTIONS[f];
    reset_fixture();
    draw_call(index, f, slot);
    flush_line();
    result = function[f](slot[0], slot[1], slot[2], slot[3], slot[4], slot[5], slot[6], slot[7], slot[8],
                         slot[9], slot[10], slot[11]);
    harvest();
    if (strcmp16(fn->name, L"RaiseTPL") == 0 || strcmp16(fn->name, L"RestoreTPL") == 0)
        gBS->RestoreTPL(TPL_APPLICATION); /* the rest of the run at TPL_APPLICATION again */
    emit(L"~R ");
    emit_dec(index);
    if (fn->returns == 0) {
        emit(L" status ");
        emit_hex(result);
    } else if (fn->returns == 1) {
        emit(L" value ");
        emit_hex(fn->kinds[0] == 'K' ? result : result != 0); /* RaiseTPL's old TPL; pointers: NULL or not */
    } else {
        emit(L" returned");
    }
    flush_line();
}

/* A notification function at an unmapped address: the firmware's call to it must end the run as a fault. */
static void garbage_callback(void)
{
    EFI_EVENT ev;
    EFI_STATUS status = gBS->CreateEvent(EVT_NOTIFY_SIGNAL, TPL_CALLBACK, (EFI_EVENT_NOTIFY)UNMAPPED, NULL, &ev);
    emit(L"~C end SignalEvent(E:unmapped-notify)");
    flush_line();
    if (status == EFI_SUCCESS)
        status = gBS->SignalEvent(ev);
    emit(L"~R end status ");
    emit_hex(status);
    flush_line();
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_LOADED_IMAGE_PROTOCOL *li = NULL;
    const CHAR16 *options = L"";
    UINT64 seed, start, count, end, i;
    EFI_PHYSICAL_ADDRESS at;

    lib_init(image, st);
    con = st->ConOut;
    out_string = con->OutputString;
    if (gBS->HandleProtocol(image, (EFI_GUID *)&loaded_image_guid, (VOID **)&li) == EFI_SUCCESS && li->LoadOptions &&
        li->LoadOptionsSize >= 2)
        options = li->LoadOptions;
    seed = parse(&options, 0);
    start = parse(&options, 0);
    count = parse(&options, 0);
    end = parse(&options, 0);
    if (!count && !end)
        return EFI_SUCCESS; /* nothing asked (a child of ours started by StartImage) */
    if (gBS->AllocatePages(AllocateAnyPages, EfiLoaderData, SCRATCH_PAGES, &at) != EFI_SUCCESS)
        return EFI_OUT_OF_RESOURCES;
    scratch = (UINT8 *)(UINTN)at;
    for (i = SCRATCH_PAGES * EFI_PAGE_SIZE - 2048; i < SCRATCH_PAGES * EFI_PAGE_SIZE; i++)
        scratch[i] = 'A';
    own_top_page();
    build_pristine();
    find_tables();
    build_pools();
    emit(L"~FUZZ seed ");
    emit_dec(seed);
    emit(L" start ");
    emit_dec(start);
    emit(L" count ");
    emit_dec(count);
    emit(top_page ? L" top-page" : L" no-top-page");
    flush_line();
    for (i = start; i < start + count; i++)
        call_one(seed, i, 0);
    if (end == 1)
        garbage_callback();
    else if (end >= 2 && end < 2 + sizeof(TERMINAL) / sizeof(TERMINAL[0]))
        call_one(seed, start + count, (int)end);
    emit(L"~DONE ");
    emit_dec(count);
    flush_line();
    return EFI_SUCCESS;
}
