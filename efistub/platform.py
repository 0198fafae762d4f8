"""The platform assembly: a fresh emulated machine with firmware, ready to run one image.

In order: the firmware state and RAM, the service stubs and the image placed (so
RAM is mapped once with its final permissions: unicorn copies a region it
splits), the tables, the protocols (each installer in protocols.INSTALLERS decides
for itself whether this run has it), the dispatch path, and the boot manager, which
starts the image as a guest call.
"""

from __future__ import annotations

from dataclasses import dataclass

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_UNMAPPED, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE

from . import board as boards
from . import device_path, protocols
from .dispatch import Dispatcher
from .errors import EfiError, InputError
from .firmware import Firmware
from .layouts.efi import PAGE_SIZE
from .linux import image_header
from .loader import PeImage
from .memory import GuestMemory, MemoryType, PageAllocator, pages_for
from .probe import Probes
from .protocols import console
from .services import image as images
from .tables import build_firmware_tables

STACK_SIZE = 1 << 20
# Guest RAM is mapped in chunks: unicorn copies a whole region when mem_protect splits it.
RAM_CHUNK = 64 << 20
MAX_ADDRESS = 0xFFFFFFFFFFFFFFFF


def map_ram(uc, start: int, end: int, special: list[tuple[int, int, int]], host=None) -> None:
    """Map [start, end) read-write without execute, except the ``special`` (start, end, perms) ranges;
    from host memory at ``host(address)`` when given (GuestMemory.host_pointer), else the engine's own.

    Plain RAM is mapped in pieces of at most RAM_CHUNK, so that a later change of
    permissions (execute granted on an image) splits one piece only (and copies it, for
    memory of the engine's own).
    """
    cuts = sorted({start, end} | {b for s, e, _ in special for b in (s, e)})
    perms_at = {s: p for s, _, p in special}
    for lo, hi in zip(cuts, cuts[1:]):
        perms = perms_at.get(lo, UC_PROT_READ | UC_PROT_WRITE)
        while lo < hi:
            top = min(hi, (lo // RAM_CHUNK + 1) * RAM_CHUNK)
            if host is None:
                uc.mem_map(lo, top - lo, perms)
            else:
                uc.mem_map_ptr(lo, top - lo, perms, host(lo))
            lo = top


@dataclass
class Platform:
    uc: object
    fw: Firmware
    arch: object
    dispatcher: Dispatcher
    native: object  # native.NativeDispatch or None
    image: PeImage
    load_address: int
    entry: int
    kernel_entry: int | None
    return_address: int  # the firmware's return stub: guest calls return here
    board: object  # board.Board: the machine whose memory layout RAM copies

    def close(self) -> None:
        """Free the engine and guest RAM now (Machine.close): the trampoline's hooks and records, the
        engine (through the binding's own finalizer, which then never runs again), then the host
        buffers it mapped."""
        if self.native is not None:
            self.native.detach()
        close_engine = getattr(self.uc, "_Uc__finalizer", None)  # unicorn's weakref.finalize: uc_close, once
        if close_engine is not None:  # (a binding without it frees both when the collector frees the Machine)
            close_engine()
            self.fw.mem.release()


def assemble(image: PeImage, options, arch_class, slots, *, console_sink, variables, dispatch_mode: str,
             trace, injections, observers, python_protocols, python_routed, on_invalid, on_kernel_entry,
             boot_path: str | None = None) -> Platform:
    """Build the machine for ``image``; its Dispatcher's ``call`` handles the traps of either dispatch path.
    ``boot_path``: where the image lies on the ESP (the boot manager found it there)."""
    arch = arch_class()
    board = boards.for_arch(arch.name, options.platform)
    ram = board.ram(options.memory)
    mapped = served_ram(ram)
    cc = arch.convention
    uc = arch.create_engine()
    holes = tuple(zip([end for _, end in ram], [start for start, _ in ram[1:]]))
    pages = PageAllocator(ram[0][0], ram[-1][1], holes=holes, reserved=tuple((r.start, r.end) for r in board.reserved))
    fw = Firmware(GuestMemory(uc, cc.width, mapped), options, console_sink, variables, pages)
    arch.attach(uc, fw)

    stub_bytes = (len(slots) + 1) * cc.stub_stride
    stub_base = fw.allocate_pages(MemoryType.EfiRuntimeServicesCode, pages_for(stub_bytes))
    stub_end = stub_base + pages_for(stub_bytes) * PAGE_SIZE
    try:
        base = images.place(fw, image)
    except EfiError:
        raise InputError(image.path, f"SizeOfImage 0x{image.size_of_image:x} does not fit in "
                                     f"{options.memory >> 20} MiB of guest RAM") from None
    executable = [(stub_base, stub_end, UC_PROT_READ | UC_PROT_EXEC)]
    for rva, size in image.executable_ranges():
        start = (base + rva) // PAGE_SIZE * PAGE_SIZE
        executable.append((start, -(-(base + rva + size) // PAGE_SIZE) * PAGE_SIZE, UC_PROT_ALL))
    for start, end in mapped:
        map_ram(uc, start, end, [r for r in executable if start <= r[0] < end], fw.mem.host_pointer)

    arch.prepare_cpu(uc, fw)
    fw.probes = Probes(uc, fw.mem, arch)
    fw.mem.write(stub_base, b"".join(cc.stub() for _ in slots) + cc.stub(returns=False))
    fw.stub_address = {s.name: stub_base + i * cc.stub_stride for i, s in enumerate(slots)}
    return_address = stub_base + len(slots) * cc.stub_stride
    build_firmware_tables(fw, console.install(fw))
    for install in protocols.INSTALLERS:
        install(fw)
    for name in arch.PROTOCOLS:
        getattr(protocols, name).install(fw)
    for install in python_protocols:
        install(fw)
    # The image comes from the ESP when there is one (at boot_path, or at its own name in the root).
    file_path = [device_path.file_path(boot_path)] if boot_path else None
    loaded = images.load(fw, image, options.cmdline, parent=0, base=base, device=fw.boot_device,
                         file_path=file_path, source=boot_path or image.path)
    fw.image_handle = loaded.handle
    stack = fw.allocate_pages(MemoryType.EfiBootServicesData, STACK_SIZE // PAGE_SIZE)

    dispatcher = Dispatcher(fw, slots, cc.width, cc.slots_of, trace, injections=injections, observers=observers,
                            notifications=lambda fw: fw.events.due(),
                            vararg=lambda index: cc.read_slots(uc, fw.mem, index + 1)[index], stop_engine=uc.emu_stop)
    native = None
    if dispatch_mode == "native":
        from .native import NativeDispatch

        native = NativeDispatch(uc, cc, stub_base, slots, dispatcher.arg_slots, dispatcher, fw.mem.ram)
        for name in python_routed:
            native.route_to_python(name)
    else:
        arch.install_dispatch(uc, stub_base, len(slots), dispatcher.arg_slots, dispatcher.call)
    # Unmapped accesses can only fall outside RAM: hook just there. A memory hook that
    # covers RAM would keep every guest store on unicorn's slow path.
    for lo, hi in zip([0] + [end for _, end in mapped], [start for start, _ in mapped] + [MAX_ADDRESS + 1]):
        if lo < hi:
            uc.hook_add(UC_HOOK_MEM_UNMAPPED, on_invalid, None, lo, hi - 1)
    kernel = image_header.kernel_entry(arch.name, image.data[:0x1000])
    kernel_entry = None
    if kernel is not None:  # a kernel that runs where it was loaded enters without leaving the image
        kernel_entry = base + kernel
        uc.hook_add(UC_HOOK_CODE, on_kernel_entry, None, kernel_entry, kernel_entry)
    # The boot manager runs the image: a guest call of its entry point on the firmware's stack.
    dispatcher.start(images.boot(fw, loaded, stack + STACK_SIZE))
    return Platform(uc, fw, arch, dispatcher, native, image, base, base + image.entry_rva, kernel_entry,
                    return_address, board)


def served_ram(ram: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The RAM mapped from the start and served to services: all of it but page 0, which stays
    unmapped so that NULL dereferences are seen (on a board where it is RAM, the run loop maps it
    at the first access, unless --null-page fault)."""
    (start, end), rest = ram[0], ram[1:]
    return [(max(start, PAGE_SIZE), end)] + rest
