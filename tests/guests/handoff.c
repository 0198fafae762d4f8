/*
 * handoff: leaves boot services and jumps to "kernel" code it placed in memory it
 * allocated, the way an OS loader hands off. efistub must report outcome "handoff" at
 * that code, with the marker in the first argument register (x64: RCX, AArch64: X0,
 * RISC-V: A0). IA32 passes arguments on the stack (cdecl): there the marker is in EAX
 * and is also pushed as the first argument, so it is at [ESP+4] at the loop.
 *
 * On AArch64 it first turns the MMU and the D-cache off in SCTLR_EL1, as arm64
 * kernels before 6.3 do in efi_enter_kernel: that path is a hand-off too.
 */
#include "lib.h"

#define MARKER 0xEF15700BULL

#if defined(__x86_64__) || defined(__i386__)
static const UINT8 kernel_code[] = {0xeb, 0xfe};             /* jmp . */
#elif defined(__riscv)
static const UINT8 kernel_code[] = {0x6f, 0x00, 0x00, 0x00}; /* j . */
#else
static const UINT8 kernel_code[] = {0x00, 0x00, 0x00, 0x14}; /* b . */
#endif

typedef void (*kernel_entry)(UINT64 marker, UINT64 unused);

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    EFI_PHYSICAL_ADDRESS kernel = 0;
    UINTN size = 0, key = 0, dsize = 0, i;
    UINT32 version = 0;
    EFI_MEMORY_DESCRIPTOR *map = NULL;
    EFI_STATUS status;

    lib_init(image, st);
    if (gBS->AllocatePages(AllocateAnyPages, EfiLoaderCode, 1, &kernel) != EFI_SUCCESS)
        return EFI_OUT_OF_RESOURCES;
    for (i = 0; i < sizeof(kernel_code); i++)
        ((UINT8 *)(UINTN)kernel)[i] = kernel_code[i];

    status = gBS->GetMemoryMap(&size, NULL, &key, &dsize, &version);
    size += 8 * dsize;
    if (status != EFI_BUFFER_TOO_SMALL || gBS->AllocatePool(EfiLoaderData, size, (VOID **)&map) != EFI_SUCCESS)
        return EFI_LOAD_ERROR;
    for (i = 0; i < 2; i++) { /* the first ExitBootServices may see a stale key: get the map again */
        UINTN map_size = size;
        if (gBS->GetMemoryMap(&map_size, map, &key, &dsize, &version) != EFI_SUCCESS)
            return EFI_LOAD_ERROR;
        if (gBS->ExitBootServices(image, key) == EFI_SUCCESS)
            break;
    }
    if (i == 2)
        return EFI_ABORTED;

#if defined(__aarch64__)
    {
        UINT64 sctlr;
        __asm__ volatile("mrs %0, sctlr_el1" : "=r"(sctlr));
        sctlr &= ~((UINT64)1 << 0 | (UINT64)1 << 2); /* M: MMU, C: data cache */
        __asm__ volatile("msr sctlr_el1, %0; isb" : : "r"(sctlr));
    }
#endif
#if defined(__i386__)
    /* cdecl call kernel(MARKER, 0) with MARKER in EAX too: after the call pushes the
       return address, [ESP+4] = MARKER and [ESP+8] = 0. */
    __asm__ volatile("pushl $0\n\tpushl %%eax\n\tcalll *%%ecx"
                     : : "a"((UINT32)MARKER), "c"((UINT32)kernel) : "memory");
#else
    ((kernel_entry)(UINTN)kernel)(MARKER, 0);
#endif
    return EFI_ABORTED;
}
