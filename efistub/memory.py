"""Guest memory: typed access to guest RAM, the page allocator and the UEFI memory map."""

from __future__ import annotations

import codecs
import ctypes
import enum
import mmap
import struct
from dataclasses import dataclass

from .errors import EfiError, GuestMemoryError
from .guids import Guid
from .layouts.efi import PAGE_SIZE
from .status import Status


class MemoryType(enum.IntEnum):
    EfiReservedMemoryType = 0
    EfiLoaderCode = 1
    EfiLoaderData = 2
    EfiBootServicesCode = 3
    EfiBootServicesData = 4
    EfiRuntimeServicesCode = 5
    EfiRuntimeServicesData = 6
    EfiConventionalMemory = 7
    EfiUnusableMemory = 8
    EfiACPIReclaimMemory = 9
    EfiACPIMemoryNVS = 10
    EfiMemoryMappedIO = 11
    EfiMemoryMappedIOPortSpace = 12
    EfiPalCode = 13
    EfiPersistentMemory = 14
    EfiUnacceptedMemoryType = 15

    @classmethod
    def name_of(cls, value: int) -> str:
        try:
            return cls(value).name
        except ValueError:
            return f"0x{value:x}"


MAX_MEMORY_TYPE = 16
OEM_TYPES_START = 0x70000000

# EFI_MEMORY_* attributes
MEMORY_UC = 0x1
MEMORY_WC = 0x2
MEMORY_WT = 0x4
MEMORY_WB = 0x8
MEMORY_RUNTIME = 1 << 63
RAM_ATTRIBUTES = MEMORY_UC | MEMORY_WC | MEMORY_WT | MEMORY_WB
RUNTIME_TYPES = (MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData)
FREE = MemoryType.EfiConventionalMemory
HOLE = -1  # not memory: a gap between RAM ranges, never described, never allocated


class AllocateType(enum.IntEnum):
    AllocateAnyPages = 0
    AllocateMaxAddress = 1
    AllocateAddress = 2


def pages_for(size: int) -> int:
    return (size + PAGE_SIZE - 1) // PAGE_SIZE


def check_allocatable_type(memory_type: int) -> None:
    """AllocatePages/AllocatePool reject the reserved type range and the free types."""
    if MAX_MEMORY_TYPE <= memory_type < OEM_TYPES_START or memory_type in (
        MemoryType.EfiConventionalMemory, MemoryType.EfiPersistentMemory, MemoryType.EfiUnacceptedMemoryType,
    ):
        raise EfiError(Status.EFI_INVALID_PARAMETER, f"memory type 0x{memory_type:x} cannot be allocated")


@dataclass(frozen=True)
class Descriptor:
    type: int
    start: int
    pages: int
    attribute: int

    @property
    def end(self) -> int:
        return self.start + self.pages * PAGE_SIZE

    def as_dict(self) -> dict:
        return {
            "type": MemoryType.name_of(self.type), "start": self.start,
            "pages": self.pages, "attribute": self.attribute,
        }


class PageAllocator:
    """Tracks the type of every page of guest RAM.

    The map is a list of runs (start, end, type) that cover RAM in address order, with
    neighbouring runs of different types. Allocation is top-down, as on EDK2.
    ``map_key`` changes on every change of the map.
    """

    def __init__(self, start: int, end: int, *, holes: tuple[tuple[int, int], ...] = (),
                 reserved: tuple[tuple[int, int], ...] = ()):
        """RAM from ``start`` to ``end`` but for the ``holes`` (no memory there); the ``reserved`` ranges
        (the board's, page-aligned) are EfiReservedMemoryType, and nothing frees them."""
        self.start, self.end = start, end
        self._runs: list[tuple[int, int, int]] = [(start, end, int(FREE))]
        self.map_key = 1
        for lo, hi in holes:
            self._set(lo, hi, HOLE)
        for lo, hi in reserved:
            self._set(lo, hi, MemoryType.EfiReservedMemoryType)
        self.fixed = tuple(holes) + tuple(reserved)
        self.map_key = 1

    # -- queries -------------------------------------------------------------
    def runs(self):
        """(start, end, type) of each run of equal type, low to high."""
        return iter(self._runs)

    def run_at(self, address: int) -> tuple[int, int, int] | None:
        """The (start, end, type) run of the map that holds ``address``."""
        for run in self._runs:
            if run[0] <= address < run[1]:
                return run
        return None

    def type_at(self, address: int) -> int | None:
        for start, end, memory_type in self._runs:
            if start <= address < end:
                return memory_type
        return None

    def is_type(self, start: int, end: int, memory_type: int | None) -> bool:
        """True when every page in [start, end) is of ``memory_type`` (None: any allocated type)."""
        if start < self.start or end > self.end or start >= end:
            return False
        for s, e, t in self._runs:
            if e <= start or s >= end:
                continue
            if t == HOLE or memory_type is None and t == FREE or memory_type is not None and t != memory_type:
                return False
        return True

    def descriptors(self) -> list[Descriptor]:
        out = []
        for s, e, t in self._runs:
            if t == HOLE:
                continue
            attribute = RAM_ATTRIBUTES | (MEMORY_RUNTIME if t in RUNTIME_TYPES else 0)
            out.append(Descriptor(t, s, (e - s) // PAGE_SIZE, attribute))
        return out

    # -- changes ---------------------------------------------------------------
    def _set(self, start: int, end: int, memory_type: int) -> None:
        runs = []
        for s, e, t in self._runs:
            if e <= start or s >= end:
                runs.append((s, e, t))
                continue
            if s < start:
                runs.append((s, start, t))
            if s <= start:
                runs.append((start, end, memory_type))
            if e > end:
                runs.append((end, e, t))
        merged = [runs[0]]
        for s, e, t in runs[1:]:
            if t == merged[-1][2]:
                merged[-1] = (merged[-1][0], e, t)
            else:
                merged.append((s, e, t))
        self._runs = merged
        self.map_key += 1

    def touch(self) -> None:
        """Record a change that does not move pages (a new configuration table)."""
        self.map_key += 1

    def allocate(self, kind: int, memory_type: int, pages: int, address: int = 0, align: int = PAGE_SIZE) -> int:
        """Allocate ``pages`` pages; return the address or raise EfiError."""
        size = pages * PAGE_SIZE
        if pages <= 0 or size > self.end - self.start:
            raise EfiError(Status.EFI_OUT_OF_RESOURCES if pages > 0 else Status.EFI_INVALID_PARAMETER,
                           f"cannot allocate {pages} pages")
        if kind == AllocateType.AllocateAddress:
            if address % PAGE_SIZE or not self.is_type(address, address + size, FREE):
                raise EfiError(Status.EFI_NOT_FOUND, f"0x{address:x}+{pages} pages is not free memory")
            self._set(address, address + size, memory_type)
            return address
        limit = self.end if kind == AllocateType.AllocateAnyPages else min(self.end, address + 1)
        for s, e, t in reversed(list(self.runs())):
            if t != FREE or s >= limit:
                continue
            candidate = (min(e, limit) - size) // align * align
            if candidate >= s:
                self._set(candidate, candidate + size, memory_type)
                return candidate
        raise EfiError(Status.EFI_OUT_OF_RESOURCES if kind == AllocateType.AllocateAnyPages else Status.EFI_NOT_FOUND,
                       f"no free run of {pages} pages" + ("" if kind == AllocateType.AllocateAnyPages else f" below 0x{address:x}"))

    def free(self, address: int, pages: int) -> None:
        end = address + pages * PAGE_SIZE
        if address % PAGE_SIZE or pages <= 0:
            raise EfiError(Status.EFI_INVALID_PARAMETER, "unaligned address or no pages")
        if not self.is_type(address, end, None) or any(lo < end and address < hi for lo, hi in self.fixed):
            raise EfiError(Status.EFI_NOT_FOUND, f"0x{address:x}+{pages} pages were not allocated")
        self._set(address, end, FREE)


def _released(handle, address, data, size) -> int:
    """uc_mem_read and uc_mem_write of a closed Machine: every access fails."""
    return 1


class GuestMemory:
    """Reads and writes guest RAM; every failure is a GuestMemoryError.

    Guest RAM lies in host buffers of ours (``host_pointer``: the platform maps each
    range of RAM from one with mem_map_ptr), so a read inside them is a slice of the
    buffer, with no call into the engine. Every other read, and every write, calls
    libunicorn's uc_mem_read/uc_mem_write directly with a reused buffer (the binding's
    own methods allocate twice per access). Writes go through the engine so that it
    drops any code it translated from the bytes written.
    """

    SMALL = 4096
    SHORT = 256  # read_ucs2 decodes this many bytes at once: a NUL character there ends a short string

    CHUNK = 1 << 20  # bulk operations work in pieces of this size (as the C trampoline does)

    def __init__(self, uc, width: int, ram: list[tuple[int, int]]):
        from unicorn.unicorn_py3 import unicorn as binding

        self.ram = list(ram)  # the (start, end) ranges of guest RAM
        self.width = width  # bytes in a UINTN, a pointer or a handle of this guest (4 or 8)
        self._uintn = struct.Struct("<Q" if width == 8 else "<I")
        self._uintn_mask = (1 << (8 * width)) - 1

        self._handle = uc._uch
        self._read = binding.uclib.uc_mem_read
        self._write = binding.uclib.uc_mem_write
        self._buffer = ctypes.create_string_buffer(self.SMALL)
        # (start, end, buffer) of each range of RAM the engine maps from host memory of ours, and the
        # ctypes views that give their addresses (a buffer cannot be freed while one exists)
        self._host: list[tuple[int, int, mmap.mmap]] = []
        self._views: dict[int, ctypes.Array] = {}  # by the range's start
        # GUIDs (by address) and UCS-2 strings (by address and limit) read during one service call:
        # the record keeps the arguments and the service reads them again. Cleared by forget() and
        # by every write.
        self._guids: dict[int, Guid] = {}
        self._strings: dict[tuple[int, int], str] = {}

    def host_pointer(self, address: int) -> int:
        """The host address of guest RAM at ``address``, in a private anonymous mapping (copied on write
        by a fork, like the engine's own RAM) that holds all of the range of ``ram`` it lies in; the
        caller maps all of that range from it (``uc.mem_map_ptr``) before the next read."""
        for start, end, buffer in self._host:
            if start <= address < end:
                break
        else:
            start, end = next((s, e) for s, e in self.ram if s <= address < e)
            buffer = mmap.mmap(-1, end - start, flags=mmap.MAP_PRIVATE)
            if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux: fewer page faults, and a fork copies fewer page
                buffer.madvise(mmap.MADV_HUGEPAGE)  # tables (sweep, minimize; docs/performance.md)
            self._host.append((start, end, buffer))
            self._views[start] = ctypes.c_char.from_buffer(buffer)
        return ctypes.addressof(self._views[start]) + address - start

    def release(self) -> None:
        """Give back the host buffers of guest RAM (Machine.close, once the engine that maps them is
        closed): from now on every read and write is a GuestMemoryError."""
        self._read = self._write = _released
        self._views.clear()  # a buffer with a ctypes view of it cannot be closed
        for _, _, buffer in self._host:
            buffer.close()
        self._host.clear()
        self._guids.clear()
        self._strings.clear()

    def read(self, address: int, size: int) -> bytes:
        if size < 0 or address <= 0:
            raise GuestMemoryError(address, size, "read")
        if size == 0:
            return b""
        for start, end, buffer in self._host:
            if start <= address and address + size <= end:
                return buffer[address - start:address - start + size]
        if size > self.SMALL:
            self.check(address, size, "read")  # before any host buffer of that size is made
        buffer = self._buffer if size <= self.SMALL else ctypes.create_string_buffer(size)
        if self._read(self._handle, address, buffer, size):
            raise GuestMemoryError(address, size, "read")
        return ctypes.string_at(buffer, size)

    def write(self, address: int, data) -> None:
        """Write bytes, or a writable buffer (bytearray, memoryview of one) without copying it."""
        size = len(data)
        if address <= 0:
            raise GuestMemoryError(address, size, "write")
        if not size:
            return
        if not isinstance(data, bytes):
            data = (ctypes.c_char * size).from_buffer(data)
        if self._guids or self._strings:
            self._guids.clear()
            self._strings.clear()
        if self._write(self._handle, address, data, size):
            raise GuestMemoryError(address, size, "write")

    # -- bulk operations on ranges that must lie in guest RAM (CopyMem, SetMem, CalculateCrc32) ---
    def check(self, address: int, size: int, access: str) -> None:
        """GuestMemoryError unless [address, address + size) lies inside one range of guest RAM."""
        if size > 0:
            for start, end in self.ram:
                if start <= address and address + size <= end:
                    return
        raise GuestMemoryError(address, size, access)

    def move(self, dst: int, src: int, size: int) -> None:
        """memmove in guest RAM: overlapping ranges copy as if through a buffer."""
        self.check(src, size, "read")
        self.check(dst, size, "write")
        if size <= self.CHUNK:
            self.write(dst, self.read(src, size))
            return
        backwards = src < dst < src + size
        done = 0
        while done < size:
            part = min(size - done, self.CHUNK)
            offset = size - done - part if backwards else done
            self.write(dst + offset, self.read(src + offset, part))
            done += part

    def fill(self, dst: int, size: int, value: int) -> None:
        self.check(dst, size, "write")
        chunk = bytes([value & 0xFF]) * min(size, self.CHUNK)
        for offset in range(0, size, self.CHUNK):
            self.write(dst + offset, chunk[: min(self.CHUNK, size - offset)])

    def crc32(self, address: int, size: int) -> int:
        import zlib

        self.check(address, size, "read")
        crc = 0
        for offset in range(0, size, self.CHUNK):
            crc = zlib.crc32(self.read(address + offset, min(self.CHUNK, size - offset)), crc)
        return crc

    def read_u32(self, a: int) -> int:
        return struct.unpack("<I", self.read(a, 4))[0]

    def read_u64(self, a: int) -> int:
        return struct.unpack("<Q", self.read(a, 8))[0]

    def write_u32(self, a: int, v: int) -> None:
        self.write(a, struct.pack("<I", v & 0xFFFFFFFF))

    def write_u64(self, a: int, v: int) -> None:
        self.write(a, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    # UINTN, pointers and handles: as wide as the guest's pointers. UINT64 and
    # EFI_PHYSICAL_ADDRESS stay read_u64/write_u64 on every architecture.
    def read_uintn(self, a: int) -> int:
        return self._uintn.unpack(self.read(a, self.width))[0]

    def write_uintn(self, a: int, v: int) -> None:
        self.write(a, self._uintn.pack(v & self._uintn_mask))

    def read_guid(self, a: int) -> Guid:
        guid = self._guids.get(a)
        if guid is None:
            for start, end, buffer in self._host:  # in a host buffer: a slice (read's fast path, inline)
                if start <= a and a + 16 <= end:
                    guid = self._guids[a] = _guid(buffer[a - start:a - start + 16])
                    return guid
            guid = self._guids[a] = Guid.from_bytes(self.read(a, Guid.SIZE))
        return guid

    def write_guid(self, a: int, guid: Guid) -> None:
        self.write(a, guid.to_bytes())

    def read_ucs2(self, a: int, limit: int = 1 << 16) -> str:
        """A NUL-terminated UCS-2 string of at most ``limit`` characters."""
        key = (a, limit)
        text = self._strings.get(key)
        if text is None:
            short = self.SHORT
            if limit >= short // 2:  # a short string in a host buffer: decoded at once, cut at its NUL
                for start, end, buffer in self._host:
                    if start <= a and a + short <= end:
                        text = _utf16(buffer[a - start:a - start + short], "replace", True)[0]
                        nul = text.find("\0")
                        if nul >= 0:
                            text = self._strings[key] = text[:nul]
                            return text
                        break
            text = self._strings[key] = _utf16(self._read_terminated(a, limit, 2), "replace", True)[0]
        return text

    def read_ascii(self, a: int, limit: int = 1 << 12) -> str:
        """A NUL-terminated CHAR8 string (an RFC 4646 language code, say) of at most ``limit`` characters."""
        return self._read_terminated(a, limit, 1).decode("ascii", errors="replace")

    def _read_terminated(self, a: int, limit: int, unit: int) -> bytes:
        """The bytes before the first NUL character of ``unit`` bytes, at most ``limit`` characters."""
        piece = 128  # guest memory is read in pieces of this size (beyond the last, nothing counts)
        for start, end, buffer in self._host:  # in a host buffer: found there at once
            if start <= a < end:  # start > 0: page 0 is never in a host buffer
                first, size = a - start, end - start
                window = first + (limit * unit + piece - 1) // piece * piece
                if window > size:
                    window = size
                nul = b"\0\0" if unit == 2 else b"\0"
                at, top = -1, first
                while at < 0 and top < window:  # a KiB at a time: most strings are short
                    bottom, top = top, top + 1024
                    if top > window:
                        top = window
                    at = buffer.find(nul, bottom, top)
                    while at >= 0 and unit == 2 and (at - first) & 1:  # a character's high byte, then a NUL?
                        if at + 2 < top and buffer[at + 2] == 0:
                            at += 1
                            break
                        at = buffer.find(nul, at + 1, top)
                if at >= 0 and at + piece - (at - first) % piece <= size:
                    return buffer[first:at]
                break  # near the end of RAM, or no end: the reads below give the answer or the error
        out = b""
        nul = bytes(unit)
        chunk = piece
        while len(out) < limit * unit:
            try:
                data = self.read(a + len(out), chunk)
            except GuestMemoryError:
                if chunk == unit:
                    raise
                chunk = unit  # near the end of RAM: go on character by character
                continue
            end = data.find(nul)
            while end >= 0 and end % unit:
                end = data.find(nul, end + 1)
            if end >= 0:
                return out + data[:end]
            out += data
        raise GuestMemoryError(a, limit * unit, "find the end of a string")

    def forget(self) -> None:
        """Drop remembered strings and GUIDs: guest code may have changed memory since."""
        if self._guids or self._strings:
            self._guids.clear()
            self._strings.clear()

    def write_ucs2(self, a: int, text: str) -> None:
        self.write(a, ucs2(text))

    def read_struct(self, layout, a: int):
        return layout.parse(self.read(a, layout.sizeof()))

    def write_struct(self, layout, a: int, value: dict) -> None:
        self.write(a, layout.build(value))


_guid = Guid.from_bytes  # bound once: Python looks a class's attributes up slowly
_utf16 = codecs.utf_16_le_decode  # bytes.decode("utf-16-le", errors="replace") without the codec look-up


def ucs2_text(raw: bytes) -> str:
    """The text of CHAR16 bytes up to their first NUL character (all of it when there is none)."""
    text = _utf16(raw[:len(raw) & ~1], "replace", True)[0]
    nul = text.find("\0")
    return text if nul < 0 else text[:nul]


def ucs2(text: str) -> bytes:
    """NUL-terminated UCS-2 encoding of ``text``."""
    return (text + "\0").encode("utf-16-le")
