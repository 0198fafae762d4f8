/* efistub native trampoline.
 *
 * A hypercall in a service's stub lands here. The hook reads the arguments by the
 * calling convention, runs the hottest services itself (CopyMem, SetMem,
 * CalculateCrc32, RaiseTPL, RestoreTPL, Stall, GetNextMonotonicCount) and passes
 * every other call, with its arguments already read, to Python through one cffi
 * extern "Python" function. C-handled calls are recorded in t->records, which
 * Python turns into the same report records as its own calls.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicorn/unicorn.h>

#include "trampoline.h"

#define EFISTUB_ARCH_X86_64 0
#define EFISTUB_ARCH_AARCH64 1
#define EFISTUB_ARCH_RISCV64 2
#define EFISTUB_SLOT_EXCEPTION 0xFFFFFFFEu /* a CPU exception that is not a hypercall: args[0] = intno */
#define EFISTUB_MAX_ARGS 8
#define EFISTUB_SLOT_OUTSIDE 0xFFFFFFFFu
#define EFISTUB_READ_FAILED 1u
#define EFISTUB_WRITE_FAILED 2u
#define EFISTUB_TPL_NOTE 4u
#define TPL_HIGH_LEVEL 31
#define EFI_SUCCESS 0ull
#define EFI_INVALID_PARAMETER 0x8000000000000002ull
#define COPY_CHUNK (1u << 20)
#define MS_X64_STACK_ARGS 0x28 /* return address and 32 bytes of shadow space */

enum { H_PYTHON, H_COPYMEM, H_SETMEM, H_CRC32, H_RAISETPL, H_RESTORETPL, H_STALL, H_MONOTONIC };

typedef uc_err (*reg_read_fn)(uc_engine *, int, void *);
typedef uc_err (*reg_write_fn)(uc_engine *, int, const void *);
typedef uc_err (*mem_read_fn)(uc_engine *, uint64_t, void *, uint64_t);
typedef uc_err (*mem_write_fn)(uc_engine *, uint64_t, const void *, uint64_t);
typedef uc_err (*emu_stop_fn)(uc_engine *);
typedef uc_err (*hook_add_fn)(uc_engine *, uc_hook *, int, void *, void *, uint64_t, uint64_t, ...);
typedef uc_err (*hook_del_fn)(uc_engine *, uc_hook);

static uint64_t efistub_dispatch(void *python, uint32_t slot, uint64_t *args, uint32_t count);

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

/* -- guest memory, with the checks GuestMemory makes in Python ---------------- */

static int guest_read(efistub_trampoline *t, uint64_t address, void *buf, uint64_t size)
{
    if (address == 0)
        return 0;
    return ((mem_read_fn)t->api.mem_read)(t->uc, address, buf, size) == UC_ERR_OK;
}

static int guest_write(efistub_trampoline *t, uint64_t address, const void *buf, uint64_t size)
{
    if (address == 0)
        return 0;
    return ((mem_write_fn)t->api.mem_write)(t->uc, address, buf, size) == UC_ERR_OK;
}

static efistub_record *new_record(efistub_trampoline *t)
{
    if (t->nrecords == t->capacity) {
        uint64_t capacity = t->capacity ? t->capacity * 2 : 4096;
        efistub_record *grown = realloc(t->records, capacity * sizeof(*grown));
        if (!grown)
            return NULL;
        t->records = grown;
        t->capacity = capacity;
    }
    efistub_record *r = &t->records[t->nrecords++];
    memset(r, 0, sizeof(*r));
    return r;
}

static void fail(efistub_record *r, uint32_t flag, uint64_t address, uint64_t size)
{
    r->flags |= flag;
    r->bad_address = address;
    r->bad_size = size;
    r->result = EFI_INVALID_PARAMETER;
}

/* -- the services handled in C --------------------------------------------------- */

static void copy_mem(efistub_trampoline *t, efistub_record *r)
{
    uint64_t dst = r->args[0], src = r->args[1], n = r->args[2];
    if (!n || dst == src)
        return;
    uint8_t *buf = malloc(n); /* the whole source first: the ranges may overlap */
    if (!buf || !guest_read(t, src, buf, n))
        fail(r, EFISTUB_READ_FAILED, src, n);
    else if (!guest_write(t, dst, buf, n))
        fail(r, EFISTUB_WRITE_FAILED, dst, n);
    free(buf);
}

static void set_mem(efistub_trampoline *t, efistub_record *r)
{
    uint64_t dst = r->args[0], n = r->args[1];
    uint8_t chunk[4096];
    memset(chunk, (int)(r->args[2] & 0xFF), sizeof(chunk));
    if (!n)
        return;
    if (dst == 0) {
        fail(r, EFISTUB_WRITE_FAILED, dst, n);
        return;
    }
    for (uint64_t done = 0; done < n;) {
        uint64_t part = n - done < sizeof(chunk) ? n - done : sizeof(chunk);
        if (!guest_write(t, dst + done, chunk, part)) {
            fail(r, EFISTUB_WRITE_FAILED, dst, n);
            return;
        }
        done += part;
    }
}

static void calculate_crc32(efistub_trampoline *t, efistub_record *r)
{
    uint64_t data = r->args[0], n = r->args[1], out = r->args[2];
    if (!data || !out || !n) {
        r->result = EFI_INVALID_PARAMETER;
        return;
    }
    uint8_t *buf = malloc(COPY_CHUNK);
    uint32_t crc = 0xFFFFFFFFu;
    for (uint64_t done = 0; buf && done < n;) {
        uint64_t part = n - done < COPY_CHUNK ? n - done : COPY_CHUNK;
        if (!guest_read(t, data + done, buf, part)) {
            free(buf);
            fail(r, EFISTUB_READ_FAILED, data, n);
            return;
        }
        crc = crc_update(crc, buf, part);
        done += part;
    }
    if (!buf) {
        fail(r, EFISTUB_READ_FAILED, data, n);
        return;
    }
    free(buf);
    uint32_t value = crc ^ 0xFFFFFFFFu;
    if (!guest_write(t, out, &value, 4))
        fail(r, EFISTUB_WRITE_FAILED, out, 4);
}

static void monotonic_count(efistub_trampoline *t, efistub_record *r)
{
    if (!r->args[0]) {
        r->result = EFI_INVALID_PARAMETER;
        return;
    }
    t->state.monotonic_count++;
    if (!guest_write(t, r->args[0], &t->state.monotonic_count, 8))
        fail(r, EFISTUB_WRITE_FAILED, r->args[0], 8);
}

/* Returns 1 when the call was handled in C. */
static int handle_in_c(efistub_trampoline *t, uint32_t slot, const uint64_t *args, uint64_t *result)
{
    uint8_t h = t->handler[slot];
    if (h == H_PYTHON || !t->state.boot_services_active)
        return 0; /* after ExitBootServices Python records the call as a violation */
    efistub_record *r = new_record(t);
    if (!r)
        return 0;
    r->slot = slot;
    memcpy(r->args, args, sizeof(r->args));
    r->result = EFI_SUCCESS;
    switch (h) {
    case H_COPYMEM: copy_mem(t, r); break;
    case H_SETMEM: set_mem(t, r); break;
    case H_CRC32: calculate_crc32(t, r); break;
    case H_RAISETPL:
        r->aux = t->state.tpl;
        if (args[0] < t->state.tpl || args[0] > TPL_HIGH_LEVEL)
            r->flags |= EFISTUB_TPL_NOTE;
        r->result = t->state.tpl;
        t->state.tpl = args[0];
        break;
    case H_RESTORETPL:
        r->aux = t->state.tpl;
        if (args[0] > t->state.tpl)
            r->flags |= EFISTUB_TPL_NOTE;
        t->state.tpl = args[0];
        r->result = 0;
        break;
    case H_STALL: t->state.virtual_time_us += args[0]; break;
    case H_MONOTONIC: monotonic_count(t, r); break;
    default: t->nrecords--; return 0;
    }
    *result = r->result;
    return 1;
}

/* -- the calling conventions ------------------------------------------------------ */

typedef struct {
    int pc, sp, ret;
    int args[8];
    uint32_t nregs;        /* arguments passed in registers */
    uint64_t stack_offset; /* bytes from SP at the trap to the first stack argument */
    uint64_t trap_length;  /* how far past the trap instruction the PC is when the hook runs */
} convention;

static const convention ms_x64 = {
    UC_X86_REG_RIP, UC_X86_REG_RSP, UC_X86_REG_RAX,
    {UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_R8, UC_X86_REG_R9}, 4, MS_X64_STACK_ARGS, 0};
static const convention aapcs64 = {
    UC_ARM64_REG_PC, UC_ARM64_REG_SP, UC_ARM64_REG_X0,
    {UC_ARM64_REG_X0, UC_ARM64_REG_X1, UC_ARM64_REG_X2, UC_ARM64_REG_X3,
     UC_ARM64_REG_X4, UC_ARM64_REG_X5, UC_ARM64_REG_X6, UC_ARM64_REG_X7}, 8, 0, 4};
static const convention lp64 = {
    UC_RISCV_REG_PC, UC_RISCV_REG_SP, UC_RISCV_REG_A0,
    {UC_RISCV_REG_A0, UC_RISCV_REG_A1, UC_RISCV_REG_A2, UC_RISCV_REG_A3,
     UC_RISCV_REG_A4, UC_RISCV_REG_A5, UC_RISCV_REG_A6, UC_RISCV_REG_A7}, 8, 0, 4};

static const convention *convention_of(int32_t arch)
{
    switch (arch) {
    case EFISTUB_ARCH_X86_64: return &ms_x64;
    case EFISTUB_ARCH_AARCH64: return &aapcs64;
    case EFISTUB_ARCH_RISCV64: return &lp64;
    default: return NULL;
    }
}

/* A hypercall: read the arguments, run the service in C or in Python, set the result. */
static void hypercall(uc_engine *uc, efistub_trampoline *t)
{
    const convention *cc = convention_of(t->arch);
    reg_read_fn reg_read = (reg_read_fn)t->api.reg_read;
    uint64_t pc = 0, args[EFISTUB_MAX_ARGS] = {0}, result = 0;
    reg_read(uc, cc->pc, &pc);
    pc -= cc->trap_length;
    uint64_t offset = pc - t->stub_base;
    uint32_t slot = EFISTUB_SLOT_OUTSIDE, count = 0;
    if (pc >= t->stub_base && offset / t->stub_stride <= t->slots) {
        slot = (uint32_t)(offset / t->stub_stride);
        count = slot < t->slots ? t->argc[slot] : 1;
    }
    if (count > EFISTUB_MAX_ARGS)
        count = EFISTUB_MAX_ARGS;
    for (uint32_t i = 0; i < count && i < cc->nregs; i++)
        reg_read(uc, cc->args[i], &args[i]);
    if (count > cc->nregs) {
        uint64_t sp = 0;
        reg_read(uc, cc->sp, &sp);
        if (!guest_read(t, sp + cc->stack_offset, &args[cc->nregs], 8ull * (count - cc->nregs)))
            memset(&args[cc->nregs], 0, 8ull * (count - cc->nregs)); /* as the Python path: services reject NULL */
    }
    if (slot == EFISTUB_SLOT_OUTSIDE || slot >= t->slots || !handle_in_c(t, slot, args, &result))
        result = efistub_dispatch(t->python, slot, args, count);
    ((reg_write_fn)t->api.reg_write)(uc, cc->ret, &result);
}

static void x86_64_syscall(uc_engine *uc, void *user_data)
{
    hypercall(uc, user_data);
}

/* aarch64 SVC (interrupt 2) and riscv64 ECALL (causes 8, 9, 11); any other exception is a fault. */
static void interrupt(uc_engine *uc, uint32_t intno, void *user_data)
{
    efistub_trampoline *t = user_data;
    int is_call = t->arch == EFISTUB_ARCH_AARCH64 ? intno == 2 : (intno == 8 || intno == 9 || intno == 11);
    if (is_call) {
        hypercall(uc, t);
    } else {
        uint64_t args[1] = {intno};
        efistub_dispatch(t->python, EFISTUB_SLOT_EXCEPTION, args, 1);
    }
}

int efistub_attach(efistub_trampoline *t)
{
    if (t->attached)
        return 0;
    crc_init();
    if (!convention_of(t->arch) || t->slots > 255)
        return -1;
    uc_hook hook;
    uc_err err;
    if (t->arch == EFISTUB_ARCH_X86_64)
        err = ((hook_add_fn)t->api.hook_add)(t->uc, &hook, UC_HOOK_INSN, (void *)x86_64_syscall, t,
                                             (uint64_t)1, (uint64_t)0, UC_X86_INS_SYSCALL);
    else
        err = ((hook_add_fn)t->api.hook_add)(t->uc, &hook, UC_HOOK_INTR, (void *)interrupt, t,
                                             (uint64_t)1, (uint64_t)0);
    if (err != UC_ERR_OK)
        return (int)err;
    t->hook = hook;
    t->attached = 1;
    return 0;
}

int efistub_detach(efistub_trampoline *t)
{
    if (t->attached)
        ((hook_del_fn)t->api.hook_del)(t->uc, t->hook);
    t->attached = 0;
    free(t->records);
    t->records = NULL;
    t->nrecords = t->capacity = 0;
    return 0;
}
