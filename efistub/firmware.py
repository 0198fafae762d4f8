"""The firmware's state: memory, handles, configuration tables, variables, console, run status.

Services and protocols receive this object as their first argument. It knows guest
memory and the firmware's bookkeeping, never CPU registers or the architecture.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

from .errors import EfiError
from .guids import Guid
from .handles import HandleDatabase
from .layouts.efi import PAGE_SIZE
from .memory import AllocateType, GuestMemory, MemoryType, PageAllocator, check_allocatable_type, pages_for
from .status import Status
from .events import EventTable
from .variables import VariableStore

TPL_APPLICATION = 4
# Pages that may run code before ExitBootServices. EfiLoaderData too: OVMF leaves it executable
# (PcdDxeNxMemoryProtectionPolicy 0), and GRUB's linuxefi loads there the kernel it starts through
# the EFI handover entry (Debian's GRUB does so with Secure Boot on).
CODE_TYPES = (MemoryType.EfiLoaderCode, MemoryType.EfiBootServicesCode, MemoryType.EfiRuntimeServicesCode,
              MemoryType.EfiLoaderData)


@dataclass
class StopRequest:
    outcome: str
    details: dict = field(default_factory=dict)


def new_state():
    """The counters that C- and Python-handled services share: one efistub_state (a C struct,
    efistub/native/trampoline.h), allocated once per run and never replaced."""
    from .native import ffi

    state = ffi.new("efistub_state *")
    state.tpl = TPL_APPLICATION
    state.boot_services_active = 1
    return state


class DeterministicRandom:
    """A byte stream that depends only on the seed (SHA-256 in counter mode)."""

    def __init__(self, seed: int, label: bytes):
        self._key = label + seed.to_bytes(16, "little", signed=True)
        self._counter = 0

    def bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self._key + self._counter.to_bytes(8, "little")).digest()
            self._counter += 1
        return bytes(out[:n])


class Firmware:
    VENDOR = "efistub"
    REVISION = 0x00010000

    def __init__(self, mem: GuestMemory, options, console=None, variables: VariableStore | None = None,
                 pages: PageAllocator | None = None):
        self.mem = mem
        self.width = mem.width  # the guest's pointer width in bytes: 8, or 4 for IA32
        self.options = options
        # the memory map: the board's (platform.assemble), else all of the RAM GuestMemory serves
        self.pages = pages if pages is not None else PageAllocator(mem.ram[0][0], mem.ram[-1][1])
        self.pools: dict[int, tuple[int, int]] = {}  # address -> (pages, memory type)
        self.handles = HandleDatabase(self._handle_memory)
        self.state = new_state()  # tpl, monotonic_count, virtual_time_us (Stall and timers advance it), ...
        self._handle_arena = (0, 0)
        self.config_tables: dict[Guid, int] = {}
        self.console: list[str] = []
        self._console_sink = console
        self.notes: list[str] = []  # observations about the run
        self.stop: StopRequest | None = None
        self.random = DeterministicRandom(options.seed, b"efistub-rng")
        self.variables = variables if variables is not None else VariableStore()
        self.events = EventTable(self)
        self.images: dict = {}  # image handle -> services.image.LoadedImage, while loaded
        self.image_chain: list = []  # every image loaded in the run, in order (unloaded ones too)
        self.keys = deque(options.keys)
        # Addresses of the tables and the stubs, filled in by tables.build_firmware_tables().
        self.system_table = 0
        self.boot_services = 0
        self.runtime_services = 0
        self.stub_address: dict[str, int] = {}
        self.image_handle = 0  # the image the run started with
        self.boot_device = 0  # the handle of the volume the image came from (--esp); 0: none
        self.protocol_state: dict[str, object] = {}  # per-protocol data keyed by protocol module
        self.virtual_map: list[dict] | None = None  # what SetVirtualAddressMap was given
        self.probes = None  # probe.Probes: calls between guests the firmware watches (platform.assemble)

    @property
    def layout(self):
        """The UEFI structures at this guest's pointer width (layouts.efi.layouts)."""
        from .layouts.efi import layouts

        return layouts(self.width)

    # -- memory -----------------------------------------------------------------
    def allocate_pages(self, memory_type: int, pages: int, kind: int = AllocateType.AllocateAnyPages,
                       address: int = 0, align: int = PAGE_SIZE) -> int:
        check_allocatable_type(memory_type)
        return self.pages.allocate(kind, memory_type, pages, address, align)

    def allocate_pool(self, memory_type: int, size: int) -> int:
        check_allocatable_type(memory_type)
        pages = max(1, pages_for(size))
        address = self.pages.allocate(AllocateType.AllocateAnyPages, memory_type, pages)
        self.pools[address] = (pages, memory_type)
        return address

    def free_pool(self, address: int) -> None:
        if address not in self.pools:
            raise EfiError(Status.EFI_INVALID_PARAMETER, f"0x{address:x} is not a pool allocation")
        pages, _ = self.pools.pop(address)
        self.pages.free(address, pages)

    def store(self, memory_type: int, data: bytes) -> int:
        """Copy ``data`` into a new pool allocation; return its address."""
        address = self.allocate_pool(memory_type, len(data))
        self.mem.write(address, data)
        return address

    def _handle_memory(self, size: int) -> int:
        start, end = self._handle_arena
        if start + size > end:
            start = self.allocate_pages(MemoryType.EfiBootServicesData, 1)
            end = start + PAGE_SIZE
        self._handle_arena = (start + size, end)
        return start

    # -- configuration tables -----------------------------------------------------
    def set_configuration_table(self, guid: Guid, table: int) -> None:
        """Add, replace (table != 0) or delete (table == 0) a configuration table."""
        if table:
            self.config_tables[guid] = table
        elif guid in self.config_tables:
            del self.config_tables[guid]
        else:
            raise EfiError(Status.EFI_NOT_FOUND, f"no configuration table {guid.name} to delete")
        from .tables import write_configuration_tables

        write_configuration_tables(self)
        self.pages.touch()

    # -- console and run status -----------------------------------------------------
    def output(self, text: str) -> None:
        self.console.append(text)
        if self._console_sink is not None:
            self._console_sink(text)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def request_stop(self, outcome: str, **details) -> None:
        """End the run after the current service call returns to the dispatcher."""
        if self.stop is None:
            self.stop = StopRequest(outcome, details)

    def code_range(self, address: int) -> tuple[int, int, str] | None:
        """Memory that may run code before ExitBootServices, around ``address``: the section of a
        loaded image that holds it (only that section, so stores to the image's other sections stay
        on the engine's fast path), or a run of pages allocated as code (EfiLoaderCode,
        EfiBootServicesCode, EfiRuntimeServicesCode) or as EfiLoaderData (CODE_TYPES). Returns
        (start, size, what) or None."""
        loaded = self.image_at(address)
        if loaded is not None:
            rva = address - loaded.base
            for section in loaded.image.sections:
                if section.virtual_address <= rva < section.virtual_address + section.span:
                    start = (loaded.base + section.virtual_address) // PAGE_SIZE * PAGE_SIZE
                    end = -(-(loaded.base + section.virtual_address + section.span) // PAGE_SIZE) * PAGE_SIZE
                    return start, end - start, f"section {section.name} of {loaded.source}"
            return loaded.base, loaded.pages * PAGE_SIZE, f"the image {loaded.source}"
        for start, end, kind in self.pages.runs():
            if start <= address < end and kind in CODE_TYPES:
                return start, end - start, f"{MemoryType.name_of(kind)} memory"
        return None

    def image_at(self, address: int):
        """The loaded image (services.image.LoadedImage) that holds ``address``, if any."""
        for loaded in self.images.values():
            if loaded.base <= address < loaded.base + loaded.pages * PAGE_SIZE:
                return loaded
        return None

    def in_loaded_image(self, address: int) -> tuple[int, int] | None:
        loaded = self.image_at(address)
        return None if loaded is None else (loaded.base, loaded.pages * PAGE_SIZE)
