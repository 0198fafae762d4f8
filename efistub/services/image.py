"""Image services (UEFI 2.10 §7.4): LoadImage, StartImage, Exit, UnloadImage, ExitBootServices.

An image runs as a guest call from the firmware (the boot manager for the first
image, StartImage for the others): ``yield call_guest(entry, handle, system_table,
image=handle)``. When the image returns from its entry point, that yield gives its
status; when it calls Exit, the dispatcher unwinds to it and the yield gives an
ImageExit. LoadImage here takes a SourceBuffer; loading from a device path comes
with the file systems.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import guids
from ..dispatch import ImageExit, Unwind, call_guest
from ..errors import EfiError, GuestMemoryError, InputError
from ..layouts import pe
from ..layouts.efi import PAGE_SIZE
from ..loader import PeImage, parse_image
from ..memory import AllocateType, MemoryType, pages_for
from ..protocols import loaded_image
from ..registry import BOOLEAN, HANDLE, POINTER, STATUS, UINTN, service
from ..status import Status, from_guest as status_from_guest
from ..tables import update_system_table

CHILD_STACK = 128 << 10  # each started image gets a stack of its own


@dataclass
class LoadedImage:
    handle: int
    image: PeImage
    base: int
    pages: int
    parent: int
    started: bool = False


def place(fw, image: PeImage) -> int:
    """Allocate an image's EfiLoaderCode range, at its ImageBase when that is free RAM, else at
    its own alignment (then it must have base relocations, or it notes why not); return the base."""
    pages = pages_for(image.size_of_image)
    try:
        return fw.allocate_pages(MemoryType.EfiLoaderCode, pages, AllocateType.AllocateAddress, image.image_base)
    except EfiError:
        pass
    kind, limit = AllocateType.AllocateAnyPages, 0
    if fw.width == 4:  # a 32-bit image must lie below 4 GiB
        kind, limit = AllocateType.AllocateMaxAddress, (1 << 32) - 1
    base = fw.allocate_pages(MemoryType.EfiLoaderCode, pages, kind, limit, align=image.alignment)
    if not image.has_relocations and image.image_base:
        fw.note(f"image has no base relocations; loaded at 0x{base:x} instead of ImageBase 0x{image.image_base:x}")
    return base


def load(fw, image: PeImage, options: str, parent: int, base: int | None = None) -> LoadedImage:
    """Place ``image`` in guest memory (at ``base`` when the caller placed it), relocated, with its
    handle and LOADED_IMAGE."""
    base = place(fw, image) if base is None else base
    try:
        for rva, data in image.pieces(base):
            fw.mem.write(base + rva, data)
    except InputError as e:  # a relocation the loader cannot apply
        fw.pages.free(base, pages_for(image.size_of_image))
        raise EfiError(Status.EFI_LOAD_ERROR, e.problem) from None
    fw.loaded_images.append((base, pages_for(image.size_of_image) * PAGE_SIZE))
    handle = loaded_image.install(fw, image, base, options, parent=parent)
    entry = LoadedImage(handle, image, base, pages_for(image.size_of_image), parent)
    fw.images[handle] = entry
    return entry


def start(fw, loaded: LoadedImage, stack: int | None = None):
    """Run an image's entry point (a generator); return its ImageExit (``exited`` False when the
    entry point returned)."""
    loaded.started = True
    entry = loaded.base + loaded.image.entry_rva
    outcome = yield call_guest(entry, loaded.handle, fw.system_table, image=loaded.handle, stack=stack)
    if isinstance(outcome, ImageExit):
        return outcome
    return ImageExit(status_from_guest(outcome, fw.width), exited=False)  # the entry point's return value


def unload(fw, loaded: LoadedImage) -> None:
    fw.images.pop(loaded.handle, None)
    fw.loaded_images = [r for r in fw.loaded_images if r[0] != loaded.base]
    fw.pages.free(loaded.base, loaded.pages)
    handle = fw.handles.get(loaded.handle)
    if handle is not None:
        for guid in list(handle.protocols):
            fw.handles.uninstall(handle, guid)


def boot(fw, loaded: LoadedImage, stack: int):
    """The boot manager (a generator): signal ReadyToBoot, run the image, end the run with its exit."""
    fw.events.signal_group(guids.EVENT_GROUP_READY_TO_BOOT)
    yield from fw.events.run_notifications()
    done = yield from start(fw, loaded, stack)
    exit_data = None
    if done.exit_data and done.exit_data_size:
        try:
            raw = fw.mem.read(done.exit_data, min(done.exit_data_size, 4096))
            exit_data = raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        except GuestMemoryError:
            fw.note("the image's ExitData is not readable")
    fw.request_stop("exit", status=done.status, exit_data=exit_data, returned=not done.exited)


@service("LoadImage", BootPolicy=BOOLEAN, ParentImageHandle=HANDLE, DevicePath=POINTER, SourceBuffer=POINTER,
         SourceSize=UINTN, ImageHandle=POINTER)
def LoadImage(fw, boot_policy, parent, device_path, source, size, handle_ptr):
    if not handle_ptr or parent not in fw.images:
        return Status.EFI_INVALID_PARAMETER
    if not source:
        return Status.EFI_NOT_FOUND  # loading from a device path needs a file system, which there is none of
    if not size:
        return Status.EFI_LOAD_ERROR
    data = fw.mem.read(source, size)
    if int.from_bytes(data[:2], "little") != pe.DOS_MAGIC:  # not a PE image at all: EDK2 says unsupported
        raise EfiError(Status.EFI_UNSUPPORTED, "the SourceBuffer holds no PE image (no MZ signature)")
    try:
        image = parse_image("SourceBuffer", data)
    except InputError as e:  # a PE image, but corrupt
        raise EfiError(Status.EFI_LOAD_ERROR, e.problem) from None
    if image.width != fw.width or image.machine != fw.images[parent].image.machine:
        raise EfiError(Status.EFI_UNSUPPORTED, f"the image is for {image.arch}")
    loaded = load(fw, image, "", parent)
    fw.mem.write_uintn(handle_ptr, loaded.handle)
    return Status.EFI_SUCCESS


@service("StartImage", ImageHandle=HANDLE, ExitDataSize=POINTER, ExitData=POINTER)
def StartImage(fw, handle, size_ptr, data_ptr):
    loaded = fw.images.get(handle)
    if loaded is None or loaded.started:
        return Status.EFI_INVALID_PARAMETER
    return _start(fw, loaded, size_ptr, data_ptr)


def _start(fw, loaded, size_ptr, data_ptr):
    stack = fw.allocate_pages(MemoryType.EfiBootServicesData, CHILD_STACK // PAGE_SIZE)
    done = yield from start(fw, loaded, stack + CHILD_STACK)
    fw.pages.free(stack, CHILD_STACK // PAGE_SIZE)
    if size_ptr:
        fw.mem.write_uintn(size_ptr, done.exit_data_size)
    if data_ptr:
        fw.mem.write_uintn(data_ptr, done.exit_data)
    return done.status


@service("Exit", ImageHandle=HANDLE, ExitStatus=STATUS, ExitDataSize=UINTN, ExitData=POINTER)
def Exit(fw, image_handle, exit_status, data_size, data):
    loaded = fw.images.get(image_handle)
    if loaded is None:
        return Status.EFI_INVALID_PARAMETER
    if not loaded.started:  # loaded but never started: Exit unloads it
        unload(fw, loaded)
        return Status.EFI_SUCCESS
    # Only the running image may exit; the dispatcher refuses (EFI_INVALID_PARAMETER) any other.
    raise Unwind(image_handle, ImageExit(exit_status, data_size if data else 0, data if data_size else 0))


@service("UnloadImage", ImageHandle=HANDLE)
def UnloadImage(fw, image_handle):
    loaded = fw.images.get(image_handle)
    if loaded is None:
        return Status.EFI_INVALID_PARAMETER
    if loaded.started:
        return Status.EFI_UNSUPPORTED  # an image that runs or ran unloads through its own Unload function
    unload(fw, loaded)
    return Status.EFI_SUCCESS


@service("ExitBootServices", ImageHandle=HANDLE, MapKey=UINTN)
def ExitBootServices(fw, image_handle, map_key):
    table = fw.events
    table.signal_group(guids.EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES)
    yield from table.run_notifications()
    if map_key != fw.pages.map_key:
        fw.note(f"ExitBootServices with a stale map key {map_key} (current {fw.pages.map_key})")
        return Status.EFI_INVALID_PARAMETER
    table.signal_group(guids.EVENT_GROUP_EXIT_BOOT_SERVICES)
    yield from table.run_notifications()
    fw.state.boot_services_active = False
    # The spec has the firmware clear the boot-time members of the system table.
    update_system_table(fw, BootServices=0, ConsoleInHandle=0, ConIn=0, ConsoleOutHandle=0, ConOut=0,
                        StandardErrorHandle=0, StdErr=0)
    return Status.EFI_SUCCESS
