/*
 * efistub's RISC-V 64 resume trampoline: the S-mode payload that QEMU virt's OpenSBI
 * (fw_dynamic, QEMU's default -bios) starts on the machine efistub resume boots a saved
 * hand-off on.
 *
 * efistub resume wraps a copy of this image in a one-segment ELF file (-kernel) whose
 * address is inside the 2 MiB that the saved memory map reserves for the SBI firmware
 * (EfiReservedMemoryType), above OpenSBI itself; QEMU tells fw_dynamic to enter it there
 * in S-mode, with a0 = the hart id and a1 = QEMU's own device tree, which it ignores: the
 * kernel gets the stub's. QEMU's generic loader devices have put the saved RAM in place
 * before OpenSBI started.
 *
 * The image holds the state block (efistub/layouts/resume_fdt.py RiscV64StateBlock: one
 * field per register, then a list of moves) at STATE_OFFSET; efistub resume writes the
 * CPU state saved in manifest.json into the copy. The code
 *
 *   1. does the moves: saved RAM that QEMU's own device tree near the top of RAM would
 *      have overlapped (OpenSBI reads that tree before it starts us) was loaded
 *      elsewhere, in RAM the saved memory map gives out as free; each move copies it
 *      into place (8 bytes at a time: sizes are pages);
 *   2. sets stvec as saved, and sstatus as saved but with SIE clear, SPIE = the saved
 *      SIE and SPP = S, so that SRET gives back the saved SIE in S-mode;
 *   3. sets sepc = the saved PC, satp as saved (then SFENCE.VMA), every x register
 *      (a0 the saved hart id, a1 the FDT the stub made), and SRETs to the saved PC.
 *
 * SRET leaves sstatus.SPIE = 1 and SPP = U where the saved values may differ (they only
 * matter to the next SRET, after a trap has set them anew), and sepc = the saved PC;
 * nothing else is written outside the moves, so the kernel finds RAM as the stub left it.
 *
 * Built by build.sh (clang, llvm-objcopy) into riscv64.bin; position-independent (every
 * reference is PC-relative), so efistub can place it where the saved state leaves room.
 */

#define STATE_VERSION   1
#define PLACEHOLDER     0xEF15705E00000000  /* field n of the block holds PLACEHOLDER + n */
#define MAX_MOVES       16
#define MOVE_SIZE       24                  /* destination, source, size */
#define STATE_SIZE      (16 + 35 * 8 + 8 + MAX_MOVES * MOVE_SIZE)  /* header, registers, moves */

#define SSTATUS_SIE     (1 << 1)
#define SSTATUS_SPIE    (1 << 5)
#define SSTATUS_SPP     (1 << 8)
#define SIE_TO_SPIE     4                   /* SPIE is SIE's bit shifted left by this */

#define XREG(n)         (8 * ((n) - 1))     /* x1 ... x31 are fields 0-30 */

    .option norvc                           /* every instruction 4 bytes: the block's offset is fixed */
    .section .text, "ax"
    .balign 8
image_start:
    j       start                           /* the entry: fw_dynamic's next address */
    .balign 8

/* ---- the state block (layouts/resume_fdt.py RiscV64StateBlock, field for field) ---- */
state:
    .ascii  "EFIRESUM"                      /* magic */
    .word   STATE_VERSION                   /* version */
    .word   STATE_SIZE                      /* size (a constant: label differences need relocations here) */
state_x:                                    /* x1 (ra) ... x31 (t6): fields 0-30 */
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    .dword  PLACEHOLDER + \n
    .endr
state_pc:       .dword PLACEHOLDER + 31
state_satp:     .dword PLACEHOLDER + 32
state_stvec:    .dword PLACEHOLDER + 33
state_sstatus:  .dword PLACEHOLDER + 34
state_move_count:
                .dword 0
state_moves:    .fill MAX_MOVES * MOVE_SIZE, 1, 0
    .org    state + STATE_SIZE              /* fails to assemble if the block outgrew STATE_SIZE */
state_end:

/* ---- the code ---- */
start:
    /* the moves: t0 moves left, t1 the next one */
    ld      t0, state_move_count
    lla     t1, state_moves
1:  beqz    t0, 4f
    ld      t2, 0(t1)                       /* destination */
    ld      t3, 8(t1)                       /* source */
    ld      t4, 16(t1)                      /* size */
    addi    t1, t1, MOVE_SIZE
2:  beqz    t4, 3f
    ld      t5, 0(t3)
    sd      t5, 0(t2)
    addi    t3, t3, 8
    addi    t2, t2, 8
    addi    t4, t4, -8
    j       2b
3:  addi    t0, t0, -1
    j       1b
4:  fence   rw, rw
    fence.i

    ld      t0, state_stvec
    csrw    stvec, t0

    /* sstatus: the saved one, SIE moved to SPIE for SRET, SPP = S */
    ld      t0, state_sstatus
    andi    t1, t0, SSTATUS_SIE
    slli    t1, t1, SIE_TO_SPIE
    li      t2, SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP
    not     t2, t2
    and     t0, t0, t2
    or      t0, t0, t1
    li      t2, SSTATUS_SPP
    or      t0, t0, t2
    csrw    sstatus, t0

    ld      t0, state_pc
    csrw    sepc, t0

    /* satp last: with translation on as saved, what follows runs through the saved tables */
    ld      t0, state_satp
    csrw    satp, t0
    sfence.vma

    lla     x31, state_x
    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    ld      x\n, XREG(\n)(x31)
    .endr
    ld      x31, XREG(31)(x31)
    sret
