/* efistub native trampoline.
 *
 * A trap in a service's stub lands here. The hook reads the argument slots by the
 * calling convention that Python hands over (efistub.arch.convention, never stated
 * here), runs the hottest services itself (CopyMem, SetMem, CalculateCrc32,
 * RaiseTPL, RestoreTPL, Stall, GetNextMonotonicCount) and passes every other call,
 * with its argument slots already read, to Python through one cffi extern "Python"
 * function. C-handled calls are recorded in t->records, which Python turns into the
 * same report records as its own calls.
 *
 * The Python services of the same names are the specification of these handlers:
 * the same checks in the same order, the same results, the same notes
 * (tests/test_dispatch.py runs hostile guests on both paths and compares reports).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicorn/unicorn.h>

#include "trampoline.h"

#define EFISTUB_SLOT_EXCEPTION 0xFFFFFFFEu /* a CPU exception that is not a trap: args[0] = intno */
#define EFISTUB_SLOT_OUTSIDE 0xFFFFFFFFu
#define EFISTUB_MAX_SLOTS 16u
#define EFISTUB_READ_FAILED 1u
#define EFISTUB_WRITE_FAILED 2u
#define EFISTUB_TPL_NOTE 4u
#define TPL_HIGH_LEVEL 31
#define EFI_SUCCESS 0ull
#define EFI_INVALID_PARAMETER 0x8000000000000002ull
#define EFI_ERROR_BIT (1ull << 63)
#define CHUNK (1u << 20) /* guest memory is processed in pieces of this size, as in Python */

enum { H_PYTHON, H_COPYMEM, H_SETMEM, H_CRC32, H_RAISETPL, H_RESTORETPL, H_STALL, H_MONOTONIC };

static const char *const handler_names[] = {
    [H_COPYMEM] = "CopyMem", [H_SETMEM] = "SetMem", [H_CRC32] = "CalculateCrc32",
    [H_RAISETPL] = "RaiseTPL", [H_RESTORETPL] = "RestoreTPL", [H_STALL] = "Stall",
    [H_MONOTONIC] = "GetNextMonotonicCount",
};

typedef uc_err (*reg_read_fn)(uc_engine *, int, void *);
typedef uc_err (*reg_write_fn)(uc_engine *, int, const void *);
typedef uc_err (*mem_read_fn)(uc_engine *, uint64_t, void *, uint64_t);
typedef uc_err (*mem_write_fn)(uc_engine *, uint64_t, const void *, uint64_t);
typedef uc_err (*emu_stop_fn)(uc_engine *);
typedef uc_err (*hook_add_fn)(uc_engine *, uc_hook *, int, void *, void *, uint64_t, uint64_t, ...);
typedef uc_err (*hook_del_fn)(uc_engine *, uc_hook);

/* Python's dispatcher: the slot, its argument slots, the call's return address and how many calls C
   handled before it (their records come first in the report). */
static uint64_t efistub_dispatch(void *python, uint32_t slot, uint64_t *args, uint32_t count, uint64_t caller,
                                 uint64_t native_before);

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

int efistub_handler(const char *service)
{
    for (int h = 1; h < (int)(sizeof(handler_names) / sizeof(handler_names[0])); h++)
        if (handler_names[h] && strcmp(handler_names[h], service) == 0)
            return h;
    return H_PYTHON;
}

/* -- guest memory: GuestMemory's checks (efistub/memory.py) ------------------------ */

/* Whether [address, address + size) lies inside one range of guest RAM. */
/* The RAM range that holds all of address..address+size-1, or NULL. */
static const efistub_range *ram_range(const efistub_trampoline *t, uint64_t address, uint64_t size)
{
    if (address == 0 || size == 0 || address + size < address)
        return NULL;
    for (uint32_t i = 0; i < t->nram; i++)
        if (address >= t->ram[i].start && address + size <= t->ram[i].end)
            return &t->ram[i];
    return NULL;
}

static int in_ram(const efistub_trampoline *t, uint64_t address, uint64_t size)
{
    return ram_range(t, address, size) != NULL;
}

/* A read of guest RAM copies from its host memory (as GuestMemory.read does); anything else is read
   through the engine. */
static int guest_read(efistub_trampoline *t, uint64_t address, void *buf, uint64_t size)
{
    if (address == 0)
        return 0;
    const efistub_range *r = ram_range(t, address, size);
    if (r != NULL && r->host != NULL) {
        memcpy(buf, r->host + (address - r->start), size);
        return 1;
    }
    return ((mem_read_fn)t->api.mem_read)(t->uc, address, buf, size) == UC_ERR_OK;
}

static int guest_write(efistub_trampoline *t, uint64_t address, const void *buf, uint64_t size)
{
    return address != 0 && ((mem_write_fn)t->api.mem_write)(t->uc, address, buf, size) == UC_ERR_OK;
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

/* A bad guest pointer: the call returns EFI_INVALID_PARAMETER with a note. */
static int fail(efistub_record *r, uint32_t flag, uint64_t address, uint64_t size)
{
    r->flags |= flag;
    r->bad_address = address;
    r->bad_size = size;
    r->result = EFI_INVALID_PARAMETER;
    return 0;
}

static int check(efistub_trampoline *t, efistub_record *r, uint32_t flag, uint64_t address, uint64_t size)
{
    return in_ram(t, address, size) ? 1 : fail(r, flag, address, size);
}

/* -- the services handled in C (their specification: efistub/services/) ------------- */

static void copy_mem(efistub_trampoline *t, efistub_record *r)
{
    uint64_t dst = r->args[0], src = r->args[1], n = r->args[2];
    if (!n || dst == src)
        return;
    if (!check(t, r, EFISTUB_READ_FAILED, src, n) || !check(t, r, EFISTUB_WRITE_FAILED, dst, n))
        return;
    uint8_t *buf = t->scratch;
    int backwards = dst > src && dst < src + n; /* overlapping: copy from the end, as memmove */
    for (uint64_t done = 0; done < n;) {
        uint64_t part = n - done < CHUNK ? n - done : CHUNK;
        uint64_t offset = backwards ? n - done - part : done;
        if (!guest_read(t, src + offset, buf, part)) {
            fail(r, EFISTUB_READ_FAILED, src, n);
            return;
        }
        if (!guest_write(t, dst + offset, buf, part)) {
            fail(r, EFISTUB_WRITE_FAILED, dst, n);
            return;
        }
        done += part;
    }
}

static void set_mem(efistub_trampoline *t, efistub_record *r)
{
    uint64_t dst = r->args[0], n = r->args[1];
    uint8_t *chunk = t->scratch;
    if (!n || !check(t, r, EFISTUB_WRITE_FAILED, dst, n))
        return;
    memset(chunk, (int)(r->args[2] & 0xFF), n < CHUNK ? n : CHUNK);
    for (uint64_t done = 0; done < n;) {
        uint64_t part = n - done < CHUNK ? n - done : CHUNK;
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
    uint8_t *buf = t->scratch;
    if (!data || !out || !n) {
        r->result = EFI_INVALID_PARAMETER;
        return;
    }
    if (!check(t, r, EFISTUB_READ_FAILED, data, n))
        return;
    uint32_t crc = 0xFFFFFFFFu;
    for (uint64_t done = 0; done < n;) {
        uint64_t part = n - done < CHUNK ? n - done : CHUNK;
        if (!guest_read(t, data + done, buf, part)) {
            fail(r, EFISTUB_READ_FAILED, data, n);
            return;
        }
        crc = crc_update(crc, buf, part);
        done += part;
    }
    uint32_t value = crc ^ 0xFFFFFFFFu;
    if (check(t, r, EFISTUB_WRITE_FAILED, out, 4) && !guest_write(t, out, &value, 4))
        fail(r, EFISTUB_WRITE_FAILED, out, 4);
}

static void monotonic_count(efistub_trampoline *t, efistub_record *r)
{
    uint64_t out = r->args[0];
    if (!out) {
        r->result = EFI_INVALID_PARAMETER;
        return;
    }
    if (!check(t, r, EFISTUB_WRITE_FAILED, out, 8))
        return;
    t->state->monotonic_count++;
    if (!guest_write(t, out, &t->state->monotonic_count, 8))
        fail(r, EFISTUB_WRITE_FAILED, out, 8);
}

/* Virtual time saturates instead of wrapping (efistub.firmware.advance_time). */
static void advance_time(efistub_state *s, uint64_t us)
{
    uint64_t now = s->virtual_time_us + us;
    s->virtual_time_us = now < s->virtual_time_us ? UINT64_MAX : now;
}

/* A 64-bit status as a guest of this width sees it: the error bit is the top bit of a UINTN. */
static uint64_t guest_status(const efistub_trampoline *t, uint64_t status)
{
    if (t->cc.width >= 8)
        return status;
    return (status & EFI_ERROR_BIT ? 1ull << (8 * t->cc.width - 1) : 0) | (status & ((1ull << (8 * t->cc.width - 1)) - 1));
}

/* Returns 1 when the call was handled in C. */
static int handle_in_c(efistub_trampoline *t, uint32_t slot, const uint64_t *args, uint64_t *result)
{
    uint8_t h = t->handler[slot];
    efistub_state *s = t->state;
    if (h == H_PYTHON || !s->boot_services_active)
        return 0; /* after ExitBootServices Python records the call as a violation */
    if (s->notify_armed && (h == H_RESTORETPL || h == H_STALL))
        return 0; /* a notification may become due: Python runs it */
    efistub_record *r = new_record(t);
    if (!r)
        return 0;
    r->slot = slot;
    r->caller = t->caller;
    memcpy(r->args, args, sizeof(r->args));
    r->result = EFI_SUCCESS;
    switch (h) {
    case H_COPYMEM: copy_mem(t, r); break;
    case H_SETMEM: set_mem(t, r); break;
    case H_CRC32: calculate_crc32(t, r); break;
    case H_RAISETPL:
        r->aux = s->tpl;
        if (args[0] < s->tpl || args[0] > TPL_HIGH_LEVEL)
            r->flags |= EFISTUB_TPL_NOTE;
        r->result = s->tpl;
        s->tpl = args[0];
        break;
    case H_RESTORETPL:
        r->aux = s->tpl;
        if (args[0] > s->tpl)
            r->flags |= EFISTUB_TPL_NOTE;
        s->tpl = args[0];
        r->result = 0;
        break;
    case H_STALL: advance_time(s, args[0]); break;
    case H_MONOTONIC: monotonic_count(t, r); break;
    default: t->nrecords--; return 0;
    }
    *result = guest_status(t, r->result);
    return 1;
}

/* -- the calling convention, as the record from Python says ----------------------------- */

/* A trap: read the argument slots, run the service in C or in Python, set the result. */
static void trap(uc_engine *uc, efistub_trampoline *t)
{
    const efistub_convention *cc = &t->cc;
    reg_read_fn reg_read = (reg_read_fn)t->api.reg_read;
    uint64_t pc = 0, args[EFISTUB_MAX_SLOTS] = {0}, result = 0;
    reg_read(uc, cc->pc, &pc);
    pc -= cc->trap_pc_offset;
    uint64_t offset = pc - t->stub_base;
    uint32_t slot = EFISTUB_SLOT_OUTSIDE, count = 0;
    if (pc >= t->stub_base && offset / t->stub_stride <= t->slots) {
        slot = (uint32_t)(offset / t->stub_stride);
        count = slot < t->slots ? t->argc[slot] : 1;
    }
    if (count > EFISTUB_MAX_SLOTS)
        count = EFISTUB_MAX_SLOTS;
    if (slot == t->slots) {
        reg_read(uc, cc->return_register, &args[0]); /* the return from a guest call: its result */
    } else {
        for (uint32_t i = 0; i < count && i < cc->nregs; i++)
            reg_read(uc, cc->arg_registers[i], &args[i]);
        if (count > cc->nregs) {
            uint64_t sp = 0;
            uint8_t raw[EFISTUB_MAX_SLOTS * 8] = {0};
            uint32_t n = count - cc->nregs;
            reg_read(uc, cc->sp, &sp);
            if (!guest_read(t, sp + cc->stack_args_offset, raw, (uint64_t)n * cc->width))
                memset(raw, 0, sizeof(raw)); /* as the Python path: services reject NULL */
            for (uint32_t i = 0; i < n; i++)
                memcpy(&args[cc->nregs + i], raw + (size_t)i * cc->width, cc->width);
        }
    }
    if (cc->width < 8)
        for (uint32_t i = 0; i < count; i++)
            args[i] &= (1ull << (8 * cc->width)) - 1;
    t->caller = 0;
    if (cc->link_register >= 0) {
        reg_read(uc, cc->link_register, &t->caller);
    } else {
        uint64_t sp = 0;
        reg_read(uc, cc->sp, &sp);
        if (!guest_read(t, sp, &t->caller, cc->width))
            t->caller = 0;
    }
    if (slot == EFISTUB_SLOT_OUTSIDE || slot >= t->slots || !handle_in_c(t, slot, args, &result))
        result = efistub_dispatch(t->python, slot, args, count, t->caller, t->nrecords);
    ((reg_write_fn)t->api.reg_write)(uc, cc->return_register, &result);
}

static void syscall_hook(uc_engine *uc, void *user_data)
{
    trap(uc, user_data);
}

/* A trap by interrupt (SVC, ECALL, INT n); any other exception is a fault. */
static void interrupt_hook(uc_engine *uc, uint32_t intno, void *user_data)
{
    efistub_trampoline *t = user_data;
    for (uint32_t i = 0; i < t->cc.ninterrupts; i++) {
        if (t->cc.interrupts[i] == intno) {
            trap(uc, t);
            return;
        }
    }
    uint64_t args[1] = {intno};
    efistub_dispatch(t->python, EFISTUB_SLOT_EXCEPTION, args, 1, 0, t->nrecords);
}

int efistub_attach(efistub_trampoline *t)
{
    if (t->attached)
        return 0;
    crc_init();
    if (!t->scratch)
        t->scratch = malloc(CHUNK);
    if (!t->scratch || !t->state || !t->argc || !t->handler || t->cc.nregs > 8 || t->cc.ninterrupts > 4
        || (t->cc.width != 4 && t->cc.width != 8))
        return -1;
    uc_hook hook;
    uc_err err;
    if (t->cc.trap == EFISTUB_TRAP_SYSCALL)
        err = ((hook_add_fn)t->api.hook_add)(t->uc, &hook, UC_HOOK_INSN, (void *)syscall_hook, t,
                                             (uint64_t)1, (uint64_t)0, UC_X86_INS_SYSCALL);
    else
        err = ((hook_add_fn)t->api.hook_add)(t->uc, &hook, UC_HOOK_INTR, (void *)interrupt_hook, t,
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
    efistub_release(t);
    return 0;
}

void efistub_release(efistub_trampoline *t)
{
    t->attached = 0;
    free(t->records);
    free(t->scratch);
    t->scratch = NULL;
    t->records = NULL;
    t->nrecords = t->capacity = 0;
}
