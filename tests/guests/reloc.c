/*
 * reloc: linked with -dynamicbase so the image carries a .reloc section.
 * Tables of absolute addresses (in .data and .rdata) are only right once the
 * loader has applied the base relocations for where the image really lives;
 * the code compares them with addresses it computes PC-relatively at run time.
 */
#include "lib.h"

/* lld-link's default ImageBase: 0x140000000 for PE32+, 0x400000 for PE32 (IA32). */
#if __SIZEOF_POINTER__ == 8
#define PREFERRED_IMAGE_BASE 0x140000000ULL
#else
#define PREFERRED_IMAGE_BASE 0x400000ULL
#endif

static EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;

UINT64 reloc_counter = 42;
UINT32 reloc_array[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
const CHAR16 reloc_string[] = L"relocated string";

struct node {
    struct node *next;
    UINT64 value;
};
struct node node_b;
struct node node_a = { &node_b, 1 };
struct node node_b = { &node_a, 2 };

UINT64 reloc_function(UINT64 x)
{
    return x * 3 + 1;
}

/* volatile: the compiler must load these from the image, not fold them. */
void *volatile reloc_data_table[] = {
    &reloc_counter,
    &reloc_array[0],
    &reloc_array[5],
    (void *)reloc_string,
    (void *)L"literal string",
    (void *)&reloc_function,
};
const void *const volatile reloc_rdata_table[] = {
    &reloc_counter,
    &reloc_array[7],
    (const void *)reloc_string,
    (const void *)&reloc_function,
};
UINT64 (*volatile reloc_function_pointer)(UINT64) = reloc_function;

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_LOADED_IMAGE_PROTOCOL *li = NULL;
    const CHAR16 *s;
    UINT64 base = 0;

    lib_init(image, st);
    print(L"reloc: base relocations\r\n");
    if (gBS->HandleProtocol(image, &loaded_image_guid, (VOID **)&li) == EFI_SUCCESS && li) {
        base = (UINTN)li->ImageBase;
        print(L"  info: ImageBase ");
        print_ptr(base);
        print(base == PREFERRED_IMAGE_BASE ? L" (preferred base: relocations were no-ops)\r\n"
                                           : L" (moved from the preferred base)\r\n");
        CHECK(((const UINT8 *)li->ImageBase)[0] == 'M' && ((const UINT8 *)li->ImageBase)[1] == 'Z',
              L"reloc: ImageBase points at the image's MZ header");
        CHECK(base <= (UINTN)&reloc_counter && (UINTN)&reloc_counter < base + li->ImageSize,
              L"reloc: globals lie inside the loaded image");
    } else {
        CHECK(0, L"reloc: HandleProtocol LOADED_IMAGE");
    }

    CHECK(reloc_data_table[0] == &reloc_counter, L"reloc: .data pointer to a global");
    CHECK(reloc_data_table[1] == &reloc_array[0], L"reloc: .data pointer to an array");
    CHECK(reloc_data_table[2] == &reloc_array[5], L"reloc: .data pointer into an array");
    CHECK(reloc_data_table[3] == (void *)reloc_string, L"reloc: .data pointer to a const string");
    s = (const CHAR16 *)reloc_data_table[4];
    CHECK(strcmp16(s, L"literal string") == 0, L"reloc: .data pointer to a string literal");
    CHECK(reloc_data_table[5] == (void *)&reloc_function, L"reloc: .data pointer to a function");
    CHECK(reloc_rdata_table[0] == &reloc_counter, L"reloc: .rdata pointer to a global");
    CHECK(reloc_rdata_table[1] == &reloc_array[7], L"reloc: .rdata pointer into an array");
    CHECK(reloc_rdata_table[2] == (const void *)reloc_string, L"reloc: .rdata pointer to a const string");
    CHECK(reloc_rdata_table[3] == (const void *)&reloc_function, L"reloc: .rdata pointer to a function");
    CHECK(*(UINT64 *)reloc_data_table[0] == 42 && ((UINT32 *)reloc_data_table[2])[0] == 5,
          L"reloc: relocated pointers read the right data");
    CHECK(reloc_function_pointer(13) == 40, L"reloc: call through a relocated function pointer");
    CHECK(node_a.next == &node_b && node_b.next == &node_a && node_a.next->next->value == 1,
          L"reloc: linked structures point at each other");
    return lib_done();
}
