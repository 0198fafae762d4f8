/* efistub native trampoline: the declarations shared by C and Python (cffi cdef).
 *
 * Keep this file free of preprocessor directives: it is fed to cffi's cdef parser
 * as it is, both to build the trampoline and, when it is not built, to allocate the
 * shared firmware state in cffi's ABI mode.
 */

/* The counters shared by the C-handled and the Python-handled services. Allocated
 * once per run (efistub.firmware.new_state) and never moved: the trampoline points
 * at it, Python reads and writes the same memory. */
typedef struct {
    uint64_t tpl;
    uint64_t monotonic_count;
    uint64_t virtual_time_us;
    int32_t boot_services_active;
    int32_t notify_armed;    /* nonzero: a notification may become due, so calls that lower the
                                TPL or advance time (RestoreTPL, Stall) go to Python */
} efistub_state;

/* A range of guest RAM: C-handled services touch guest memory only inside one. */
typedef struct {
    uint64_t start;
    uint64_t end;
    uint8_t *host;           /* where the range lies in host memory (GuestMemory.host_pointer): reads are
                                copies from there; NULL: through the engine */
} efistub_range;

enum { EFISTUB_TRAP_SYSCALL, EFISTUB_TRAP_INTERRUPT };

/* The calling convention, filled from efistub.arch.convention.CallingConvention. */
typedef struct {
    uint32_t width;             /* bytes in a pointer, a UINTN, a stack slot */
    uint32_t nregs;             /* argument registers */
    int32_t arg_registers[8];
    int32_t return_register;
    int32_t sp;
    int32_t pc;
    int32_t link_register;      /* where a call's return address is; -1: on the stack, at SP */
    int32_t trap;               /* EFISTUB_TRAP_* */
    uint32_t ninterrupts;
    uint32_t interrupts[4];     /* interrupt numbers of the trap (EFISTUB_TRAP_INTERRUPT) */
    uint64_t stack_args_offset; /* bytes from SP at the trap to the first stack argument */
    uint64_t trap_pc_offset;    /* the PC when the hook runs, minus the trap's address */
} efistub_convention;

/* One call handled in C, kept until Python turns it into a report record. */
typedef struct {
    uint32_t slot;
    uint32_t flags;          /* EFISTUB_READ_FAILED, EFISTUB_WRITE_FAILED, EFISTUB_TPL_NOTE */
    uint64_t args[3];
    uint64_t result;         /* as the specification states it: 64-bit status values */
    uint64_t aux;            /* the TPL before the call (RaiseTPL, RestoreTPL) */
    uint64_t bad_address;    /* the guest range a failed access asked for */
    uint64_t bad_size;
    uint64_t caller;         /* the call's return address in the guest */
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
    efistub_convention cc;
    efistub_state *state;
    efistub_range *ram;
    uint32_t nram;
    uint64_t stub_base;
    uint64_t stub_stride;
    uint32_t slots;          /* service slots; the slot after them is the return from a guest call */
    uint64_t caller;         /* the return address of the call being dispatched */
    uint32_t *argc;          /* argument slots of each service */
    uint8_t *handler;        /* a handler id from efistub_handler(), 0 sends the call to Python */
    efistub_record *records;
    uint64_t nrecords;
    uint64_t capacity;
    size_t hook;
    int32_t attached;
    void *scratch;           /* the trampoline's buffer for guest memory */
} efistub_trampoline;

/* The C handler of a service, by its name in the registry; 0 when C has none. */
int efistub_handler(const char *service);
int efistub_attach(efistub_trampoline *t);
int efistub_detach(efistub_trampoline *t);
/* Free the records and the scratch buffer without touching the engine (it may be closed by then):
   the trampoline's end, when its Python object goes. */
void efistub_release(efistub_trampoline *t);
