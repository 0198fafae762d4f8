"""Image services (UEFI 2.10 §7.4): LoadImage, StartImage, Exit, UnloadImage, ExitBootServices.

An image runs as a guest call from the firmware (the boot manager for the first
image, StartImage for the others): ``yield call_guest(entry, handle, system_table,
image=handle)``. When the image returns from its entry point, that yield gives its
status; when it calls Exit, the dispatcher unwinds to it and the yield gives an
ImageExit. LoadImage takes a SourceBuffer or a device path (a file on a volume, or a
LOAD_FILE(2) protocol). Every image loaded joins fw.image_chain, the report's chain.

With Secure Boot on, every image is verified before it is loaded (efistub.image_verification,
as EDK2's DxeImageVerificationLib; the first image too, by the boot manager). One that fails is
loaded untrusted (--image-policy defer: LoadImage and StartImage give EFI_SECURITY_VIOLATION, as
EDK2's CoreLoadImage and CoreStartImage do with its LoadImageStatus) or not at all (deny:
EFI_ACCESS_DENIED, no handle); either way it is not measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import device_path, guids, image_verification
from ..dispatch import ImageExit, Unwind, call_guest
from ..errors import EfiError, GuestMemoryError, InputError
from ..layouts import efi, pe
from ..layouts.efi import PAGE_SIZE
from ..loader import PeImage, parse_image
from ..memory import AllocateType, MemoryType, pages_for, ucs2_text
from ..protocols import loaded_image, tcg2
from ..registry import BOOLEAN, HANDLE, POINTER, STATUS, UINTN, Result, service
from ..status import ERROR_BIT, Status, from_guest as status_from_guest
from ..tables import update_system_table
from ..variables import BS_RT

CHILD_STACK = 128 << 10
  # each started image gets a stack of its own


@dataclass
class LoadedImage:
    handle: int
    image: PeImage
    base: int
    pages: int
    parent: int
    source: str  # where it came from: its device path, "memory buffer", or the host file
    started: bool = False
    ended: ImageExit | None = None  # how it left, once it has
    unloaded: bool = False
    verification: image_verification.Verdict | None = None  # with Secure Boot: the verdict on it
    load_status: int = Status.EFI_SUCCESS  # EDK2's LoadImageStatus: what StartImage gives for an untrusted image

    def as_dict(self, fw) -> dict:
        """The image in the report's chain of images."""
        import hashlib

        out = {"handle": self.handle, "parent": self.parent or None, "source": self.source,
               "sha256": hashlib.sha256(self.image.data).hexdigest(), "load_address": self.base,
               "size": self.image.size_of_image, "arch": self.image.arch, "started": self.started,
               "outcome": None, "unloaded": self.unloaded, "verification": None if self.verification is None
               else self.verification.as_dict(fw.options.image_policy)}
        if self.ended is not None:
            out["outcome"] = "exit" if self.ended.exited else "returned"
            out["exit_status"] = Status.name_of(self.ended.status)
            out["exit_data"] = exit_text(fw, self.ended)
        elif self.started:
            out["outcome"] = "running"  # when the run ended (a hand-off, a fault, ...)
        return out


def exit_text(fw, done: ImageExit) -> str | None:
    """The ExitData string an image left with, if any."""
    if not (done.exit_data and done.exit_data_size):
        return None
    try:
        raw = fw.mem.read(done.exit_data, min(done.exit_data_size, 4096))
    except GuestMemoryError:
        return None
    return ucs2_text(raw)


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


def load(fw, image: PeImage, options: str, parent: int, base: int | None = None, device: int = 0,
         file_path: list | None = None, source: str | None = None) -> LoadedImage:
    """Place ``image`` in guest memory (at ``base`` when the caller placed it), relocated, with its
    handle and LOADED_IMAGE (DeviceHandle ``device``, FilePath the nodes ``file_path``).

    Pages placed here are zeroed first (they may have held a freed pool); a caller that placed
    the image gives fresh RAM. A relocation the loader cannot apply is the loader's InputError,
    with the pages freed: bad input for the first image, EFI_LOAD_ERROR for LoadImage (load_bytes).
    """
    placed = base is None
    base = place(fw, image) if placed else base
    pages = pages_for(image.size_of_image)
    try:
        pieces = image.pieces(base)
    except InputError:
        fw.pages.free(base, pages)
        raise
    if placed:
        fw.mem.fill(base, pages * PAGE_SIZE, 0)
    for rva, data in pieces:
        fw.mem.write(base + rva, data)
    handle = loaded_image.install(fw, image, base, options, parent=parent, device=device, file_path=file_path)
    if source is None:
        source = device_path.text(file_path) if file_path else "memory buffer"
    entry = LoadedImage(handle, image, base, pages_for(image.size_of_image), parent, source)
    fw.images[handle] = entry
    fw.image_chain.append(entry)
    return entry


def start(fw, loaded: LoadedImage, stack: int | None = None):
    """Run an image's entry point (a generator); return its ImageExit (``exited`` False when the
    entry point returned)."""
    loaded.started = True
    entry = loaded.base + loaded.image.entry_rva
    outcome = yield call_guest(entry, loaded.handle, fw.system_table, image=loaded.handle, stack=stack)
    if not isinstance(outcome, ImageExit):  # the entry point returned
        outcome = ImageExit(status_from_guest(outcome, fw.width), exited=False)
    loaded.ended = outcome
    return outcome


def unload(fw, loaded: LoadedImage) -> None:
    loaded.unloaded = True
    fw.images.pop(loaded.handle, None)
    fw.pages.free(loaded.base, loaded.pages)
    handle = fw.handles.get(loaded.handle)
    if handle is not None:
        for guid in list(handle.protocols):
            fw.handles.uninstall(handle, guid)


def boot(fw, fallback: LoadedImage, stack: int):
    """The boot manager (a generator): signal ReadyToBoot, try the active Boot#### options in BootOrder
    (their optional data as LoadOptions, BootCurrent set), then the image efistub was given (the
    removable-media file of `efistub boot`) when none of them could be started; the run ends with the
    exit of the last one started."""
    fw.events.signal_group(guids.EVENT_GROUP_READY_TO_BOOT)
    yield from fw.events.run_notifications()
    done = None
    for number, option in boot_options(fw):
        name = f"Boot{number:04X} ({option.description})"
        tcg2.before_boot(fw)
        try:
            path = expand_short_path(fw, option.paths)
            data, device, nodes = yield from _read_device_path(fw, path, True)
            loaded = load_bytes(fw, data, fallback.handle, device, nodes, fallback.image.machine)
        except EfiError as e:
            fw.note(f"{name}: not loaded: {e.note or Status.name_of(e.status)}")
            continue
        if loaded.load_status != Status.EFI_SUCCESS:  # EDK2's boot manager unloads an untrusted image
            fw.note(f"{name}: not started: {refusal(fw, loaded.verification)}")
            unload(fw, loaded)
            continue
        tcg2.image_loaded(fw, loaded, path)
        if option.data:
            loaded_image.set_load_options(fw, loaded.handle, option.data)
        fw.variables.set("BootCurrent", guids.GLOBAL_VARIABLE, BOOT_CURRENT_ATTRIBUTES, number.to_bytes(2, "little"))
        done = yield from start(fw, loaded, stack)
        fw.note(f"{name} returned {Status.name_of(done.status)}")
    if done is None:  # no boot option could be started: the image efistub was given
        tcg2.before_boot(fw)
        verdict = fallback.verification = image_verification.verify(fw.variables, fallback.image,
                                                                    fw.options.image_policy)
        if verdict is not None and not verdict.allowed:  # the firmware never starts it
            status = verdict.status(fw.options.image_policy)
            fw.note(f"{fallback.source}: not started: {refusal(fw, verdict)}")
            unload(fw, fallback)
            fw.request_stop("exit", status=status, exit_data=None, returned=False)
            return
        tcg2.image_loaded(fw, fallback, device_path.read(
            fw.mem, fw.handles.get(fallback.handle).protocols[guids.LOADED_IMAGE_DEVICE_PATH_PROTOCOL])[0])
        done = yield from start(fw, fallback, stack)
    fw.request_stop("exit", status=done.status, exit_data=exit_text(fw, done), returned=not done.exited)


BOOT_CURRENT_ATTRIBUTES = BS_RT  # volatile (UEFI 2.10 §3.3)
LOAD_OPTION_ACTIVE = 0x1


@dataclass
class BootOption:
    attributes: int
    description: str
    paths: list  # the device-path nodes of the first path of FilePathList
    data: bytes  # OptionalData: the image's LoadOptions


def boot_options(fw):
    """The active Boot#### options in BootOrder, as (number, BootOption); malformed ones are noted."""
    order = fw.variables.get("BootOrder", guids.GLOBAL_VARIABLE)
    if order is None:
        return
    for i in range(0, len(order.data) - 1, 2):
        number = int.from_bytes(order.data[i:i + 2], "little")
        variable = fw.variables.get(f"Boot{number:04X}", guids.GLOBAL_VARIABLE)
        if variable is None:
            fw.note(f"BootOrder names Boot{number:04X}, which does not exist")
            continue
        try:
            option = parse_load_option(variable.data)
        except ValueError as e:
            fw.note(f"Boot{number:04X}: {e}")
            continue
        if option.attributes & LOAD_OPTION_ACTIVE:
            yield number, option


def parse_load_option(raw: bytes) -> BootOption:
    """EFI_LOAD_OPTION (UEFI 2.10 §3.1.3): Attributes, FilePathListLength, Description, FilePathList,
    OptionalData."""
    fixed = efi.LoadOptionHeader.sizeof()
    if len(raw) < fixed + 2:
        raise ValueError("shorter than an EFI_LOAD_OPTION")
    header = efi.LoadOptionHeader.parse(raw)
    end = fixed
    while end + 1 < len(raw) and raw[end:end + 2] != b"\0\0":
        end += 2
    if end + 1 >= len(raw):
        raise ValueError("its Description has no terminator")
    description = raw[fixed:end].decode("utf-16-le", errors="replace")
    paths_start = end + 2
    paths = raw[paths_start:paths_start + header.FilePathListLength]
    if len(paths) < header.FilePathListLength:
        raise ValueError("its FilePathList runs past the end")
    try:
        nodes = device_path.decode(paths)
    except ValueError as e:
        raise ValueError(f"its FilePathList is not a device path: {e}") from None
    return BootOption(header.Attributes, description, nodes, raw[paths_start + header.FilePathListLength:])


def expand_short_path(fw, nodes: list) -> list:
    """A short-form device path as firmware expands it (UEFI 2.10 §3.1.2): one that starts with a
    HD() node (as efibootmgr writes them) gets the path of the partition with that node in front;
    one that is only a file path, the path of the first volume that has the file."""
    if not nodes:
        return nodes
    if nodes[0].is_hard_drive:
        for handle in fw.handles.with_protocol(guids.DEVICE_PATH_PROTOCOL):
            full, _ = device_path.read(fw.mem, handle.protocols[guids.DEVICE_PATH_PROTOCOL])
            if full and full[-1] == nodes[0]:
                return full + nodes[1:]
    elif all(n.is_file_path for n in nodes):
        name = "\\".join(n.path_name.strip("\\") for n in nodes)
        for handle in fw.handles.with_protocol(guids.SIMPLE_FILE_SYSTEM_PROTOCOL):
            volume = fw.protocol_state["volumes"][handle.protocols[guids.SIMPLE_FILE_SYSTEM_PROTOCOL]]
            try:
                volume.stat(volume.resolve("\\", name))
            except EfiError:
                continue
            if guids.DEVICE_PATH_PROTOCOL in handle.protocols:
                return device_path.read(fw.mem, handle.protocols[guids.DEVICE_PATH_PROTOCOL])[0] + nodes
    return nodes


@service("LoadImage", BootPolicy=BOOLEAN, ParentImageHandle=HANDLE, DevicePath=POINTER, SourceBuffer=POINTER,
         SourceSize=UINTN, ImageHandle=POINTER)
def LoadImage(fw, boot_policy, parent, path, source, size, handle_ptr):
    if not handle_ptr or parent not in fw.images:
        return Status.EFI_INVALID_PARAMETER
    device, file_nodes = 0, None
    if source:
        if not size:
            return Status.EFI_LOAD_ERROR
        data = fw.mem.read(source, size)
        if path:  # the caller says where the buffer came from
            file_nodes = _nodes(fw, path)
    elif not path:
        return Status.EFI_NOT_FOUND
    else:
        data, device, file_nodes = yield from _read_device_path(fw, _nodes(fw, path), boot_policy)
    try:
        loaded = load_bytes(fw, data, parent, device, file_nodes, fw.images[parent].image.machine)
    except EfiError as e:
        if e.status == Status.EFI_ACCESS_DENIED:  # the platform refused it outright: no image (EDK2: NULL)
            fw.mem.write_uintn(handle_ptr, 0)
        raise
    fw.mem.write_uintn(handle_ptr, loaded.handle)
    if loaded.load_status != Status.EFI_SUCCESS:  # loaded untrusted, and not measured
        return Result(loaded.load_status, note=refusal(fw, loaded.verification))
    tcg2.image_loaded(fw, loaded, _nodes(fw, path) if path else None)  # the path the caller gave
    return Status.EFI_SUCCESS


def refusal(fw, verdict: image_verification.Verdict) -> str:
    """Why Secure Boot refused an image, in one line."""
    status = Status.name_of(verdict.status(fw.options.image_policy))
    algorithm = image_verification.REPORTED_HASH
    return f"Secure Boot refused it ({status}): {verdict.reason}; {algorithm} {verdict.digests[algorithm].hex()}"


def load_bytes(fw, data: bytes, parent: int, device: int, file_nodes: list | None, machine: int,
               options: str = "") -> LoadedImage:
    """LoadImage's checks and loading of an image's bytes: EFI_UNSUPPORTED for no PE image or another
    machine (as EDK2), EFI_LOAD_ERROR for a corrupt one. With Secure Boot on, the image is verified
    first, as EDK2 does before its loader reads the image: with --image-policy deny one that fails is
    EFI_ACCESS_DENIED, with defer it is loaded with load_status EFI_SECURITY_VIOLATION."""
    policy = fw.options.image_policy
    denies = policy == image_verification.DENY and image_verification.enabled(fw.variables, policy)
    try:
        image = _pe_image(data, file_nodes)
    except EfiError as e:
        if denies:  # EDK2's verification refuses what is no valid PE/COFF image before its loader sees it
            raise EfiError(Status.EFI_ACCESS_DENIED, f"Secure Boot refused it: not a valid PE/COFF image "
                                                     f"({e.note})") from None
        raise
    verdict = image_verification.verify(fw.variables, image, policy)
    if verdict is not None and not verdict.allowed and denies:
        raise EfiError(Status.EFI_ACCESS_DENIED, refusal(fw, verdict))
    if image.width != fw.width or image.machine != machine:
        raise EfiError(Status.EFI_UNSUPPORTED, f"the image is for {image.arch}")
    try:
        loaded = load(fw, image, options, parent, device=device, file_path=file_nodes)
    except InputError as e:  # a relocation the loader cannot apply
        raise EfiError(Status.EFI_LOAD_ERROR, e.problem) from None
    loaded.verification = verdict
    if verdict is not None and not verdict.allowed:
        loaded.load_status = verdict.status(policy)
    return loaded


def _pe_image(data: bytes, file_nodes: list | None) -> PeImage:
    if int.from_bytes(data[:2], "little") != pe.DOS_MAGIC:
        raise EfiError(Status.EFI_UNSUPPORTED, "the image holds no PE image (no MZ signature)")
    try:
        return parse_image(device_path.text(file_nodes) if file_nodes else "SourceBuffer", data)
    except InputError as e:  # a PE image, but corrupt
        raise EfiError(Status.EFI_LOAD_ERROR, e.problem) from None


def _nodes(fw, path: int) -> list:
    try:
        return device_path.read(fw.mem, path)[0]
    except ValueError as e:
        raise EfiError(Status.EFI_INVALID_PARAMETER, str(e)) from None


def _read_device_path(fw, nodes: list, boot_policy: bool):
    """The file a device path names (a generator): through SIMPLE_FILE_SYSTEM on the handle of the
    path's device, else through that handle's LOAD_FILE2 (not for boot-policy loads) or LOAD_FILE,
    whose LoadFile may be guest code. Returns (bytes, device handle, the file's nodes)."""
    from .protocol_handler import locate

    found = locate(fw, guids.SIMPLE_FILE_SYSTEM_PROTOCOL, nodes)
    if found is not None:
        handle, depth = found
        rest = nodes[depth:]
        if not rest or not all(n.is_file_path for n in rest):
            raise EfiError(Status.EFI_NOT_FOUND, f"no file path after {device_path.text(nodes[:depth])}")
        volume = fw.protocol_state["volumes"][handle.protocols[guids.SIMPLE_FILE_SYSTEM_PROTOCOL]]
        name = "\\".join(n.path_name.strip("\\") for n in rest)
        path = volume.resolve("\\", name)
        entry = volume.stat(path)
        if entry.is_dir:
            raise EfiError(Status.EFI_NOT_FOUND, f"{path} is a directory")
        from ..protocols.simple_file_system import record_load

        data = volume.read(path, 0, entry.size)
        record_load(fw, path, len(data))
        return data, handle.address, rest
    for guid in ((guids.LOAD_FILE2_PROTOCOL,) if not boot_policy else ()) + (guids.LOAD_FILE_PROTOCOL,):
        found = locate(fw, guid, nodes)
        if found is not None:
            handle, depth = found
            data = yield from _load_file(fw, handle.protocols[guid], nodes[depth:], boot_policy)
            return data, handle.address, nodes[depth:]
    raise EfiError(Status.EFI_NOT_FOUND, f"nothing serves {device_path.text(nodes)}")


def _load_file(fw, interface: int, rest: list, boot_policy: bool):
    """Call a LOAD_FILE(2) protocol's LoadFile, a size probe then the load (it may be guest code)."""
    function = fw.mem.read_uintn(interface)  # LoadFile is the protocol's first member
    path = fw.store(MemoryType.EfiBootServicesData, device_path.encode(rest))
    size_ptr = fw.allocate_pool(MemoryType.EfiBootServicesData, fw.width)
    try:
        fw.mem.write_uintn(size_ptr, 0)
        status = yield call_guest(function, interface, path, int(boot_policy), size_ptr, 0)
        status = status_from_guest(status, fw.width)
        size = fw.mem.read_uintn(size_ptr)
        if status != Status.EFI_BUFFER_TOO_SMALL or not size:
            raise EfiError(status if status & ERROR_BIT else Status.EFI_LOAD_ERROR,
                           f"LoadFile's size probe gave {Status.name_of(status)}")
        buffer = fw.allocate_pool(MemoryType.EfiBootServicesData, size)
        try:
            status = status_from_guest((yield call_guest(function, interface, path, int(boot_policy), size_ptr,
                                                         buffer)), fw.width)
            if status != Status.EFI_SUCCESS:
                raise EfiError(status, f"LoadFile gave {Status.name_of(status)}")
            return fw.mem.read(buffer, min(size, fw.mem.read_uintn(size_ptr)))
        finally:
            fw.free_pool(buffer)
    finally:
        fw.free_pool(size_ptr)
        fw.free_pool(path)


@service("StartImage", ImageHandle=HANDLE, ExitDataSize=POINTER, ExitData=POINTER)
def StartImage(fw, handle, size_ptr, data_ptr):
    loaded = fw.images.get(handle)
    if loaded is None or loaded.started:
        return Status.EFI_INVALID_PARAMETER
    if loaded.load_status != Status.EFI_SUCCESS:  # EDK2's CoreStartImage: the image's LoadImageStatus
        return Result(loaded.load_status, note=refusal(fw, loaded.verification))
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
        tcg2.exit_boot_services(fw, succeeded=False)
        return Status.EFI_INVALID_PARAMETER
    tcg2.exit_boot_services(fw, succeeded=True)
    table.signal_group(guids.EVENT_GROUP_EXIT_BOOT_SERVICES)
    yield from table.run_notifications()
    fw.state.boot_services_active = False
    # The spec has the firmware clear the boot-time members of the system table.
    update_system_table(fw, BootServices=0, ConsoleInHandle=0, ConIn=0, ConsoleOutHandle=0, ConOut=0,
                        StandardErrorHandle=0, StdErr=0)
    return Status.EFI_SUCCESS
