/*
 * efistub's x86_64 resume trampoline: the firmware (-bios) of the QEMU q35 machine that
 * efistub resume boots a saved hand-off on.
 *
 * The image is one 64 KiB ROM that QEMU maps at 0xFFFF0000-0xFFFFFFFF. It starts with the
 * state block (efistub/layouts/resume_x86_64.py: one field per register), which efistub
 * fills in a copy of this image with the CPU state saved in manifest.json. QEMU's generic
 * loader devices have put the saved RAM in place before the CPU leaves reset; this code
 * touches no RAM at all. From the reset vector (0xFFFFFFF0, real mode) it
 *
 *   1. loads a GDT of its own (in this ROM) and enters 32-bit protected mode;
 *   2. sets the saved CR4 (PAE) and CR3, the saved EFER (LME) and the saved CR0 (PG):
 *      long mode, through the saved page tables, which identity-map RAM and the 32-bit
 *      window (efistub checks that they map this ROM before it starts QEMU);
 *   3. far-jumps to 64-bit code, loads the saved GDTR and IDTR, the saved data selectors,
 *      FS and GS bases, and the saved CS through a far return;
 *   4. writes the saved CR4 again (the bits only long mode allows), CR2, every general
 *      register, RFLAGS and RSP, and jumps to the saved RIP.
 *
 * Its only "stack" is the state block: LRETQ and POPFQ read their operands from it
 * (RSP points into the ROM for those two instructions), so nothing is written below the
 * saved RSP and the kernel finds RAM exactly as the stub left it.
 *
 * Built by build.sh (clang, llvm-objcopy) into x86_64.bin; no linker: every absolute
 * address is ROM_BASE plus a distance inside this one section.
 */

#define ROM_BASE    0xFFFF0000
#define ROM_SIZE    0x10000
#define RESET_VECTOR_OFFSET 0xFFF0
#define OFF(label)  ((label) - rom_start)
#define ABS(label)  (ROM_BASE + OFF(label))

#define CR0_PE      (1 << 0)
#define CR4_PCIDE   (1 << 17)   /* only long mode can set it */
#define EFER_LMA    (1 << 10)   /* the CPU sets it when paging comes on with LME */
#define MSR_EFER    0xC0000080
#define MSR_FS_BASE 0xC0000100
#define MSR_GS_BASE 0xC0000101

#define CODE32_SELECTOR 0x08
#define DATA32_SELECTOR 0x10
#define CODE64_SELECTOR 0x18

/* What efistub has not filled in yet: field n of the state block holds PLACEHOLDER + n. */
#define PLACEHOLDER 0xEF15705E00000000
#define STATE_VERSION 1

    .section .text, "ax"
rom_start:

/* ---- the state block (layouts/resume_x86_64.py StateBlock, field for field) ---- */
state:
    .ascii "EFIRESUM"                   /* magic */
    .long STATE_VERSION                 /* version */
    .long state_end - state             /* size */
state_rax:      .quad PLACEHOLDER + 0
state_rbx:      .quad PLACEHOLDER + 1
state_rcx:      .quad PLACEHOLDER + 2
state_rdx:      .quad PLACEHOLDER + 3
state_rsi:      .quad PLACEHOLDER + 4
state_rdi:      .quad PLACEHOLDER + 5
state_rbp:      .quad PLACEHOLDER + 6
state_rsp:      .quad PLACEHOLDER + 7
state_r8:       .quad PLACEHOLDER + 8
state_r9:       .quad PLACEHOLDER + 9
state_r10:      .quad PLACEHOLDER + 10
state_r11:      .quad PLACEHOLDER + 11
state_r12:      .quad PLACEHOLDER + 12
state_r13:      .quad PLACEHOLDER + 13
state_r14:      .quad PLACEHOLDER + 14
state_r15:      .quad PLACEHOLDER + 15
state_rip:      .quad PLACEHOLDER + 16
state_rflags:   .quad PLACEHOLDER + 17  /* POPFQ reads it: RSP points here */
state_cr0:      .quad PLACEHOLDER + 18
state_cr2:      .quad PLACEHOLDER + 19
state_cr3:      .quad PLACEHOLDER + 20
state_cr4:      .quad PLACEHOLDER + 21
state_efer:     .quad PLACEHOLDER + 22
state_fs_base:  .quad PLACEHOLDER + 23
state_gs_base:  .quad PLACEHOLDER + 24
state_ds:       .quad PLACEHOLDER + 25
state_es:       .quad PLACEHOLDER + 26
state_fs:       .quad PLACEHOLDER + 27
state_gs:       .quad PLACEHOLDER + 28
state_ss:       .quad PLACEHOLDER + 29
/* the far return that loads CS: LRETQ pops the address, then the selector */
state_cs_frame: .quad ABS(with_saved_cs)
state_cs:       .quad PLACEHOLDER + 30
/* LGDT / LIDT operands: 6 bytes of padding, a 16-bit limit, a 64-bit base */
    .skip 6
state_gdtr:     .word 0xFFFF
                .quad PLACEHOLDER + 31
    .skip 6
state_idtr:     .word 0xFFFF
                .quad PLACEHOLDER + 32
state_end:

/* ---- the trampoline's own GDT: null, 32-bit code, 32-bit data, 64-bit code ---- */
    .balign 16
gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF            /* 0x08: flat 32-bit code (accessed: the ROM is not written) */
    .quad 0x00CF93000000FFFF            /* 0x10: flat data */
    .quad 0x00AF9B000000FFFF            /* 0x18: 64-bit code */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .long ABS(gdt)

/* ---- real mode, from the reset vector: CS base 0xFFFF0000 ---- */
    .code16
real_mode:
    cli
    cld
    lgdtl %cs:OFF(gdt_pointer)
    movl %cr0, %eax
    orl $CR0_PE, %eax
    movl %eax, %cr0
    ljmpl $CODE32_SELECTOR, $ABS(protected_mode)

/* ---- 32-bit protected mode: into long mode through the saved page tables ---- */
    .code32
protected_mode:
    movw $DATA32_SELECTOR, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl ABS(state_cr4), %eax
    andl $~CR4_PCIDE, %eax
    movl %eax, %cr4                     /* PAE (and LA57, when saved) before paging */
    movl ABS(state_cr3), %eax
    movl %eax, %cr3                     /* below 4 GiB: efistub checks it */
    movl $MSR_EFER, %ecx
    movl ABS(state_efer), %eax
    andl $~EFER_LMA, %eax
    movl ABS(state_efer) + 4, %edx
    wrmsr                               /* LME */
    movl ABS(state_cr0), %eax
    movl %eax, %cr0                     /* PG: long mode, compatibility mode */
    ljmpl $CODE64_SELECTOR, $ABS(long_mode)

/* ---- 64-bit mode: the saved descriptor tables, selectors and registers ---- */
    .code64
long_mode:
    lgdtq state_gdtr(%rip)
    lidtq state_idtr(%rip)
    movw state_ds(%rip), %ds
    movw state_es(%rip), %es
    movw state_ss(%rip), %ss
    movw state_fs(%rip), %fs
    movw state_gs(%rip), %gs
    movl $MSR_FS_BASE, %ecx             /* the bases after the selectors, which reset them */
    movl state_fs_base(%rip), %eax
    movl state_fs_base + 4(%rip), %edx
    wrmsr
    movl $MSR_GS_BASE, %ecx
    movl state_gs_base(%rip), %eax
    movl state_gs_base + 4(%rip), %edx
    wrmsr
    leaq state_cs_frame(%rip), %rsp
    lretq                               /* CS from the saved GDT */
with_saved_cs:
    movq state_cr4(%rip), %rax
    movq %rax, %cr4
    movq state_cr2(%rip), %rax
    movq %rax, %cr2
    movq state_rax(%rip), %rax
    movq state_rbx(%rip), %rbx
    movq state_rcx(%rip), %rcx
    movq state_rdx(%rip), %rdx
    movq state_rsi(%rip), %rsi
    movq state_rdi(%rip), %rdi
    movq state_rbp(%rip), %rbp
    movq state_r8(%rip), %r8
    movq state_r9(%rip), %r9
    movq state_r10(%rip), %r10
    movq state_r11(%rip), %r11
    movq state_r12(%rip), %r12
    movq state_r13(%rip), %r13
    movq state_r14(%rip), %r14
    movq state_r15(%rip), %r15
    leaq state_rflags(%rip), %rsp       /* LEA and MOV leave the flags alone */
    popfq
    movq state_rsp(%rip), %rsp
    jmpq *state_rip(%rip)

/* ---- the reset vector: the CPU's first instruction, at 0xFFFFFFF0 ---- */
    .org RESET_VECTOR_OFFSET, 0xFF
    .code16
reset_vector:                           /* a near JMP: IP wraps inside the 64 KiB CS (base 0xFFFF0000) */
    .byte 0xE9
    .word (OFF(real_mode) - (OFF(reset_vector) + 3)) & 0xFFFF
    .org ROM_SIZE, 0xFF
