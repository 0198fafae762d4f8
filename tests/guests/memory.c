/*
 * memory: AllocatePages / FreePages / AllocatePool / FreePool / GetMemoryMap.
 * Every check follows UEFI 2.10 section 7.2; see README.md.
 */
#include "lib.h"

static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;

#define MB (1024ULL * 1024ULL)

/* A snapshot of the memory map in a pool buffer the caller frees. */
typedef struct {
    UINT8 *buf;
    UINTN size;
    UINTN key;
    UINTN dsize;
    UINT32 version;
} MAP;

static EFI_STATUS get_map(MAP *m)
{
    EFI_STATUS status;
    UINTN alloc;

    m->buf = NULL;
    m->size = 0;
    status = gBS->GetMemoryMap(&m->size, NULL, &m->key, &m->dsize, &m->version);
    while (status == EFI_BUFFER_TOO_SMALL) {
        if (m->buf)
            gBS->FreePool(m->buf);
        /* The pool allocation below can itself add descriptors: leave room. */
        alloc = m->size + 16 * m->dsize;
        status = gBS->AllocatePool(EfiLoaderData, alloc, (VOID **)&m->buf);
        if (EFI_ERROR(status)) {
            m->buf = NULL;
            return status;
        }
        m->size = alloc;
        status = gBS->GetMemoryMap(&m->size, (EFI_MEMORY_DESCRIPTOR *)m->buf, &m->key,
                                   &m->dsize, &m->version);
    }
    if (EFI_ERROR(status) && m->buf) {
        gBS->FreePool(m->buf);
        m->buf = NULL;
    }
    return status;
}

static void free_map(MAP *m)
{
    if (m->buf)
        gBS->FreePool(m->buf);
    m->buf = NULL;
}

static UINTN map_count(const MAP *m)
{
    return m->dsize ? m->size / m->dsize : 0;
}

static EFI_MEMORY_DESCRIPTOR *map_at(const MAP *m, UINTN i)
{
    return (EFI_MEMORY_DESCRIPTOR *)(m->buf + i * m->dsize);
}

static UINT64 desc_end(const EFI_MEMORY_DESCRIPTOR *d)
{
    return d->PhysicalStart + d->NumberOfPages * EFI_PAGE_SIZE;
}

/* The descriptor that contains addr, or NULL. */
static EFI_MEMORY_DESCRIPTOR *map_find(const MAP *m, UINT64 addr)
{
    UINTN i;
    for (i = 0; i < map_count(m); i++) {
        EFI_MEMORY_DESCRIPTOR *d = map_at(m, i);
        if (d->PhysicalStart <= addr && addr < desc_end(d))
            return d;
    }
    return NULL;
}

/* Does one descriptor of this type cover [addr, addr + len)? */
static int map_covers(UINT64 addr, UINT64 len, UINT32 type)
{
    MAP m;
    EFI_MEMORY_DESCRIPTOR *d;
    int ok;

    if (EFI_ERROR(get_map(&m)))
        return 0;
    d = map_find(&m, addr);
    ok = d && d->Type == type && addr + len <= desc_end(d);
    if (!ok) {
        print(L"  note: descriptor at ");
        print_hex(addr);
        if (d) {
            print(L" has type ");
            print_hex(d->Type);
            print(L", ends ");
            print_hex(desc_end(d));
        } else {
            print(L" missing");
        }
        print(L"\r\n");
    }
    free_map(&m);
    return ok;
}

/*
 * The lowest free range of at least `pages` pages at or above 1 MiB (legacy low
 * memory is avoided). A free descriptor that starts below 1 MiB counts with
 * its part above 1 MiB, so a map with one big free run from 4 KiB works too.
 */
static int find_free(UINTN pages, UINT64 *start)
{
    MAP m;
    UINTN i;
    int found = 0;

    if (EFI_ERROR(get_map(&m)))
        return 0;
    for (i = 0; i < map_count(&m); i++) {
        EFI_MEMORY_DESCRIPTOR *d = map_at(&m, i);
        UINT64 lo = d->PhysicalStart < MB ? MB : d->PhysicalStart;
        if (d->Type == EfiConventionalMemory && lo < desc_end(d) &&
            (desc_end(d) - lo) / EFI_PAGE_SIZE >= pages && (!found || lo < *start)) {
            *start = lo;
            found = 1;
        }
    }
    free_map(&m);
    return found;
}

static void test_memory_map(void)
{
    UINTN size = 0, key = 0, dsize = 0, i, j, count;
    UINT32 version = 0;
    EFI_STATUS status;
    MAP m;
    int sorted = 1, disjoint = 1, nonempty = 1, aligned = 1, conventional = 0;

    status = gBS->GetMemoryMap(&size, NULL, &key, &dsize, &version);
    CHECK_STATUS(status, EFI_BUFFER_TOO_SMALL, L"GetMemoryMap: size probe -> EFI_BUFFER_TOO_SMALL");
    CHECK(size > 0, L"GetMemoryMap: size probe reports the needed size");
    CHECK(dsize >= sizeof(EFI_MEMORY_DESCRIPTOR), L"GetMemoryMap: DescriptorSize >= 40");
    CHECK(dsize % 8 == 0, L"GetMemoryMap: DescriptorSize is a multiple of 8");
    CHECK(version == EFI_MEMORY_DESCRIPTOR_VERSION, L"GetMemoryMap: DescriptorVersion == 1");
    CHECK(dsize == 0 || size % dsize == 0, L"GetMemoryMap: probed size is whole descriptors");

    status = gBS->GetMemoryMap(NULL, NULL, &key, &dsize, &version);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"GetMemoryMap: NULL MemoryMapSize -> EFI_INVALID_PARAMETER");

    status = get_map(&m);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"GetMemoryMap: full call succeeds"))
        return;
    count = map_count(&m);
    CHECK(count > 0 && m.size % m.dsize == 0, L"GetMemoryMap: map is whole descriptors");
    for (i = 0; i < count; i++) {
        EFI_MEMORY_DESCRIPTOR *d = map_at(&m, i);
        if (d->NumberOfPages == 0)
            nonempty = 0;
        if (d->PhysicalStart % EFI_PAGE_SIZE)
            aligned = 0;
        if (d->Type == EfiConventionalMemory)
            conventional = 1;
        if (i > 0 && d->PhysicalStart < desc_end(map_at(&m, i - 1)))
            sorted = 0;
        for (j = 0; j < i; j++) {
            EFI_MEMORY_DESCRIPTOR *e = map_at(&m, j);
            if (d->PhysicalStart < desc_end(e) && e->PhysicalStart < desc_end(d))
                disjoint = 0;
        }
    }
    CHECK(nonempty, L"GetMemoryMap: every descriptor has NumberOfPages > 0");
    CHECK(aligned, L"GetMemoryMap: every PhysicalStart is page aligned");
    CHECK(disjoint, L"GetMemoryMap: descriptors do not overlap");
    /* Not a check: UEFI does not require the map to be sorted, and EDK2 on
       AArch64 (AAVMF) returns it unsorted; x86_64 OVMF happens to sort it. */
    print(sorted ? L"  info: map is sorted by address\r\n" : L"  info: map is not sorted by address\r\n");
    CHECK(conventional, L"GetMemoryMap: some EfiConventionalMemory is free");
    free_map(&m);
}

static void test_allocate_any(void)
{
    EFI_PHYSICAL_ADDRESS addr = 0;
    EFI_STATUS status;
    MAP before, after;
    volatile UINT64 *p;
    int have_before;

    have_before = !EFI_ERROR(get_map(&before));
    status = gBS->AllocatePages(AllocateAnyPages, EfiLoaderData, 3, &addr);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePages AnyPages: 3 pages of EfiLoaderData"))
        return;
    CHECK(addr % EFI_PAGE_SIZE == 0, L"AllocatePages AnyPages: result page aligned");
    p = (volatile UINT64 *)(UINTN)addr;
    p[0] = 0x1122334455667788ULL;
    p[3 * EFI_PAGE_SIZE / 8 - 1] = 0x8877665544332211ULL;
    CHECK(p[0] == 0x1122334455667788ULL && p[3 * EFI_PAGE_SIZE / 8 - 1] == 0x8877665544332211ULL,
          L"AllocatePages AnyPages: memory is writable");
    CHECK(map_covers(addr, 3 * EFI_PAGE_SIZE, EfiLoaderData),
          L"GetMemoryMap: allocated pages appear as EfiLoaderData");
    if (have_before && !EFI_ERROR(get_map(&after))) {
        CHECK(after.key != before.key, L"GetMemoryMap: MapKey changes after AllocatePages");
        free_map(&after);
    } else {
        CHECK(0, L"GetMemoryMap: MapKey changes after AllocatePages");
    }
    if (have_before)
        free_map(&before);

    status = gBS->FreePages(addr + 16, 3);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"FreePages: unaligned address -> EFI_INVALID_PARAMETER");
    status = gBS->FreePages(addr, 3);
    CHECK_STATUS(status, EFI_SUCCESS, L"FreePages: allocated pages");
    status = gBS->FreePages(addr, 3);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"FreePages: second free of the same pages -> EFI_NOT_FOUND");
}

static void test_allocate_max(void)
{
    EFI_PHYSICAL_ADDRESS addr, limit, start;
    EFI_STATUS status;

    limit = 0xFFFFFFFFULL;
    addr = limit;
    status = gBS->AllocatePages(AllocateMaxAddress, EfiLoaderData, 2, &addr);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePages MaxAddress: below 4 GiB")) {
        CHECK(addr + 2 * EFI_PAGE_SIZE - 1 <= limit, L"AllocatePages MaxAddress: result ends below 4 GiB");
        gBS->FreePages(addr, 2);
    }

    /* A tight limit: just 16 pages into the lowest free range above 1 MiB. */
    if (!CHECK(find_free(16, &start), L"AllocatePages MaxAddress: found a free range of 16 pages"))
        return;
    limit = start + 16 * EFI_PAGE_SIZE - 1;
    addr = limit;
    status = gBS->AllocatePages(AllocateMaxAddress, EfiLoaderData, 1, &addr);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePages MaxAddress: tight limit")) {
        CHECK(addr + EFI_PAGE_SIZE - 1 <= limit, L"AllocatePages MaxAddress: result ends at or below the limit");
        CHECK(addr % EFI_PAGE_SIZE == 0, L"AllocatePages MaxAddress: result page aligned");
        gBS->FreePages(addr, 1);
    }
}

static void test_allocate_address(void)
{
    EFI_PHYSICAL_ADDRESS start, want, addr;
    EFI_STATUS status;

    if (!CHECK(find_free(4, &start), L"AllocatePages Address: found a free range"))
        return;
    want = start + EFI_PAGE_SIZE;
    addr = want;
    status = gBS->AllocatePages(AllocateAddress, EfiLoaderData, 2, &addr);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePages Address: free address"))
        return;
    CHECK(addr == want, L"AllocatePages Address: returns the requested address");
    CHECK(map_covers(want, 2 * EFI_PAGE_SIZE, EfiLoaderData),
          L"AllocatePages Address: pages appear as EfiLoaderData");
    addr = want;
    status = gBS->AllocatePages(AllocateAddress, EfiLoaderData, 2, &addr);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"AllocatePages Address: same address again -> EFI_NOT_FOUND");
    addr = want + EFI_PAGE_SIZE;
    status = gBS->AllocatePages(AllocateAddress, EfiLoaderData, 2, &addr);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"AllocatePages Address: overlapping range -> EFI_NOT_FOUND");
    status = gBS->FreePages(want, 2);
    CHECK_STATUS(status, EFI_SUCCESS, L"FreePages: pages from AllocateAddress");
    addr = want;
    status = gBS->AllocatePages(AllocateAddress, EfiLoaderData, 2, &addr);
    CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePages Address: address is free again after FreePages");
    if (status == EFI_SUCCESS)
        gBS->FreePages(want, 2);
}

static void test_allocate_types(void)
{
    /* UEFI 2.10 7.2: the range EfiMaxMemoryType (16)..0x6FFFFFFF and EfiPersistentMemory.
       (EfiUnacceptedMemoryType, 15, is new in 2.10 and older EDK2 does not know it;
       EDK2 also rejects EfiConventionalMemory, which the spec does not list.) */
    static const UINT32 bad[] = { 16, 0x100, 0x6FFFFFFF, EfiPersistentMemory };
    static const CHAR16 *const bad_names[] = {
        L"AllocatePages: memory type 16 (>= EfiMaxMemoryType) -> EFI_INVALID_PARAMETER",
        L"AllocatePages: memory type 0x100 -> EFI_INVALID_PARAMETER",
        L"AllocatePages: memory type 0x6FFFFFFF -> EFI_INVALID_PARAMETER",
        L"AllocatePages: EfiPersistentMemory -> EFI_INVALID_PARAMETER",
    };
    static const UINT32 good[] = { 0x70000000, 0x80000000 };
    static const CHAR16 *const good_names[] = {
        L"AllocatePages: OEM memory type 0x70000000 is allowed and mapped with its type",
        L"AllocatePages: OS memory type 0x80000000 is allowed and mapped with its type",
    };
    EFI_PHYSICAL_ADDRESS addr;
    EFI_STATUS status;
    UINTN i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        addr = 0;
        status = gBS->AllocatePages(AllocateAnyPages, (EFI_MEMORY_TYPE)bad[i], 1, &addr);
        CHECK_STATUS(status, EFI_INVALID_PARAMETER, bad_names[i]);
        if (status == EFI_SUCCESS)
            gBS->FreePages(addr, 1);
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        addr = 0;
        status = gBS->AllocatePages(AllocateAnyPages, (EFI_MEMORY_TYPE)good[i], 1, &addr);
        CHECK(status == EFI_SUCCESS && map_covers(addr, EFI_PAGE_SIZE, good[i]), good_names[i]);
        if (status == EFI_SUCCESS)
            gBS->FreePages(addr, 1);
    }
    status = gBS->AllocatePages(MaxAllocateType, EfiLoaderData, 1, &addr);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"AllocatePages: allocation type MaxAllocateType -> EFI_INVALID_PARAMETER");
    status = gBS->AllocatePages(AllocateAnyPages, EfiLoaderData, 1, NULL);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"AllocatePages: NULL Memory -> EFI_INVALID_PARAMETER");
}

static void test_free_unallocated(void)
{
    EFI_PHYSICAL_ADDRESS start;
    EFI_STATUS status;

    if (CHECK(find_free(4, &start), L"FreePages: found a free range")) {
        status = gBS->FreePages(start + EFI_PAGE_SIZE, 1);
        CHECK_STATUS(status, EFI_NOT_FOUND, L"FreePages: free (never allocated) pages -> EFI_NOT_FOUND");
    }
    /* Far beyond any RAM a test machine has (128 TiB - 1 MiB). */
    status = gBS->FreePages(0x7FFFFFF00000ULL, 1);
    CHECK_STATUS(status, EFI_NOT_FOUND, L"FreePages: address outside the memory map -> EFI_NOT_FOUND");
}

static void test_pool(void)
{
    EFI_STATUS status;
    UINT8 *buf = NULL, *big = NULL;
    VOID *other = NULL;
    UINTN i;
    int ok = 1;

    status = gBS->AllocatePool(EfiLoaderData, 100, (VOID **)&buf);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePool: 100 bytes of EfiLoaderData")) {
        CHECK(buf != NULL, L"AllocatePool: returns a pointer");
        CHECK(((UINTN)buf & 7) == 0, L"AllocatePool: buffer is 8-byte aligned");
        for (i = 0; i < 100; i++)
            buf[i] = (UINT8)(i * 7);
        for (i = 0; i < 100; i++)
            if (buf[i] != (UINT8)(i * 7))
                ok = 0;
        CHECK(ok, L"AllocatePool: buffer is writable");
        CHECK(map_covers((UINTN)buf, 100, EfiLoaderData),
              L"AllocatePool: buffer lies in EfiLoaderData memory");
        status = gBS->FreePool(buf);
        CHECK_STATUS(status, EFI_SUCCESS, L"FreePool: pool buffer");
    }

    status = gBS->AllocatePool(EfiLoaderData, 1024 * 1024, (VOID **)&big);
    if (CHECK_STATUS(status, EFI_SUCCESS, L"AllocatePool: 1 MiB")) {
        big[0] = 1;
        big[1024 * 1024 - 1] = 2;
        CHECK(big[0] == 1 && big[1024 * 1024 - 1] == 2, L"AllocatePool: 1 MiB buffer is writable");
        CHECK_STATUS(gBS->FreePool(big), EFI_SUCCESS, L"FreePool: 1 MiB buffer");
    }

    status = gBS->AllocatePool(EfiLoaderData, 16, NULL);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"AllocatePool: NULL Buffer -> EFI_INVALID_PARAMETER");
    status = gBS->AllocatePool((EFI_MEMORY_TYPE)0x100, 16, &other);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"AllocatePool: memory type 0x100 -> EFI_INVALID_PARAMETER");
    if (status == EFI_SUCCESS)
        gBS->FreePool(other);
    status = gBS->AllocatePool(EfiPersistentMemory, 16, &other);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"AllocatePool: EfiPersistentMemory -> EFI_INVALID_PARAMETER");
    if (status == EFI_SUCCESS)
        gBS->FreePool(other);
    status = gBS->FreePool(NULL);
    CHECK_STATUS(status, EFI_INVALID_PARAMETER, L"FreePool: NULL -> EFI_INVALID_PARAMETER");
}

static void test_loaded_image_memory(void)
{
    EFI_LOADED_IMAGE_PROTOCOL *li = NULL;
    EFI_STATUS status;
    UINT64 base, size, entry;

    status = gBS->HandleProtocol(gImage, &loaded_image_guid, (VOID **)&li);
    if (!CHECK_STATUS(status, EFI_SUCCESS, L"HandleProtocol: LOADED_IMAGE for the image map check"))
        return;
    base = (UINTN)li->ImageBase;
    size = li->ImageSize;
    entry = (UINTN)&test_loaded_image_memory;
    CHECK(size > 0, L"LoadedImage: ImageSize > 0");
    CHECK(base <= entry && entry < base + size, L"LoadedImage: running code lies in ImageBase..ImageBase+ImageSize");
    CHECK(map_covers(base, size, EfiLoaderCode),
          L"GetMemoryMap: one EfiLoaderCode descriptor covers the loaded image");
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    print(L"memory: boot services memory tests\r\n");
    test_memory_map();
    test_allocate_any();
    test_allocate_max();
    test_allocate_address();
    test_allocate_types();
    test_free_unallocated();
    test_pool();
    test_loaded_image_memory();
    return lib_done();
}
