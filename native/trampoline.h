/* efistub native trampoline: the declarations shared by C and Python (cffi cdef).
 *
 * Keep this file free of preprocessor directives: build_trampoline.py feeds it to
 * cffi's cdef parser as it is.
 */

/* Counters shared by the C-handled and the Python-handled services
 * (efistub.firmware.FirmwareState has the same fields). */
typedef struct {
    uint64_t tpl;
    uint64_t monotonic_count;
    uint64_t virtual_time_us;
    int32_t boot_services_active;
} efistub_state;

/* One call handled in C, kept until Python turns it into a report record. */
typedef struct {
    uint32_t slot;
    uint32_t flags;          /* EFISTUB_READ_FAILED, EFISTUB_WRITE_FAILED, EFISTUB_TPL_NOTE */
    uint64_t args[3];
    uint64_t result;
    uint64_t aux;            /* the TPL before the call (RaiseTPL, RestoreTPL) */
    uint64_t bad_address;    /* the guest range a failed access asked for */
    uint64_t bad_size;
} efistub_record;

/* Entry points of the libunicorn that the Python binding loaded, so that the
 * trampoline always drives that same library instance. */
typedef struct {
    void *reg_read;
    void *reg_write;
    void *mem_read;
    void *mem_write;
    void *emu_stop;
    void *hook_add;
    void *hook_del;
} efistub_api;

typedef struct {
    efistub_api api;
    void *uc;                /* the engine the binding created (Uc._uch) */
    void *python;            /* handed back to the Python dispatcher */
    int32_t arch;            /* EFISTUB_ARCH_* */
    uint64_t stub_base;
    uint64_t stub_stride;
    uint32_t slots;          /* service slots; the slot after them is the entry's return */
    uint8_t argc[256];       /* arguments each slot's service takes */
    uint8_t handler[256];    /* EFISTUB_H_*: 0 sends the call to Python */
    efistub_state state;
    efistub_record *records;
    uint64_t nrecords;
    uint64_t capacity;
    size_t hook;
    int32_t attached;
} efistub_trampoline;

int efistub_attach(efistub_trampoline *t);
int efistub_detach(efistub_trampoline *t);
