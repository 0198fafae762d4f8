"""The TCG crypto-agile event log (EFI_TCG2_EVENT_LOG_FORMAT_TCG_2), as EDK2's Tcg2Dxe writes it:
the Spec ID event first (a TCG_PCR_EVENT, EV_NO_ACTION, zero SHA-1 digest), then TCG_PCR_EVENT2
entries with one digest for each active PCR bank. Also the reverse: a log's bytes decoded, for
reports, --save-tpm and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from construct import ConstructError

from . import device_path
from .guids import Guid
from .layouts import tcg, tpm2

# Tags of the EV_EVENT_TAG events the Linux EFI stub logs (drivers/firmware/efi/libstub/efistub.h)
INITRD_EVENT_TAG = 0x8F3B22EC
LOAD_OPTIONS_EVENT_TAG = 0x8F3B22ED
EVENT_TAGS = {INITRD_EVENT_TAG: "Linux initrd", LOAD_OPTIONS_EVENT_TAG: "Linux LoadOptions"}


@dataclass
class Event:
    pcr: int
    type: int
    digests: dict[int, bytes]  # TPM_ALG_ID -> digest, in bank order
    data: bytes
    offset: int = 0  # where its entry starts in the log

    def entry(self) -> bytes:
        """Its TCG_PCR_EVENT2 entry."""
        return (tcg.PcrEvent2Header.build(dict(PCRIndex=self.pcr, EventType=self.type))
                + tcg.DigestCount.build(len(self.digests))
                + b"".join(tcg.HashAlgorithm.build(alg) + digest for alg, digest in self.digests.items())
                + tcg.EventSize.build(len(self.data)) + self.data)


def spec_id_event(banks: list[int], uintn_size: int) -> bytes:
    """The log's first entry: TCG_PCR_EVENT with TCG_EfiSpecIDEventStruct (PFP §10.4.5.1)."""
    body = tcg.SpecIdEvent.build(dict(
        signature=tcg.SPEC_ID_SIGNATURE, platformClass=tcg.PLATFORM_CLASS_CLIENT,
        specVersionMinor=tcg.SPEC_VERSION_MINOR, specVersionMajor=tcg.SPEC_VERSION_MAJOR,
        specErrata=tcg.SPEC_ERRATA, uintnSize=uintn_size // 4, numberOfAlgorithms=len(banks)))
    body += b"".join(tcg.SpecIdAlgorithmSize.build(dict(algorithmId=alg, digestSize=tpm2.HASHES[alg][1]))
                     for alg in banks)
    body += bytes([0])  # vendorInfoSize
    header = tcg.PcrEvent.build(dict(PCRIndex=0, EventType=tcg.EV_NO_ACTION, Digest=bytes(tcg.SHA1_DIGEST_SIZE),
                                     EventSize=len(body)))
    return header + body


@dataclass
class EventLog:
    """The log of one run: its header, its events, and whether one did not fit (Truncated)."""

    banks: list[int]
    uintn_size: int
    capacity: int  # bytes of the log area (EDK2's PcdTcgLogAreaMinLen)
    header: bytes = b""
    events: list[Event] = field(default_factory=list)
    size: int = 0
    truncated: bool = False

    def __post_init__(self):
        self.header = spec_id_event(self.banks, self.uintn_size)
        self.size = len(self.header)

    def add(self, event: Event) -> bool:
        """Append ``event``; False (and Truncated from then on) when the log area has no room,
        or has had none before, as EDK2's TcgDxeLogEvent."""
        raw = event.entry()
        if self.truncated or self.size + len(raw) > self.capacity:
            self.truncated = True
            return False
        event.offset = self.size
        self.events.append(event)
        self.size += len(raw)
        return True

    def last_entry_offset(self) -> int:
        """The offset of the last entry (the Spec ID event while no other was logged)."""
        return self.events[-1].offset if self.events else 0

    def to_bytes(self) -> bytes:
        return self.header + b"".join(e.entry() for e in self.events)


class LogError(ValueError):
    """Bytes that are not a crypto-agile event log."""


def parse(raw: bytes) -> dict:
    """A crypto-agile log decoded: the Spec ID event's fields and the events (EventLog order)."""
    try:
        first = tcg.PcrEvent.parse(raw)
        start = tcg.PcrEvent.sizeof()
        spec = tcg.SpecIdEvent.parse(raw[start:])
    except ConstructError:
        raise LogError("shorter than a Spec ID event") from None
    if first.EventType != tcg.EV_NO_ACTION or spec.signature != tcg.SPEC_ID_SIGNATURE:
        raise LogError("its first event is not the Spec ID event (Spec ID Event03)")
    at = start + tcg.SpecIdEvent.sizeof()
    sizes = {}
    for _ in range(spec.numberOfAlgorithms):
        algorithm = tcg.SpecIdAlgorithmSize.parse(raw[at:])
        sizes[algorithm.algorithmId] = algorithm.digestSize
        at += tcg.SpecIdAlgorithmSize.sizeof()
    at = start + first.EventSize
    events = []
    while at < len(raw):
        try:
            head = tcg.PcrEvent2Header.parse(raw[at:])
            offset = at
            at += tcg.PcrEvent2Header.sizeof()
            count = tcg.DigestCount.parse(raw[at:])
            at += tcg.DigestCount.sizeof()
            digests = {}
            for _ in range(count):
                alg = tcg.HashAlgorithm.parse(raw[at:])
                at += tcg.HashAlgorithm.sizeof()
                if alg not in sizes:
                    raise LogError(f"event at {offset}: digest algorithm 0x{alg:x} is not in the Spec ID event")
                digests[alg] = raw[at:at + sizes[alg]]
                at += sizes[alg]
            size = tcg.EventSize.parse(raw[at:])
            at += tcg.EventSize.sizeof()
        except ConstructError:
            raise LogError(f"event at {offset} runs past the end of the log") from None
        if at + size > len(raw):
            raise LogError(f"event at {offset} runs past the end of the log")
        events.append(Event(head.PCRIndex, head.EventType, digests, raw[at:at + size], offset))
        at += size
    return {"spec_errata": spec.specErrata, "uintn_size": spec.uintnSize * 4, "digest_sizes": sizes,
            "events": events}


def replay(events: list[Event], banks: list[int]) -> dict[int, dict[int, bytes]]:
    """The PCR values the events give from a reset TPM: {alg: {pcr: value}} for the PCRs they touch."""
    from .tpm import extend, reset_value

    out: dict[int, dict[int, bytes]] = {alg: {} for alg in banks}
    for event in events:
        if event.type == tcg.EV_NO_ACTION:
            continue
        for alg, digest in event.digests.items():
            if alg in out:
                value = out[alg].get(event.pcr, reset_value(event.pcr, tpm2.HASHES[alg][1]))
                out[alg][event.pcr] = extend(value, digest, alg)
    return out


def describe(event: Event, uintn_size: int) -> dict:
    """One event as report data: PCR, type name, digests in hex, and its data decoded where its type says how."""
    out = {"pcr": event.pcr, "type": tcg.EVENT_TYPE_NAMES.get(event.type, f"0x{event.type:08x}"),
           "digests": {tpm2.HASHES.get(alg, (f"0x{alg:04x}",))[0]: d.hex() for alg, d in event.digests.items()},
           "size": len(event.data)}
    try:
        out.update(_decode(event, uintn_size))
    except (ConstructError, UnicodeDecodeError, ValueError):
        pass
    if "text" not in out and len(event.data) <= 64:
        out["data"] = event.data.hex()
    return out


def _decode(event: Event, uintn_size: int) -> dict:
    data = event.data
    if event.type in (tcg.EV_EFI_ACTION, tcg.EV_ACTION):
        return {"text": data.decode("ascii")}
    if event.type == tcg.EV_IPL:
        return {"text": _text(data)}
    if event.type == tcg.EV_EVENT_TAG:
        tag = tcg.TaggedEvent.parse(data)
        body = data[tcg.TaggedEvent.sizeof():tcg.TaggedEvent.sizeof() + tag.EventSize]
        return {"tag": f"0x{tag.EventId:08x}", "tag_name": EVENT_TAGS.get(tag.EventId), "text": _text(body)}
    if event.type in (tcg.EV_EFI_BOOT_SERVICES_APPLICATION, tcg.EV_EFI_BOOT_SERVICES_DRIVER,
                      tcg.EV_EFI_RUNTIME_SERVICES_DRIVER):
        layout = tcg.layouts(uintn_size).ImageLoadEvent
        load = layout.parse(data)
        path = data[layout.sizeof():layout.sizeof() + load.LengthOfDevicePath]
        return {"image": {"location": load.ImageLocationInMemory, "length": load.ImageLengthInMemory,
                          "link_time_address": load.ImageLinkTimeAddress,
                          "device_path": device_path.text(device_path.decode(path)) if path else None}}
    if event.type in (tcg.EV_EFI_VARIABLE_DRIVER_CONFIG, tcg.EV_EFI_VARIABLE_BOOT, tcg.EV_EFI_VARIABLE_BOOT2,
                      tcg.EV_EFI_VARIABLE_AUTHORITY):
        var = tcg.VariableData.parse(data)
        start = tcg.VariableData.sizeof()
        name = data[start:start + 2 * var.UnicodeNameLength].decode("utf-16-le")
        return {"variable": {"name": name, "vendor": Guid.from_bytes(var.VariableName).name,
                             "size": var.VariableDataLength}}
    return {}


def _text(data: bytes) -> str:
    """An event's description: UTF-16 with its NUL (systemd, Linux), or ASCII."""
    if len(data) >= 2 and len(data) % 2 == 0 and data[1:2] == b"\0":
        return data.decode("utf-16-le").rstrip("\0")
    return data.decode("ascii").rstrip("\0")
