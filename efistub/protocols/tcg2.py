"""Measured boot: EFI_TCG2_PROTOCOL (TCG EFI Protocol Specification, family 2.0, rev 1.22) over a TPM
(efistub.tpm: the model or swtpm), the crypto-agile event log, the final events table, and the
measurements the firmware itself makes, as EDK2's Tcg2Dxe and DxeTpm2MeasureBootLib make them.

Where the specification leaves room, the statuses are EDK2's (SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c).

What the firmware measures (docs/trust.md lists it):

- at the first ReadyToBoot, before the first image starts: SecureBoot, PK, KEK, db and dbx
  (EV_EFI_VARIABLE_DRIVER_CONFIG, PCR 7; absent ones with no data) and an EV_SEPARATOR in PCR 7,
  BootOrder and each Boot#### it names (EV_EFI_VARIABLE_BOOT, PCR 1; only the ones that exist),
  "Calling EFI Application from Boot Option" (EV_EFI_ACTION, PCR 4), EV_SEPARATOR in PCRs 0-6;
  at a later boot attempt "Returning from EFI Application from Boot Option" and "Calling ..." again;
- every image it loads: an application as EV_EFI_BOOT_SERVICES_APPLICATION in PCR 4, a driver as
  EV_EFI_BOOT_SERVICES_DRIVER or EV_EFI_RUNTIME_SERVICES_DRIVER in PCR 2, the digest being the PE
  image hash (efistub.pehash);
- ExitBootServices: "Exit Boot Services Invocation", then "... Returned with Success" or, for a stale
  map key, "... Returned with Failure" (EV_EFI_ACTION, PCR 5).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field

from .. import device_path, guids, pehash
from ..eventlog import Event, EventLog, describe, replay
from ..errors import InputError
from ..layouts import pe, tcg, tpm2
from ..memory import MemoryType, pages_for
from ..pehash import BadPeImage, NotPeImage, image_hash
from ..registry import POINTER, UINT32, UINT64, Result, service
from ..status import Status
from ..tpm import TpmError, computable, open_tpm, reset_value, response_code
from .interface import make_interface

LOG_AREA_SIZE = 0x10000  # EDK2's PcdTcgLogAreaMinLen
FINAL_AREA_SIZE = 0x8000  # EDK2's PcdTcg2FinalLogAreaLen: the final events table and its events
LOG_MEMORY = MemoryType.EfiACPIMemoryNVS  # as EDK2 allocates both with a TPM2 ACPI table of revision 4
HASH_CHUNK = 1 << 20
BANK_BITS = {tpm2.ALG_SHA1: tcg.BOOT_HASH_ALG_SHA1, tpm2.ALG_SHA256: tcg.BOOT_HASH_ALG_SHA256,
             tpm2.ALG_SHA384: tcg.BOOT_HASH_ALG_SHA384, tpm2.ALG_SHA512: tcg.BOOT_HASH_ALG_SHA512,
             tpm2.ALG_SM3_256: tcg.BOOT_HASH_ALG_SM3_256}
EVENT_SIZE = tcg.Tcg2Event.sizeof()
HEADER_SIZE = tcg.EventHeader.sizeof()
IMAGE_EVENTS = {pe.SUBSYSTEM_EFI_APPLICATION: (4, tcg.EV_EFI_BOOT_SERVICES_APPLICATION),
                pe.SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER: (2, tcg.EV_EFI_BOOT_SERVICES_DRIVER),
                pe.SUBSYSTEM_EFI_RUNTIME_DRIVER: (2, tcg.EV_EFI_RUNTIME_SERVICES_DRIVER)}
SECURE_BOOT_VARIABLES = (("SecureBoot", guids.GLOBAL_VARIABLE), ("PK", guids.GLOBAL_VARIABLE),
                         ("KEK", guids.GLOBAL_VARIABLE), ("db", guids.IMAGE_SECURITY_DATABASE),
                         ("dbx", guids.IMAGE_SECURITY_DATABASE))
COMMAND_NAMES = {tpm2.CC_PCR_Read: "TPM2_PCR_Read", tpm2.CC_GetCapability: "TPM2_GetCapability",
                 tpm2.CC_GetRandom: "TPM2_GetRandom", tpm2.CC_PCR_Extend: "TPM2_PCR_Extend",
                 tpm2.CC_Startup: "TPM2_Startup", tpm2.CC_PCR_Allocate: "TPM2_PCR_Allocate"}


@dataclass
class Tcg2:
    """The run's measured-boot state (fw.protocol_state["tcg2"])."""

    tpm: object
    log: EventLog
    log_area: int  # the event log in guest memory (EventLogLocation)
    final_table: int  # EFI_TCG2_FINAL_EVENTS_TABLE in guest memory
    supported: int  # HashAlgorithmBitmap
    active: int  # ActivePcrBanks
    interface: int = 0
    present: bool = True  # TPMPresentFlag: False after the TPM failed, as EDK2 disables it
    get_event_log_called: bool = False
    final_events: list = field(default_factory=list)
    final_size: int = 0
    final_truncated: bool = False
    extend_only: int = 0  # HashLogExtendEvent calls with EFI_TCG2_EXTEND_ONLY: extended, not logged
    boot_attempts: int = 0
    requested_banks: int | None = None  # SetActivePcrBanks: for a next boot the run does not have

    @property
    def banks(self) -> list[int]:
        return self.log.banks


def state(fw) -> Tcg2 | None:
    return fw.protocol_state.get("tcg2")


def install(fw) -> int | None:
    """EFI_TCG2_PROTOCOL over the run's TPM (--tpm), its event log with the Spec ID event and the final
    events table (a configuration table); None with --tpm none."""
    from ..firmware import DeterministicRandom

    device = open_tpm(fw.options.tpm, DeterministicRandom(fw.options.seed, b"efistub-tpm"))
    if device is None:
        return None
    usable = [alg for alg in device.implemented if alg in BANK_BITS and computable(alg)]
    banks = [alg for alg in device.banks if alg in usable]
    log = EventLog(banks, fw.width, LOG_AREA_SIZE)
    log_area = fw.allocate_pages(LOG_MEMORY, pages_for(LOG_AREA_SIZE))
    fw.mem.write(log_area, log.header.ljust(LOG_AREA_SIZE, b"\xff"))  # EDK2 fills the areas with 0xFF
    final = fw.allocate_pages(LOG_MEMORY, pages_for(FINAL_AREA_SIZE))
    fw.mem.write(final, tcg.FinalEventsTable.build(dict(Version=tcg.FINAL_EVENTS_TABLE_VERSION, NumberOfEvents=0))
                 .ljust(FINAL_AREA_SIZE, b"\xff"))
    fw.set_configuration_table(guids.TCG2_FINAL_EVENTS_TABLE, final)
    tcg2 = Tcg2(device, log, log_area, final, supported=_bitmap(usable), active=_bitmap(banks))
    fw.protocol_state["tcg2"] = tcg2
    tcg2.interface = make_interface(fw, "Tcg2", tcg.TCG2, fw.layout.function_table(tcg.TCG2, header=False))
    return fw.handles.install(None, guids.TCG2_PROTOCOL, tcg2.interface).address


def _bitmap(algorithms) -> int:
    bits = 0
    for alg in algorithms:
        bits |= BANK_BITS[alg]
    return bits


# -- logging ------------------------------------------------------------------------------------

def digests_of(tcg2: Tcg2, chunks) -> dict[int, bytes]:
    """The digest of the data in ``chunks`` in every active bank."""
    hashers = {alg: hashlib.new(tpm2.HASHES[alg][0]) for alg in tcg2.banks}
    for chunk in chunks:
        for hasher in hashers.values():
            hasher.update(chunk)
    return {alg: hasher.digest() for alg, hasher in hashers.items()}


def log_event(fw, tcg2: Tcg2, pcr: int, event_type: int, digests: dict[int, bytes] | None, data: bytes,
              extend: bool = True, log: bool = True) -> int:
    """Extend ``pcr`` with ``digests`` (unless ``extend`` is False) and log the event (unless ``log`` is
    False); once GetEventLog was called, in the final events table too. EFI_VOLUME_FULL when it did not
    fit in a log, EFI_DEVICE_ERROR when the TPM failed (the protocol then reports no TPM, as EDK2)."""
    if digests is None:  # EV_NO_ACTION: logged with zero digests, never extended
        digests = {alg: bytes(tpm2.HASHES[alg][1]) for alg in tcg2.banks}
    if extend:
        try:
            tcg2.tpm.extend(pcr, digests)
        except TpmError as e:
            tcg2.present = False
            fw.note(f"TPM extend of PCR {pcr} failed, the TPM is disabled: {e}")
            return Status.EFI_DEVICE_ERROR
    if not log:
        return Status.EFI_SUCCESS
    event = Event(pcr, event_type, digests, data)
    if not tcg2.log.add(event):
        return Status.EFI_VOLUME_FULL
    fw.mem.write(tcg2.log_area + event.offset, event.entry())
    if not tcg2.get_event_log_called:
        return Status.EFI_SUCCESS
    raw = event.entry()
    if tcg2.final_truncated or tcg.FinalEventsTable.sizeof() + tcg2.final_size + len(raw) > FINAL_AREA_SIZE:
        tcg2.final_truncated = True
        return Status.EFI_VOLUME_FULL
    fw.mem.write(tcg2.final_table + tcg.FinalEventsTable.sizeof() + tcg2.final_size, raw)
    tcg2.final_events.append(event)
    tcg2.final_size += len(raw)
    fw.mem.write_struct(tcg.FinalEventsTable, tcg2.final_table,
                        dict(Version=tcg.FINAL_EVENTS_TABLE_VERSION, NumberOfEvents=len(tcg2.final_events)))
    return Status.EFI_SUCCESS


def measure(fw, pcr: int, event_type: int, data: bytes, hashed: bytes | None = None) -> int | None:
    """A firmware measurement: extend ``pcr`` with the digest of ``hashed`` (default: the event data
    itself) and log the event. None when the run has no TPM."""
    tcg2 = state(fw)
    if tcg2 is None or not tcg2.present:
        return None
    return log_event(fw, tcg2, pcr, event_type, digests_of(tcg2, [data if hashed is None else hashed]), data)


def _measure_variable(fw, pcr: int, event_type: int, name: str, vendor, data: bytes, hash_all: bool) -> None:
    """UEFI_VARIABLE_DATA (PFP §10.2.3): the digest is of the whole event (EV_EFI_VARIABLE_DRIVER_CONFIG)
    or of the variable's data (EV_EFI_VARIABLE_BOOT), as EDK2's MeasureVariable."""
    event = tcg.VariableData.build(dict(VariableName=vendor.to_bytes(), UnicodeNameLength=len(name),
                                        VariableDataLength=len(data))) + name.encode("utf-16-le") + data
    measure(fw, pcr, event_type, event, None if hash_all else data)


def before_boot(fw) -> None:
    """What the firmware measures when it signals ReadyToBoot for a boot attempt (EDK2's OnReadyToBoot),
    before it loads the attempt's image."""
    tcg2 = state(fw)
    if tcg2 is None:
        return
    if tcg2.boot_attempts == 0:
        for name, vendor in SECURE_BOOT_VARIABLES:  # EDK2 measures these (and the separator) earlier in DXE
            variable = fw.variables.get(name, vendor)
            _measure_variable(fw, 7, tcg.EV_EFI_VARIABLE_DRIVER_CONFIG, name, vendor,
                              variable.data if variable else b"", hash_all=True)
        measure(fw, 7, tcg.EV_SEPARATOR, tcg.SEPARATOR_DATA)
        _measure_boot_variables(fw)
        measure(fw, 4, tcg.EV_EFI_ACTION, tcg.CALLING_EFI_APPLICATION)
        for pcr in range(7):
            measure(fw, pcr, tcg.EV_SEPARATOR, tcg.SEPARATOR_DATA)
    else:
        measure(fw, 4, tcg.EV_EFI_ACTION, tcg.RETURNING_FROM_EFI_APPLICATION)
        measure(fw, 4, tcg.EV_EFI_ACTION, tcg.CALLING_EFI_APPLICATION)
    tcg2.boot_attempts += 1


def _measure_boot_variables(fw) -> None:
    order = fw.variables.get("BootOrder", guids.GLOBAL_VARIABLE)
    if order is None:
        return
    _measure_variable(fw, 1, tcg.EV_EFI_VARIABLE_BOOT, "BootOrder", guids.GLOBAL_VARIABLE, order.data, False)
    for i in range(0, len(order.data) - 1, 2):
        name = f"Boot{int.from_bytes(order.data[i:i + 2], 'little'):04X}"
        option = fw.variables.get(name, guids.GLOBAL_VARIABLE)
        if option is not None:
            _measure_variable(fw, 1, tcg.EV_EFI_VARIABLE_BOOT, name, guids.GLOBAL_VARIABLE, option.data, False)


def image_loaded(fw, loaded, nodes: list | None) -> None:
    """The firmware measures every image it loads (EDK2's DxeTpm2MeasureBootHandler): ``nodes`` is the
    device path LoadImage was given (the boot manager's, for the images it loads)."""
    if state(fw) is not None:
        _measure_image(fw, loaded, list(nodes or []))


def _measure_image(fw, loaded, nodes: list) -> None:
    tcg2 = state(fw)
    image = loaded.image
    what = IMAGE_EVENTS.get(image.subsystem)
    if what is None or not tcg2.present:  # EDK2 measures applications and drivers only
        return
    try:
        digests = {alg: d for alg, d in zip(tcg2.banks, pehash.digests(image, [tpm2.HASHES[a][0] for a in
                                                                                tcg2.banks]).values())}
    except (NotPeImage, BadPeImage) as e:
        fw.note(f"{loaded.source}: not measured: {e}")
        return
    path = device_path.encode(nodes) if nodes else b""
    event = tcg.layouts(fw.width).ImageLoadEvent.build(dict(
        ImageLocationInMemory=loaded.base, ImageLengthInMemory=len(image.data),
        ImageLinkTimeAddress=image.image_base, LengthOfDevicePath=len(path))) + path
    log_event(fw, tcg2, *what, digests, event)


def exit_boot_services(fw, succeeded: bool) -> None:
    """EDK2's OnExitBootServices / OnExitBootServicesFailed: two EV_EFI_ACTION events in PCR 5."""
    measure(fw, 5, tcg.EV_EFI_ACTION, tcg.EXIT_BOOT_SERVICES_INVOCATION)
    measure(fw, 5, tcg.EV_EFI_ACTION, tcg.EXIT_BOOT_SERVICES_SUCCEEDED if succeeded
            else tcg.EXIT_BOOT_SERVICES_FAILED)


# -- the protocol --------------------------------------------------------------------------------

def _capability(tcg2: Tcg2) -> dict:
    return dict(Size=tcg.BootServiceCapability.sizeof(),
                StructureVersion=dict(zip(("Major", "Minor"), tcg.STRUCTURE_VERSION)),
                ProtocolVersion=dict(zip(("Major", "Minor"), tcg.PROTOCOL_VERSION)),
                HashAlgorithmBitmap=tcg2.supported, SupportedEventLogs=tcg.EVENT_LOG_FORMAT_TCG_2,
                TPMPresentFlag=int(tcg2.present), MaxCommandSize=min(tcg2.tpm.max_command, 0xFFFF),
                MaxResponseSize=min(tcg2.tpm.max_response, 0xFFFF), ManufacturerID=tcg2.tpm.manufacturer,
                NumberOfPCRBanks=bin(tcg2.supported).count("1"), ActivePcrBanks=tcg2.active)


@service("Tcg2.GetCapability", This=POINTER, ProtocolCapability=POINTER)
def GetCapability(fw, this, capability):
    """EFI_TCG2_BOOT_SERVICE_CAPABILITY; a caller's smaller Size gets the 1.0 structure (28 bytes, versions
    1.0) when it holds one, else EFI_BUFFER_TOO_SMALL with the size needed, as EDK2."""
    tcg2 = state(fw)
    if not this or not capability:
        return Status.EFI_INVALID_PARAMETER
    size = fw.mem.read(capability, 1)[0]
    value = _capability(tcg2)
    full = tcg.BootServiceCapability.sizeof()
    if size >= full:
        fw.mem.write_struct(tcg.BootServiceCapability, capability, value)
        return Status.EFI_SUCCESS
    if size >= tcg.CAPABILITY_SIZE_1_0:
        old = dict(Major=1, Minor=0)
        value.update(Size=tcg.CAPABILITY_SIZE_1_0, StructureVersion=old, ProtocolVersion=old)
        fw.mem.write(capability, tcg.BootServiceCapability.build(value)[:tcg.CAPABILITY_SIZE_1_0])
        return Result(Status.EFI_SUCCESS, note=f"Size {size}: the 1.0 structure ({tcg.CAPABILITY_SIZE_1_0} bytes)")
    fw.mem.write(capability, bytes([full]))
    return Result(Status.EFI_BUFFER_TOO_SMALL, note=f"Size {size}; the structure has {full} bytes")


@service("Tcg2.GetEventLog", This=POINTER, EventLogFormat=UINT32, EventLogLocation=POINTER,
         EventLogLastEntry=POINTER, EventLogTruncated=POINTER)
def GetEventLog(fw, this, log_format, location, last_entry, truncated):
    """The crypto-agile log only (EFI_TCG2_EVENT_LOG_FORMAT_TCG_2); events after the first call also go to
    the final events table."""
    tcg2 = state(fw)
    if not this:
        return Status.EFI_INVALID_PARAMETER
    if log_format not in (tcg.EVENT_LOG_FORMAT_TCG_1_2, tcg.EVENT_LOG_FORMAT_TCG_2):
        return Result(Status.EFI_INVALID_PARAMETER, note=f"unknown event log format {log_format}")
    if log_format != tcg.EVENT_LOG_FORMAT_TCG_2:
        return Result(Status.EFI_INVALID_PARAMETER, note="only the TCG 2 (crypto-agile) event log is supported")
    if not tcg2.present:
        values = (0, 0, 0)
    else:
        values = (tcg2.log_area, tcg2.log_area + tcg2.log.last_entry_offset(), int(tcg2.log.truncated))
    if location:
        fw.mem.write_u64(location, values[0])
    if last_entry:
        fw.mem.write_u64(last_entry, values[1])
    if truncated:
        fw.mem.write(truncated, bytes([values[2]]))
    tcg2.get_event_log_called = True
    return Status.EFI_SUCCESS


@service("Tcg2.HashLogExtendEvent", This=POINTER, Flags=UINT64, DataToHash=UINT64, DataToHashLen=UINT64,
         EfiTcgEvent=POINTER)
def HashLogExtendEvent(fw, this, flags, data, length, event):
    tcg2 = state(fw)
    if not this or not event:
        return Status.EFI_INVALID_PARAMETER
    header = fw.mem.read_struct(tcg.Tcg2Event, event)
    kind, pcr = header.Header.EventType, header.Header.PCRIndex
    if kind != tcg.EV_NO_ACTION and not data:
        return Result(Status.EFI_INVALID_PARAMETER, note="DataToHash is NULL")
    if not tcg2.present:
        return Status.EFI_DEVICE_ERROR
    problem = _event_problem(header)
    if problem:
        return Result(Status.EFI_INVALID_PARAMETER, note=problem)
    size = header.Size - 4 - header.Header.HeaderSize
    # data that cannot fit in the log is not read: the extend happens, the log is full
    body = fw.mem.read(event + 4 + header.Header.HeaderSize, size) if size <= LOG_AREA_SIZE else b""
    log = not flags & tcg.EXTEND_ONLY
    if flags & tcg.PE_COFF_IMAGE:
        try:
            hashes = image_hash(_read_guest(fw, data, length), [tpm2.HASHES[a][0] for a in tcg2.banks])
        except NotPeImage as e:
            return Result(Status.EFI_UNSUPPORTED, note=f"PE_COFF_IMAGE: {e}")
        except BadPeImage as e:
            return Result(Status.EFI_INVALID_PARAMETER, note=f"PE_COFF_IMAGE: {e}")
        digests = dict(zip(tcg2.banks, hashes.values()))
    elif kind == tcg.EV_NO_ACTION:
        digests = None
    else:
        digests = digests_of(tcg2, _guest_chunks(fw, data, length))
    extend = digests is not None
    if not log:
        tcg2.extend_only += 1
    elif size > LOG_AREA_SIZE:  # an event larger than the whole log: extended, never logged
        status = log_event(fw, tcg2, pcr, kind, digests, b"", log=False) if extend else Status.EFI_SUCCESS
        if status != Status.EFI_SUCCESS:
            return status
        tcg2.log.truncated = True
        return Result(Status.EFI_VOLUME_FULL, note=f"an event of {size} bytes does not fit in the event log")
    status = log_event(fw, tcg2, pcr, kind, digests, body, extend=extend, log=log)
    if status == Status.EFI_VOLUME_FULL:
        return Result(status, note="the event log is full: the PCR was extended, the event not logged")
    return status


def _event_problem(header) -> str | None:
    """What makes an EFI_TCG2_EVENT invalid (EFI_INVALID_PARAMETER), or None."""
    h = header.Header
    if h.HeaderSize != HEADER_SIZE:
        return f"Header.HeaderSize is {h.HeaderSize}, not sizeof(EFI_TCG2_EVENT_HEADER) = {HEADER_SIZE}"
    if h.HeaderVersion != tcg.EVENT_HEADER_VERSION:
        return f"Header.HeaderVersion is {h.HeaderVersion}, not {tcg.EVENT_HEADER_VERSION}"
    if header.Size < h.HeaderSize + 4:
        return f"Size {header.Size} is smaller than the header ({h.HeaderSize + 4} bytes)"
    if h.PCRIndex > tcg.MAX_PCR_INDEX:
        if h.EventType == tcg.EV_NO_ACTION:
            return f"PCRIndex {h.PCRIndex}: an EV_NO_ACTION extend of an NV index, which efistub's TPM has not"
        return f"PCRIndex {h.PCRIndex} is above {tcg.MAX_PCR_INDEX}"
    return None


def _guest_chunks(fw, address: int, size: int):
    if size:
        fw.mem.check(address, size, "read")
    for offset in range(0, size, HASH_CHUNK):
        yield fw.mem.read(address + offset, min(HASH_CHUNK, size - offset))


def _read_guest(fw, address: int, size: int) -> bytes:
    return b"".join(_guest_chunks(fw, address, size))


@service("Tcg2.SubmitCommand", This=POINTER, InputParameterBlockSize=UINT32, InputParameterBlock=POINTER,
         OutputParameterBlockSize=UINT32, OutputParameterBlock=POINTER)
def SubmitCommand(fw, this, in_size, command, out_size, output):
    """A TPM 2.0 command to the TPM; its response, whatever its response code, is EFI_SUCCESS."""
    tcg2 = state(fw)
    if not this or not in_size or not command or not out_size or not output:
        return Status.EFI_INVALID_PARAMETER
    if not tcg2.present:
        return Status.EFI_DEVICE_ERROR
    if in_size > tcg2.tpm.max_command:
        return Result(Status.EFI_INVALID_PARAMETER, note=f"a command of {in_size} bytes; the TPM takes at most "
                                                         f"{tcg2.tpm.max_command}")
    if out_size > tcg2.tpm.max_response:
        return Result(Status.EFI_INVALID_PARAMETER, note=f"an output block of {out_size} bytes; the TPM's "
                                                         f"MaxResponseSize is {tcg2.tpm.max_response} (as EDK2)")
    raw = fw.mem.read(command, in_size)
    try:
        answer = tcg2.tpm.submit(raw)
    except TpmError as e:
        return Result(Status.EFI_DEVICE_ERROR, note=str(e))
    code = int.from_bytes(raw[6:10], "big") if len(raw) >= tpm2.Header.sizeof() else None
    rc = response_code(answer)
    what = COMMAND_NAMES.get(code, f"command 0x{code:x}" if code is not None else "a command shorter than its header")
    note = f"{what}: {tpm2.RC_NAMES.get(rc, f'0x{rc:x}' if rc is not None else 'no response')}"
    if len(answer) > out_size:
        return Result(Status.EFI_BUFFER_TOO_SMALL, note=f"{note}; the response has {len(answer)} bytes")
    fw.mem.write(output, answer)
    return Result(Status.EFI_SUCCESS, note=note)


@service("Tcg2.GetActivePcrBanks", This=POINTER, ActivePcrBanks=POINTER)
def GetActivePcrBanks(fw, this, banks):
    if not banks:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write_u32(banks, state(fw).active)
    return Status.EFI_SUCCESS


@service("Tcg2.SetActivePcrBanks", This=POINTER, ActivePcrBanks=UINT32)
def SetActivePcrBanks(fw, this, banks):
    """A request the firmware would carry out at the next boot (a physical-presence operation, as EDK2);
    an efistub run has no next boot, so nothing changes in this one."""
    tcg2 = state(fw)
    if not banks:
        return Result(Status.EFI_INVALID_PARAMETER, note="at least one bank must be active")
    if banks & ~tcg2.supported:
        return Result(Status.EFI_INVALID_PARAMETER, note=f"banks 0x{banks:x} are not all supported "
                                                         f"(HashAlgorithmBitmap 0x{tcg2.supported:x})")
    tcg2.requested_banks = None if banks == tcg2.active else banks
    if tcg2.requested_banks is None:
        return Status.EFI_SUCCESS
    return Result(Status.EFI_SUCCESS, note=f"banks 0x{banks:x} requested for the next boot, which a run does not have")


@service("Tcg2.GetResultOfSetActivePcrBanks", This=POINTER, OperationPresent=POINTER, Response=POINTER)
def GetResultOfSetActivePcrBanks(fw, this, present, response):
    """The result of a SetActivePcrBanks of the previous boot: a run has none, so no operation is present."""
    if not present or not response:
        return Status.EFI_INVALID_PARAMETER
    fw.mem.write_u32(present, 0)
    fw.mem.write_u32(response, 0)
    return Status.EFI_SUCCESS


# -- after the run --------------------------------------------------------------------------------

def finish(fw, save_path: str | None) -> dict | None:
    """The report's ``tpm`` entry; writes --save-tpm FILE (and its binary log); stops the TPM."""
    tcg2 = state(fw) if fw is not None else None
    if tcg2 is None:
        return None
    try:
        values = tcg2.tpm.read_all()
        error = None
    except TpmError as e:
        values, error = {}, str(e)
    raw = tcg2.log.to_bytes()
    out = {
        "tpm": tcg2.tpm.kind, "banks": [tpm2.HASHES[a][0] for a in tcg2.banks],
        "pcrs": {tpm2.HASHES[alg][0]: {str(i): v.hex() for i, v in enumerate(pcrs)
                                       if v != reset_value(i, len(v))}
                 for alg, pcrs in values.items() if alg in tcg2.banks},
        "events": len(tcg2.log.events), "log_size": len(raw), "truncated": tcg2.log.truncated,
        "final_events": len(tcg2.final_events), "extend_only": tcg2.extend_only,
        "requested_banks": tcg2.requested_banks, "error": error, "saved": None, "save_error": None,
    }
    if save_path is not None:
        try:
            out["saved"] = save(tcg2, values, raw, save_path, fw.width)
        except OSError as e:
            out["save_error"] = f"{e.filename or save_path}: {e.strerror or e}"
    tcg2.tpm.close()
    return out


def log_file(save_path: str) -> str:
    """Where --save-tpm FILE puts the binary event log: beside FILE, its extension replaced by .bin."""
    return os.path.splitext(save_path)[0] + ".bin"


def check_save_path(save_path: str) -> None:
    """A one-line InputError for a --save-tpm FILE that cannot be written (before the run)."""
    folder = os.path.dirname(os.path.abspath(save_path))
    if log_file(save_path) == os.path.abspath(save_path) or save_path.endswith(".bin"):
        raise InputError(save_path, "--save-tpm FILE is the JSON; the binary event log goes beside it as "
                                    "FILE.bin: name it something like tpm.json")
    if not os.path.isdir(folder):
        raise InputError(save_path, f"--save-tpm: no such folder {folder}")


def save(tcg2: Tcg2, values: dict, raw: bytes, save_path: str, width: int) -> dict:
    """The JSON (PCR values of every bank, the events decoded, the log in base64) and the binary log."""
    binary = log_file(save_path)
    document = {
        "tpm": tcg2.tpm.kind,
        "banks": [tpm2.HASHES[a][0] for a in tcg2.banks],
        "pcrs": {tpm2.HASHES[alg][0]: {str(i): v.hex() for i, v in enumerate(pcrs)}
                 for alg, pcrs in values.items() if alg in tcg2.banks},
        "event_log": {"format": "TCG_2", "size": len(raw), "truncated": tcg2.log.truncated,
                      "file": os.path.basename(binary), "base64": base64.b64encode(raw).decode("ascii")},
        "events": [describe(e, width) for e in tcg2.log.events],
        "replayed": {tpm2.HASHES[alg][0]: {str(pcr): v.hex() for pcr, v in sorted(pcrs.items())}
                     for alg, pcrs in replay(tcg2.log.events, tcg2.banks).items()},
    }
    with open(binary, "wb") as f:
        f.write(raw)
    with open(save_path, "w") as f:
        f.write(json.dumps(document, indent=2) + "\n")
    return {"json": os.path.abspath(save_path), "log": os.path.abspath(binary)}
