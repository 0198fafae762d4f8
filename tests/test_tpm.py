"""Measured boot: the TPM model (extend math, TPM 2.0 commands answered and refused), the event log
(built, parsed back, replayed; read by tpm2_eventlog), the PE image hash, EFI_TCG2_PROTOCOL's contract
(called directly on the firmware of a finished run, as tests/test_text_protocols.py does), what the
firmware and the Linux stub measure, swtpm, and the target: systemd-stub 257 running a UKI leaves PCR
11 at the value systemd-measure predicts.

Tools from Debian, each test skipping without its own: swtpm, tpm2-tools (tpm2_eventlog),
osslsigncode, binutils (objcopy), systemd (systemd-measure).
"""

import base64
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import corpus_file
from direct_calls import finished_run, put
from efistub import eventlog
from efistub.eventlog import Event, EventLog
from efistub.firmware import DeterministicRandom
from efistub.layouts import tcg, tpm2
from efistub.machine import Machine
from efistub.memory import ucs2
from efistub.pehash import BadPeImage, NotPeImage, image_hash
from efistub.protocols import tcg2 as p
from efistub.registry import Result
from efistub.status import Status
from efistub.tpm import ModelTpm, extend
from pe_builder import objcopy, ukify

GUESTS = Path(__file__).parent / "guests"
KERNEL = "x86_64/vmlinuz-6.12.117+deb13-amd64"
INITRD = "initrd/initrd-busybox.cpio.gz"
SHA256 = tpm2.ALG_SHA256
SYSTEMD_MEASURE = next((path for path in ("/usr/lib/systemd/systemd-measure", "/lib/systemd/systemd-measure")
                        if os.access(path, os.X_OK)), None)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def command(code: int, body: bytes = b"", tag: int = tpm2.ST_NO_SESSIONS, size: int | None = None) -> bytes:
    size = tpm2.Header.sizeof() + len(body) if size is None else size
    return tpm2.Header.build(dict(tag=tag, size=size, code=code)) + body


def rc(raw: bytes) -> int:
    return tpm2.Header.parse(raw).code


def pcr_read(pcrs, alg=SHA256) -> bytes:
    bitmap = bytearray(3)
    for pcr in pcrs:
        bitmap[pcr // 8] |= 1 << (pcr % 8)
    return command(tpm2.CC_PCR_Read, tpm2.PcrSelectionList.build([dict(hash=alg, sizeofSelect=3,
                                                                       pcrSelect=bytes(bitmap))]))


def parse_pcr_read(raw: bytes):
    body = raw[tpm2.Header.sizeof() + 4:]
    selections = tpm2.PcrSelectionList.parse(body)
    digests = tpm2.DigestList.parse(body[len(tpm2.PcrSelectionList.build(selections)):])
    return selections, [bytes(d) for d in digests]


# -- the model -------------------------------------------------------------------------------------

def model(seed: int = 0) -> ModelTpm:
    return ModelTpm(DeterministicRandom(seed, b"efistub-tpm"))


def test_extend_is_sha256_of_the_old_value_and_the_digest():
    tpm = model()
    expected = bytes(32)
    for data in (b"one", b"two", b"three"):
        tpm.extend(11, {SHA256: sha256(data)})
        expected = sha256(expected + sha256(data))
    values = tpm.read_all()[SHA256]
    assert values[11] == expected
    assert all(values[i] == bytes(32) for i in range(24) if i not in (11, *range(17, 23)))
    assert all(values[i] == b"\xff" * 32 for i in range(17, 23))  # the D-RTM PCRs reset to all ones
    assert extend(bytes(32), sha256(tcg.SEPARATOR_DATA), SHA256).hex() == \
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"  # PCR 0-6 after one separator


def test_pcr_read_answers_at_most_eight_pcrs_and_says_which():
    tpm = model()
    tpm.extend(4, {SHA256: sha256(b"x")})
    answer = tpm.submit(pcr_read(range(24)))
    assert rc(answer) == tpm2.RC_SUCCESS
    selections, digests = parse_pcr_read(answer)
    assert [s.pcrSelect for s in selections] == [b"\xff\x00\x00"] and len(digests) == 8
    assert digests[4] == tpm.read_all()[SHA256][4]
    selections, digests = parse_pcr_read(tpm.submit(pcr_read([17, 23])))
    assert selections[0].pcrSelect == b"\x00\x00\x82" and digests == [b"\xff" * 32, bytes(32)]
    assert int.from_bytes(answer[10:14], "big") == 1  # pcrUpdateCounter: one extend so far


def test_get_capability_gives_the_pcr_banks_and_the_tpm_properties():
    tpm = model()
    body = tpm2.GetCapabilityCommand.build(dict(capability=tpm2.CAP_PCRS, property=0, propertyCount=1))
    answer = tpm.submit(command(tpm2.CC_GetCapability, body))
    assert rc(answer) == 0 and answer[10] == tpm2.NO
    assert [(s.hash, s.pcrSelect) for s in tpm2.PcrSelectionList.parse(answer[15:])] == [(SHA256, b"\xff" * 3)]
    body = tpm2.GetCapabilityCommand.build(dict(capability=tpm2.CAP_TPM_PROPERTIES, property=tpm2.PT_FIXED,
                                                propertyCount=3))
    answer = tpm.submit(command(tpm2.CC_GetCapability, body))
    found = tpm2.TaggedPropertyList.parse(answer[15:])
    assert answer[10] == tpm2.YES  # more properties follow
    assert [(x.property, x.value) for x in found] == [(tpm2.PT_FAMILY_INDICATOR, 0x322E3000), (tpm2.PT_LEVEL, 0),
                                                      (tpm2.PT_REVISION, 159)]
    body = tpm2.GetCapabilityCommand.build(dict(capability=tpm2.CAP_TPM_PROPERTIES,
                                                property=tpm2.PT_MAX_COMMAND_SIZE, propertyCount=2))
    found = tpm2.TaggedPropertyList.parse(tpm.submit(command(tpm2.CC_GetCapability, body))[15:])
    assert [(x.property, x.value) for x in found] == [(tpm2.PT_MAX_COMMAND_SIZE, 4096),
                                                      (tpm2.PT_MAX_RESPONSE_SIZE, 4096)]


def test_get_random_depends_on_the_seed_and_gives_at_most_a_digest():
    def random_bytes(tpm, n):
        answer = tpm.submit(command(tpm2.CC_GetRandom, n.to_bytes(2, "big")))
        assert rc(answer) == 0
        return bytes(tpm2.Digest2B.parse(answer[10:]))

    a, b, c = model(1), model(1), model(2)
    assert random_bytes(a, 16) == random_bytes(b, 16) != random_bytes(c, 16)
    assert len(random_bytes(a, 16)) == 16 and len(random_bytes(a, 1000)) == 32


@pytest.mark.parametrize("raw, expected", [
    (b"\x80\x01\x00\x00", tpm2.RC_COMMAND_SIZE),  # shorter than a header
    (command(tpm2.CC_GetRandom, b"\x00\x08", size=100), tpm2.RC_COMMAND_SIZE),  # size is not the length
    (command(tpm2.CC_GetRandom, b"\x00\x08", tag=0x1234), tpm2.RC_BAD_TAG),
    (command(tpm2.CC_Startup, b"\x00\x00"), tpm2.RC_COMMAND_CODE),  # a real command the model does not have
    (command(0x20000001), tpm2.RC_COMMAND_CODE),
    (command(tpm2.CC_PCR_Extend, bytes(20), tag=tpm2.ST_SESSIONS), tpm2.RC_COMMAND_CODE),
    (command(tpm2.CC_GetRandom, bytes(11), tag=tpm2.ST_SESSIONS), tpm2.RC_REFERENCE_S0),
    (command(tpm2.CC_GetRandom), tpm2.parameter_error(tpm2.RC_INSUFFICIENT, 1)),
    (command(tpm2.CC_GetRandom, bytes(3)), tpm2.parameter_error(tpm2.RC_SIZE, 1)),
    (command(tpm2.CC_PCR_Read, b"\x00\x00\x00\x01\x00\x0b"), tpm2.parameter_error(tpm2.RC_INSUFFICIENT, 1)),
    (pcr_read([0], alg=tpm2.ALG_SHA1), tpm2.parameter_error(tpm2.RC_HASH, 1)),
    (command(tpm2.CC_GetCapability, tpm2.GetCapabilityCommand.build(
        dict(capability=tpm2.CAP_ALGS, property=0, propertyCount=1))), tpm2.parameter_error(tpm2.RC_VALUE, 1)),
    (command(tpm2.CC_GetCapability, bytes(8)), tpm2.parameter_error(tpm2.RC_INSUFFICIENT, 1)),
])
def test_the_model_refuses_with_tpm_response_codes(raw, expected):
    answer = model().submit(raw)
    assert rc(answer) == expected and len(answer) == tpm2.Header.sizeof()


def test_random_commands_always_get_a_response():
    tpm, rng = model(), random.Random(7)
    codes = [tpm2.CC_PCR_Read, tpm2.CC_GetCapability, tpm2.CC_GetRandom, rng.randrange(1 << 32)]
    for _ in range(3000):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        raw = command(rng.choice(codes), body, tag=rng.choice([tpm2.ST_NO_SESSIONS, tpm2.ST_SESSIONS, 0]))
        if rng.random() < 0.2:
            raw = raw[:rng.randrange(len(raw))]
        answer = tpm.submit(raw)
        assert tpm2.Header.parse(answer).size == len(answer)


# -- the event log and the image hash ---------------------------------------------------------------

def test_the_log_starts_with_the_spec_id_event_and_parses_back():
    log = EventLog([SHA256], 8, 4096)
    first = tcg.PcrEvent.parse(log.header)
    spec = tcg.SpecIdEvent.parse(log.header[tcg.PcrEvent.sizeof():])
    assert (first.PCRIndex, first.EventType, first.Digest) == (0, tcg.EV_NO_ACTION, bytes(20))
    assert spec.signature == b"Spec ID Event03\0" and (spec.specVersionMajor, spec.specVersionMinor) == (2, 0)
    assert spec.uintnSize == 2 and spec.numberOfAlgorithms == 1
    assert log.header[-5:] == tcg.SpecIdAlgorithmSize.build(dict(algorithmId=SHA256, digestSize=32)) + b"\0"
    events = [Event(4, tcg.EV_EFI_ACTION, {SHA256: sha256(b"a")}, b"a"),
              Event(9, tcg.EV_EVENT_TAG, {SHA256: sha256(b"b")}, b"tagged")]
    for event in events:
        assert log.add(event)
    parsed = eventlog.parse(log.to_bytes())
    assert parsed["digest_sizes"] == {SHA256: 32} and parsed["uintn_size"] == 8
    assert [(e.pcr, e.type, e.digests, e.data, e.offset) for e in parsed["events"]] == \
        [(e.pcr, e.type, e.digests, e.data, e.offset) for e in events]
    assert log.last_entry_offset() == events[1].offset
    replayed = eventlog.replay(parsed["events"], [SHA256])[SHA256]
    assert replayed == {4: extend(bytes(32), sha256(b"a"), SHA256), 9: extend(bytes(32), sha256(b"b"), SHA256)}


def test_a_full_log_is_truncated_from_then_on():
    log = EventLog([SHA256], 4, len(EventLog([SHA256], 4, 0).header) + 60)
    assert log.add(Event(0, tcg.EV_SEPARATOR, {SHA256: bytes(32)}, bytes(4)))  # 50 bytes
    assert not log.add(Event(0, tcg.EV_SEPARATOR, {SHA256: bytes(32)}, bytes(4)))
    assert log.truncated and not log.add(Event(0, tcg.EV_SEPARATOR, {SHA256: bytes(32)}, b""))


@pytest.mark.parametrize("image", ["x86_64/HelloWorld.efi", "x86_64/shimx64.efi", KERNEL,
                                   "ia32/7.20-1_memtest86+ia32.efi", "aarch64/257.13-1~deb13u1_linuxaa64.efi.stub"])
def test_the_image_hash_is_the_authenticode_digest(corpus, tmp_path, image):
    """osslsigncode signs a copy; the digest it signs is our hash of the copy (and of the original, when
    signing did not pad it): the certificate table and its directory entry are left out."""
    if shutil.which("osslsigncode") is None:
        pytest.skip("osslsigncode is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=efistub test"], check=True, capture_output=True)
    original = corpus_file(corpus, image)
    signed = tmp_path / "signed.efi"
    subprocess.run(["osslsigncode", "sign", "-certs", str(cert), "-key", str(key), "-h", "sha256",
                    "-in", str(original), "-out", str(signed)], check=True, capture_output=True)
    out = subprocess.run(["osslsigncode", "verify", "-in", str(signed)], capture_output=True, text=True).stdout
    digest = re.search(r"Current message digest\s*:\s*([0-9A-F]+)", out).group(1).lower()
    assert image_hash(signed.read_bytes(), ["sha256"])["sha256"].hex() == digest
    if original.stat().st_size % 8 == 0:  # else osslsigncode pads the image before its certificate table
        assert image_hash(original.read_bytes(), ["sha256"])["sha256"].hex() == digest


def test_what_is_not_a_pe_image():
    data = (GUESTS / "x86_64" / "hello.efi").read_bytes()
    with pytest.raises(NotPeImage):
        image_hash(b"not an image" * 10, ["sha256"])
    e_lfanew = int.from_bytes(data[0x3C:0x40], "little")
    with pytest.raises(NotPeImage):
        image_hash(data[:e_lfanew] + b"XX" + data[e_lfanew + 2:], ["sha256"])  # no PE signature
    with pytest.raises(BadPeImage):
        image_hash(data[:0x200], ["sha256"])  # the sections run past the end


# -- EFI_TCG2_PROTOCOL, called directly ------------------------------------------------------------

@pytest.fixture
def fw():
    """A fresh finished run per test (the protocol's state changes); its machine lives while the test runs."""
    machine = finished_run()
    yield machine.fw


def status(result) -> int:
    return result.value if isinstance(result, Result) else result


def event(pcr: int, kind: int, data: bytes, header_size: int = 14, version: int = 1, size: int | None = None) -> bytes:
    size = 4 + header_size + len(data) if size is None else size
    header = tcg.EventHeader.build(dict(HeaderSize=header_size, HeaderVersion=version, PCRIndex=pcr, EventType=kind))
    return size.to_bytes(4, "little") + header[:header_size].ljust(header_size, b"\0") + data


def extend_event(fw, pcr, kind, data, hashed, flags=0, **header):
    this = p.state(fw).interface
    where = put(fw, hashed) if hashed else 0
    return status(p.HashLogExtendEvent(fw, this, flags, where, len(hashed), put(fw, event(pcr, kind, data, **header))))


def pcr_values(fw):
    return p.state(fw).tpm.read_all()[SHA256]


def test_get_capability_and_its_sizes(fw):
    this = p.state(fw).interface
    buffer = put(fw, bytes([36]) + bytes(40))
    assert status(p.GetCapability(fw, this, buffer)) == Status.EFI_SUCCESS
    cap = fw.mem.read_struct(tcg.BootServiceCapability, buffer)
    assert (cap.Size, cap.StructureVersion.Major, cap.StructureVersion.Minor, cap.ProtocolVersion.Minor) == (36, 1, 1, 1)
    assert (cap.HashAlgorithmBitmap, cap.ActivePcrBanks, cap.NumberOfPCRBanks) == (tcg.BOOT_HASH_ALG_SHA256,) * 2 + (1,)
    assert cap.SupportedEventLogs == tcg.EVENT_LOG_FORMAT_TCG_2 and cap.TPMPresentFlag == 1
    assert (cap.MaxCommandSize, cap.MaxResponseSize, cap.ManufacturerID) == (4096, 4096, int.from_bytes(b"EFIS", "big"))
    old = put(fw, bytes([28]) + b"\xee" * 40)  # a caller of the 1.0 structure
    assert status(p.GetCapability(fw, this, old)) == Status.EFI_SUCCESS
    raw = fw.mem.read(old, 29)
    assert raw[:5] == bytes([28, 1, 0, 1, 0]) and raw[16] == 1 and raw[28] == 0xEE  # nothing written past 28 bytes
    small = put(fw, bytes([10]) + b"\xee" * 40)
    assert status(p.GetCapability(fw, this, small)) == Status.EFI_BUFFER_TOO_SMALL
    assert fw.mem.read(small, 2) == bytes([36, 0xEE])
    assert status(p.GetCapability(fw, this, 0)) == Status.EFI_INVALID_PARAMETER
    assert status(p.GetCapability(fw, 0, buffer)) == Status.EFI_INVALID_PARAMETER


def test_get_event_log_gives_the_log_in_guest_memory(fw):
    this, state = p.state(fw).interface, p.state(fw)
    out = put(fw, bytes(24))
    assert status(p.GetEventLog(fw, this, tcg.EVENT_LOG_FORMAT_TCG_2, out, out + 8, out + 16)) == Status.EFI_SUCCESS
    location, last, truncated = fw.mem.read_u64(out), fw.mem.read_u64(out + 8), fw.mem.read(out + 16, 1)[0]
    assert location == state.log_area and truncated == 0
    size = state.log.size
    parsed = eventlog.parse(fw.mem.read(location, size))
    assert last == location + parsed["events"][-1].offset
    kinds = [(e.pcr, e.type) for e in parsed["events"]]
    assert kinds[:6] == [(7, tcg.EV_EFI_VARIABLE_DRIVER_CONFIG)] * 5 + [(7, tcg.EV_SEPARATOR)]
    assert kinds[6:14] == [(4, tcg.EV_EFI_ACTION)] + [(pcr, tcg.EV_SEPARATOR) for pcr in range(7)]
    assert kinds[14] == (4, tcg.EV_EFI_BOOT_SERVICES_APPLICATION)
    assert fw.mem.read(location + size, 4) == b"\xff" * 4  # the rest of the area, as EDK2 fills it
    # every event from now on is in the final events table too
    assert extend_event(fw, 8, tcg.EV_IPL, b"late", b"late") == Status.EFI_SUCCESS
    table = fw.mem.read_struct(tcg.FinalEventsTable, state.final_table)
    assert (table.Version, table.NumberOfEvents) == (1, 1)
    entry = state.final_events[0].entry()
    assert fw.mem.read(state.final_table + 16, len(entry)) == entry and state.final_events[0].data == b"late"
    assert status(p.GetEventLog(fw, this, tcg.EVENT_LOG_FORMAT_TCG_1_2, out, out, out)) == Status.EFI_INVALID_PARAMETER
    assert status(p.GetEventLog(fw, this, 7, out, out, out)) == Status.EFI_INVALID_PARAMETER
    assert status(p.GetEventLog(fw, this, tcg.EVENT_LOG_FORMAT_TCG_2, 0, 0, 0)) == Status.EFI_SUCCESS


def test_hash_log_extend_event_extends_and_logs(fw):
    before = pcr_values(fw)[8]
    logged = len(p.state(fw).log.events)
    assert extend_event(fw, 8, tcg.EV_IPL, b"description", b"the data") == Status.EFI_SUCCESS
    assert pcr_values(fw)[8] == extend(before, sha256(b"the data"), SHA256)
    last = p.state(fw).log.events[-1]
    assert (last.pcr, last.type, last.digests, last.data) == (8, tcg.EV_IPL, {SHA256: sha256(b"the data")},
                                                              b"description")
    # EFI_TCG2_EXTEND_ONLY: extended, not logged
    assert extend_event(fw, 8, tcg.EV_IPL, b"x", b"more", flags=tcg.EXTEND_ONLY) == Status.EFI_SUCCESS
    assert pcr_values(fw)[8] == extend(extend(before, sha256(b"the data"), SHA256), sha256(b"more"), SHA256)
    assert len(p.state(fw).log.events) == logged + 1
    # EV_NO_ACTION: logged with zero digests, never extended, DataToHash may be NULL
    value = pcr_values(fw)[8]
    assert extend_event(fw, 8, tcg.EV_NO_ACTION, b"note", b"") == Status.EFI_SUCCESS
    assert pcr_values(fw)[8] == value and p.state(fw).log.events[-1].digests == {SHA256: bytes(32)}


def test_pe_coff_image_measures_the_image_hash(fw):
    data = (GUESTS / "x86_64" / "hello.efi").read_bytes()
    before = pcr_values(fw)[14]
    assert extend_event(fw, 14, tcg.EV_EFI_BOOT_SERVICES_APPLICATION, b"", data, flags=tcg.PE_COFF_IMAGE) == 0
    digest = image_hash(data, ["sha256"])["sha256"]
    assert digest != sha256(data) and pcr_values(fw)[14] == extend(before, digest, SHA256)
    assert extend_event(fw, 14, tcg.EV_IPL, b"", b"no image here", flags=tcg.PE_COFF_IMAGE) == Status.EFI_UNSUPPORTED
    assert extend_event(fw, 14, tcg.EV_IPL, b"", data[:0x200], flags=tcg.PE_COFF_IMAGE) == \
        Status.EFI_INVALID_PARAMETER
    assert pcr_values(fw)[14] == extend(before, digest, SHA256)  # refused ones extend nothing


@pytest.mark.parametrize("header, problem", [
    (dict(header_size=12), "HeaderSize"),
    (dict(version=2), "HeaderVersion"),
    (dict(size=17), "Size"),
])
def test_event_headers_the_spec_does_not_allow(fw, header, problem):
    result = p.HashLogExtendEvent(fw, p.state(fw).interface, 0, put(fw, b"d"), 1,
                                  put(fw, event(8, tcg.EV_IPL, b"x", **header)))
    assert status(result) == Status.EFI_INVALID_PARAMETER and problem in result.note


def test_hash_log_extend_event_refusals(fw):
    this, before = p.state(fw).interface, pcr_values(fw)
    assert extend_event(fw, 24, tcg.EV_IPL, b"", b"d") == Status.EFI_INVALID_PARAMETER
    assert extend_event(fw, 24, tcg.EV_NO_ACTION, b"", b"") == Status.EFI_INVALID_PARAMETER  # NV index: none
    assert extend_event(fw, 8, tcg.EV_IPL, b"", b"") == Status.EFI_INVALID_PARAMETER  # DataToHash NULL
    assert status(p.HashLogExtendEvent(fw, this, 0, put(fw, b"d"), 1, 0)) == Status.EFI_INVALID_PARAMETER
    assert status(p.HashLogExtendEvent(fw, 0, 0, put(fw, b"d"), 1, put(fw, event(8, tcg.EV_IPL, b"")))) == \
        Status.EFI_INVALID_PARAMETER
    assert pcr_values(fw) == before


def test_a_full_log_still_extends_and_says_truncated(fw):
    this, state = p.state(fw).interface, p.state(fw)
    big = b"e" * (p.LOG_AREA_SIZE - state.log.size)  # just too large for what is left
    before = pcr_values(fw)[10]
    assert extend_event(fw, 10, tcg.EV_IPL, big, b"d") == Status.EFI_VOLUME_FULL
    assert pcr_values(fw)[10] == extend(before, sha256(b"d"), SHA256)
    out = put(fw, bytes(24))
    p.GetEventLog(fw, this, tcg.EVENT_LOG_FORMAT_TCG_2, out, out + 8, out + 16)
    assert fw.mem.read(out + 16, 1) == b"\x01"
    assert extend_event(fw, 10, tcg.EV_IPL, b"small", b"d") == Status.EFI_VOLUME_FULL  # truncated from then on
    huge = b"h" * (p.LOG_AREA_SIZE + 1)  # more than the whole log: never read, the PCR still extended
    assert extend_event(fw, 10, tcg.EV_IPL, huge, b"d") == Status.EFI_VOLUME_FULL
    assert pcr_values(fw)[10] == extend(extend(extend(before, *[sha256(b"d")] * 1, SHA256), sha256(b"d"), SHA256),
                                        sha256(b"d"), SHA256)


def test_submit_command(fw):
    this = p.state(fw).interface
    raw = pcr_read([0, 4, 7])
    cmd, out = put(fw, raw), put(fw, bytes(4096))
    result = p.SubmitCommand(fw, this, len(raw), cmd, 4096, out)
    assert status(result) == Status.EFI_SUCCESS and result.note == "TPM2_PCR_Read: TPM_RC_SUCCESS"
    answer = fw.mem.read(out, tpm2.Header.parse(fw.mem.read(out, 10)).size)
    assert parse_pcr_read(answer)[1] == [pcr_values(fw)[i] for i in (0, 4, 7)]
    startup = put(fw, command(tpm2.CC_Startup, b"\x00\x00"))
    result = p.SubmitCommand(fw, this, 12, startup, 64, out)
    assert status(result) == Status.EFI_SUCCESS and rc(fw.mem.read(out, 10)) == tpm2.RC_COMMAND_CODE
    assert result.note == "TPM2_Startup: TPM_RC_COMMAND_CODE"
    assert status(p.SubmitCommand(fw, this, len(raw), cmd, 20, out)) == Status.EFI_BUFFER_TOO_SMALL
    assert status(p.SubmitCommand(fw, this, 5000, cmd, 4096, out)) == Status.EFI_INVALID_PARAMETER
    assert status(p.SubmitCommand(fw, this, len(raw), cmd, 5000, out)) == Status.EFI_INVALID_PARAMETER
    for args in ((0, cmd, 64, out), (len(raw), 0, 64, out), (len(raw), cmd, 0, out), (len(raw), cmd, 64, 0)):
        assert status(p.SubmitCommand(fw, this, *args)) == Status.EFI_INVALID_PARAMETER


def test_pcr_banks(fw):
    this = p.state(fw).interface
    out = put(fw, bytes(8))
    assert status(p.GetActivePcrBanks(fw, this, out)) == 0 and fw.mem.read_u32(out) == tcg.BOOT_HASH_ALG_SHA256
    assert status(p.GetActivePcrBanks(fw, this, 0)) == Status.EFI_INVALID_PARAMETER
    assert status(p.SetActivePcrBanks(fw, this, 0)) == Status.EFI_INVALID_PARAMETER
    assert status(p.SetActivePcrBanks(fw, this, tcg.BOOT_HASH_ALG_SHA1)) == Status.EFI_INVALID_PARAMETER
    assert status(p.SetActivePcrBanks(fw, this, tcg.BOOT_HASH_ALG_SHA256)) == Status.EFI_SUCCESS
    fw.mem.write(out, b"\xee" * 8)
    assert status(p.GetResultOfSetActivePcrBanks(fw, this, out, out + 4)) == Status.EFI_SUCCESS
    assert fw.mem.read(out, 8) == bytes(8)  # no operation from a previous boot: a run has none
    assert status(p.GetResultOfSetActivePcrBanks(fw, this, 0, out)) == Status.EFI_INVALID_PARAMETER


# -- whole runs ------------------------------------------------------------------------------------

def test_a_kernel_run_is_measured(corpus, tmp_path):
    cmdline = "console=ttyS0 rdinit=/init efistub-tpm"
    initrd = corpus_file(corpus, INITRD).read_bytes()
    kernel = corpus_file(corpus, KERNEL)
    report = Machine(str(kernel), cmdline=cmdline, initrd=initrd, save_tpm=str(tmp_path / "tpm.json")).run()
    assert report.outcome == "handoff"
    saved = json.loads((tmp_path / "tpm.json").read_text())
    log = (tmp_path / "tpm.bin").read_bytes()
    assert base64.b64decode(saved["event_log"]["base64"]) == log and saved["event_log"]["file"] == "tpm.bin"
    events = eventlog.parse(log)["events"]
    named = [(e.pcr, tcg.EVENT_TYPE_NAMES[e.type]) for e in events]
    image = events[14]
    assert named[14] == (4, "EV_EFI_BOOT_SERVICES_APPLICATION")
    assert image.digests[SHA256] == image_hash(kernel.read_bytes(), ["sha256"])["sha256"]
    load = tcg.layouts(8).ImageLoadEvent.parse(image.data)
    assert load.ImageLengthInMemory == kernel.stat().st_size and load.LengthOfDevicePath == len(image.data) - 32
    # the Linux stub measures its LoadOptions and the initrd it loaded through LOAD_FILE2 into PCR 9
    tagged = [e for e in events if e.type == tcg.EV_EVENT_TAG]
    assert [(e.pcr, tcg.TaggedEvent.parse(e.data).EventId) for e in tagged] == [(9, eventlog.LOAD_OPTIONS_EVENT_TAG),
                                                                                  (9, eventlog.INITRD_EVENT_TAG)]
    assert tagged[0].digests[SHA256] == sha256(ucs2(cmdline)) and tagged[1].digests[SHA256] == sha256(initrd)
    assert named[-2:] == [(5, "EV_EFI_ACTION")] * 2
    assert [e.data for e in events[-2:]] == [tcg.EXIT_BOOT_SERVICES_INVOCATION, tcg.EXIT_BOOT_SERVICES_SUCCEEDED]
    # the report: PCRs that changed, as the log replays them
    tpm = report.tpm
    replayed = {str(pcr): v.hex() for pcr, v in eventlog.replay(events, [SHA256])[SHA256].items()}
    assert tpm["pcrs"]["sha256"] == replayed and sorted(map(int, replayed)) == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert tpm["events"] == len(events) and tpm["truncated"] is False and tpm["tpm"] == "model"
    assert saved["pcrs"]["sha256"]["9"] == replayed["9"] and saved["pcrs"]["sha256"]["17"] == "ff" * 32
    # the stub read the log after it measured: only the ExitBootServices events are in the final table
    assert tpm["final_events"] == 2
    tables = [t["name"] for t in report.handoff["configuration_tables"]]
    assert "EFI_TCG2_FINAL_EVENTS_TABLE_GUID" in tables and "LINUX_EFI_TPM_EVENT_LOG_GUID" in tables
    if shutil.which("tpm2_eventlog"):
        out = subprocess.run(["tpm2_eventlog", str(tmp_path / "tpm.bin")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        theirs = dict(re.findall(r"^\s+(\d+)\s+: 0x([0-9a-f]{64})$", out.stdout.split("pcrs:")[1], re.M))
        assert theirs == replayed and f"EventNum: {len(events)}" in out.stdout


def test_tpm2_eventlog_reads_the_binary_log(tmp_path):
    if shutil.which("tpm2_eventlog") is None:
        pytest.skip("tpm2_eventlog (tpm2-tools) is not installed")
    Machine(str(GUESTS / "x86_64" / "hello.efi"), save_tpm=str(tmp_path / "log.json")).run()
    out = subprocess.run(["tpm2_eventlog", str(tmp_path / "log.bin")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Spec ID Event03" in out.stdout and "EV_EFI_BOOT_SERVICES_APPLICATION" in out.stdout
    saved = json.loads((tmp_path / "log.json").read_text())
    assert f"4  : 0x{saved['pcrs']['sha256']['4']}" in out.stdout


def test_an_ia32_log_has_uintn_of_four_bytes(tmp_path):
    Machine(str(GUESTS / "ia32" / "hello.efi"), save_tpm=str(tmp_path / "t.json")).run()
    parsed = eventlog.parse((tmp_path / "t.bin").read_bytes())
    assert parsed["uintn_size"] == 4
    (image,) = [e for e in parsed["events"] if e.type == tcg.EV_EFI_BOOT_SERVICES_APPLICATION]
    load = tcg.layouts(4).ImageLoadEvent.parse(image.data)
    assert load.LengthOfDevicePath == len(image.data) - tcg.layouts(4).ImageLoadEvent.sizeof() > 0
    assert eventlog.describe(image, 4)["image"]["device_path"].endswith("\\hello.efi")


def test_without_a_tpm_there_is_no_tcg2_protocol():
    report = Machine(str(GUESTS / "x86_64" / "hello.efi"), tpm="none").run()
    assert report.tpm is None and report.to_dict()["tpm"] is None
    assert not any(c.service.startswith("Tcg2.") for c in report.calls)


@pytest.mark.parametrize("args, problem", [
    (["--save-tpm", "{tmp}/tpm.bin"], "the binary event log goes beside it"),
    (["--tpm", "none", "--save-tpm", "{tmp}/tpm.json"], "the run has no TPM"),
    (["--save-tpm", "{tmp}/missing/tpm.json"], "no such folder"),
])
def test_save_tpm_bad_input_is_one_line(tmp_path, args, problem):
    args = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUESTS / "x86_64" / "hello.efi"), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_summary_says_what_was_measured(tmp_path):
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUESTS / "x86_64" / "hello.efi"),
                             "--save-tpm", str(tmp_path / "t.json")], capture_output=True, text=True, timeout=60)
    line = next(line for line in result.stdout.splitlines() if line.startswith("tpm "))
    assert "model (sha256): 15 events, PCRs 0, 1, 2, 3, 4, 5, 6, 7 changed; saved to" in line


def test_swtpm_gets_the_same_measurements(corpus, tmp_path):
    """swtpm's own PCRs (read back with TPM2_PCR_Read) are what the log replays, in every bank it has; its
    SHA-256 bank ends as the model's."""
    if shutil.which("swtpm") is None:
        pytest.skip("swtpm is not installed")
    kernel, initrd = str(corpus_file(corpus, KERNEL)), corpus_file(corpus, INITRD).read_bytes()
    real = Machine(kernel, initrd=initrd, cmdline="console=ttyS0", tpm="swtpm",
                   save_tpm=str(tmp_path / "sw.json")).run()
    ours = Machine(kernel, initrd=initrd, cmdline="console=ttyS0").run()
    assert real.outcome == ours.outcome == "handoff" and real.tpm["tpm"] == "swtpm"
    saved = json.loads((tmp_path / "sw.json").read_text())
    assert "sha256" in saved["banks"] and len(saved["banks"]) > 1
    for bank, values in saved["replayed"].items():
        assert {pcr: saved["pcrs"][bank][pcr] for pcr in values} == values
    assert real.tpm["pcrs"]["sha256"] == ours.tpm["pcrs"]["sha256"]
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("efistub-swtpm-*"))  # its state folder is gone


# -- the target: systemd-stub 257's PCR 11 ---------------------------------------------------------

UKI_CMDLINE = "console=ttyS0 rdinit=/init efistub-uki"
UKI_OSREL = 'ID=efistub\nNAME="efistub test"\n'


def build_uki(corpus, folder: Path, keep_sbat: bool = False) -> tuple[Path, dict]:
    """A UKI as pe_builder.ukify lays one out (as for test_boot.py's), from the stub without its .sbat
    section: systemd-stub 257 measures .sbat into PCR 11, and systemd-measure 252 (Debian 12) knows no
    .sbat (it knows .linux, .osrel, .cmdline, .initrd, .splash, .dtb and .pcrpkey). The UKI has exactly
    the sections both know: .osrel, .cmdline, .linux, .initrd."""
    folder.mkdir()
    stub = folder / "stub.efi"
    original = corpus_file(corpus, "x86_64/257.13-1~deb13u1_linuxx64.efi.stub")
    if keep_sbat:
        shutil.copy(original, stub)
    else:
        subprocess.run([objcopy(), "--remove-section", ".sbat", str(original), str(stub)], check=True,
                       capture_output=True)
    (folder / "osrel").write_text(UKI_OSREL)
    (folder / "cmdline").write_text(UKI_CMDLINE)
    parts = {".osrel": folder / "osrel", ".cmdline": folder / "cmdline", ".linux": corpus_file(corpus, KERNEL),
             ".initrd": corpus_file(corpus, INITRD)}
    return ukify(stub, parts, folder / "uki.efi"), parts


def predicted_pcr11(parts: dict) -> str:
    """What systemd-measure 252 predicts for PCR 11 before any boot phase (--phase=, empty)."""
    if SYSTEMD_MEASURE is None:
        pytest.skip("systemd-measure is not installed (Debian's systemd package)")
    out = subprocess.run([SYSTEMD_MEASURE, "calculate", *(f"--{name[1:]}={path}" for name, path in parts.items()),
                          "--bank=sha256", "--phase=", "--json=short"], capture_output=True, text=True, check=True)
    (entry,) = json.loads(out.stdout)["sha256"]
    assert entry["pcr"] == 11
    return entry["hash"]


def by_pcr(events, pcr):
    return [e for e in events if e.pcr == pcr]


def test_systemd_stub_measures_the_uki_into_pcr11_as_systemd_measure_predicts(corpus, tmp_path):
    uki, parts = build_uki(corpus, tmp_path / "uki")
    machine = Machine(str(uki), save_tpm=str(tmp_path / "tpm.json"))
    report = machine.run()
    assert report.outcome == "handoff", report.fault or report.error
    events = eventlog.parse((tmp_path / "tpm.bin").read_bytes())["events"]
    assert report.tpm["pcrs"]["sha256"]["11"] == predicted_pcr11(parts)
    # the stub's events: each section's name (with its NUL), then its data, as EV_IPL, in the canonical order
    ipl = by_pcr(events, 11)
    assert all(e.type == tcg.EV_IPL for e in ipl)
    order = [".linux", ".osrel", ".cmdline", ".initrd"]
    assert [eventlog.describe(e, 8)["text"] for e in ipl] == [name for name in order for _ in (0, 1)]
    expected = []
    for name in order:
        expected += [sha256(name.encode() + b"\0"), sha256(Path(parts[name]).read_bytes())]
    assert [e.digests[SHA256] for e in ipl] == expected
    # the embedded .cmdline is measured into PCR 11 only: PCR 12 (command lines from outside) stays zero
    assert by_pcr(events, 12) == [] and "12" not in report.tpm["pcrs"]["sha256"]
    # the kernel the stub started is measured by the firmware (LoadImage from .linux), then measures its
    # LoadOptions (the stub's command line) and the initrd the stub serves (.initrd with the stub's own cpio)
    images = [e for e in events if e.type == tcg.EV_EFI_BOOT_SERVICES_APPLICATION]
    assert [e.digests[SHA256] for e in images] == [image_hash(uki.read_bytes(), ["sha256"])["sha256"],
                                                   image_hash(Path(parts[".linux"]).read_bytes(), ["sha256"])["sha256"]]
    load_options, initrd = by_pcr(events, 9)
    assert load_options.digests[SHA256] == sha256(ucs2(UKI_CMDLINE))
    bp = report.handoff["boot_params"]
    assert initrd.digests[SHA256] == sha256(machine.fw.mem.read(bp["ramdisk_image"], bp["ramdisk_size"]))


def test_a_command_line_from_outside_goes_to_pcr12_and_sbat_to_pcr11(corpus, tmp_path):
    """With Secure Boot off the stub takes LoadOptions over its .cmdline and measures them into PCR 12;
    with the stub's .sbat kept, 257 measures .sbat too, which systemd-measure 252 cannot predict."""
    uki, parts = build_uki(corpus, tmp_path / "with-sbat", keep_sbat=True)
    report = Machine(str(uki), cmdline="console=ttyS0 efistub-override", save_tpm=str(tmp_path / "t.json")).run()
    assert report.outcome == "handoff"
    events = eventlog.parse((tmp_path / "t.bin").read_bytes())["events"]
    (pcr12,) = by_pcr(events, 12)
    assert pcr12.type == tcg.EV_IPL and pcr12.digests[SHA256] == sha256(ucs2("console=ttyS0 efistub-override"))
    assert report.tpm["pcrs"]["sha256"]["12"] == extend(bytes(32), pcr12.digests[SHA256], SHA256).hex()
    names = [eventlog.describe(e, 8)["text"] for e in by_pcr(events, 11)]
    assert names[-2:] == [".sbat", ".sbat"]
    assert report.tpm["pcrs"]["sha256"]["11"] != predicted_pcr11(parts)
