/*
 * efistub's AArch64 resume trampoline: the firmware (-bios) of the QEMU virt machine that
 * efistub resume boots a saved hand-off on.
 *
 * QEMU puts a -bios image into the first flash bank, at physical address 0: not RAM, so
 * nothing the kernel does can clobber it and the memory map needs no entry for it. With
 * virtualization=off and secure=off the CPU has neither EL2 nor EL3 and leaves reset at
 * EL1 (SP_EL1, DAIF masked, MMU and caches off) with the PC at 0, this image's first
 * instruction. QEMU's generic loader devices have put the saved RAM in place before that.
 *
 * The image holds the state block (efistub/layouts/resume_fdt.py AArch64StateBlock: one
 * field per register, then a list of moves) at STATE_OFFSET; efistub resume writes the
 * CPU state saved in manifest.json into a copy of the image. The code
 *
 *   1. checks that it runs at EL1, the saved exception level (else it waits forever);
 *   2. enables FP/SIMD at EL1 (CPACR_EL1.FPEN), as UEFI leaves it for the OS loader;
 *   3. does the moves: saved RAM that QEMU's own device tree at the base of RAM would
 *      have overlapped was loaded elsewhere, in RAM the saved memory map gives out as
 *      free; each move copies it into place (8 bytes at a time: sizes are pages);
 *   4. sets MAIR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1 and VBAR_EL1 as saved, invalidates
 *      the TLBs and the instruction cache;
 *   5. sets SP (SP_EL1, and SP_EL0 to the same value), ELR_EL1 = the saved PC,
 *      SPSR_EL1 = the saved PSTATE (NZCV, DAIF, the EL and stack pointer choice);
 *   6. writes the saved SCTLR_EL1 (MMU and caches as saved: off in efistub's hand-offs),
 *      every x register (x0 is the FDT the stub made, not QEMU's), and ERETs to the saved
 *      PC: PSTATE becomes the saved one in the same instruction.
 *
 * ELR_EL1 and SPSR_EL1 are left holding the saved PC and PSTATE; nothing else is written
 * outside the moves, so the kernel finds RAM as the stub left it.
 *
 * Built by build.sh (clang, llvm-objcopy) into aarch64.bin; position-independent (every
 * reference is PC-relative), though QEMU always runs it at 0.
 */

#define STATE_VERSION   1
#define PLACEHOLDER     0xEF15705E00000000  /* field n of the block holds PLACEHOLDER + n */
#define MAX_MOVES       16
#define MOVE_SIZE       24                  /* destination, source, size */

#define CURRENT_EL_EL1  (1 << 2)            /* CurrentEL.EL, bits 3:2 */
#define CPACR_FPEN      (3 << 20)           /* no trapping of FP/SIMD at EL1 and EL0 */

    .section .text, "ax"
    .balign 8
image_start:
    b       start                           /* the reset vector: PC 0 */
    .balign 8

/* ---- the state block (layouts/resume_fdt.py AArch64StateBlock, field for field) ---- */
state:
    .ascii  "EFIRESUM"                      /* magic */
    .long   STATE_VERSION                   /* version */
    .long   state_end - state               /* size */
state_x:                                    /* x0 ... x30: fields 0-30 */
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    .quad   PLACEHOLDER + \n
    .endr
state_sp:       .quad PLACEHOLDER + 31
state_pc:       .quad PLACEHOLDER + 32
state_pstate:   .quad PLACEHOLDER + 33
state_sctlr:    .quad PLACEHOLDER + 34
state_tcr:      .quad PLACEHOLDER + 35
state_ttbr0:    .quad PLACEHOLDER + 36
state_ttbr1:    .quad PLACEHOLDER + 37
state_mair:     .quad PLACEHOLDER + 38
state_vbar:     .quad PLACEHOLDER + 39
state_move_count:
                .quad 0
state_moves:    .fill MAX_MOVES * MOVE_SIZE, 1, 0
state_end:

/* ---- the code ---- */
start:
    mrs     x0, CurrentEL
    cmp     x0, #CURRENT_EL_EL1
    b.ne    wrong_el

    mov     x0, #CPACR_FPEN
    msr     cpacr_el1, x0
    isb

    /* the moves: x9 moves left, x10 the next one */
    ldr     x9, state_move_count
    adr     x10, state_moves
1:  cbz     x9, 4f
    ldp     x11, x12, [x10]                 /* destination, source */
    ldr     x13, [x10, #16]                 /* size */
    add     x10, x10, #MOVE_SIZE
2:  cbz     x13, 3f
    ldr     x14, [x12], #8
    str     x14, [x11], #8
    sub     x13, x13, #8
    b       2b
3:  sub     x9, x9, #1
    b       1b
4:  dsb     sy

    /* the translation regime and the vectors, as saved (the MMU is still off) */
    ldr     x0, state_mair
    msr     mair_el1, x0
    ldr     x0, state_tcr
    msr     tcr_el1, x0
    ldr     x0, state_ttbr0
    msr     ttbr0_el1, x0
    ldr     x0, state_ttbr1
    msr     ttbr1_el1, x0
    ldr     x0, state_vbar
    msr     vbar_el1, x0
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb

    /* the stack and what ERET restores */
    ldr     x0, state_sp
    mov     sp, x0
    msr     sp_el0, x0
    ldr     x0, state_pc
    msr     elr_el1, x0
    ldr     x0, state_pstate
    msr     spsr_el1, x0

    /* SCTLR_EL1 last: with the MMU on as saved, what follows runs through the saved tables */
    ldr     x0, state_sctlr
    dsb     sy
    msr     sctlr_el1, x0
    isb

    adr     x30, state_x
    ldp     x0, x1, [x30, #0]
    ldp     x2, x3, [x30, #16]
    ldp     x4, x5, [x30, #32]
    ldp     x6, x7, [x30, #48]
    ldp     x8, x9, [x30, #64]
    ldp     x10, x11, [x30, #80]
    ldp     x12, x13, [x30, #96]
    ldp     x14, x15, [x30, #112]
    ldp     x16, x17, [x30, #128]
    ldp     x18, x19, [x30, #144]
    ldp     x20, x21, [x30, #160]
    ldp     x22, x23, [x30, #176]
    ldp     x24, x25, [x30, #192]
    ldp     x26, x27, [x30, #208]
    ldp     x28, x29, [x30, #224]
    ldr     x30, [x30, #240]
    eret

/* Not at EL1: the machine is not the one the state was saved on (QEMU with EL2 or EL3). */
wrong_el:
    wfe
    b       wrong_el
