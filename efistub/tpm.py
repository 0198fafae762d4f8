"""The TPM behind EFI_TCG2_PROTOCOL: efistub's own model, or swtpm.

Both give the firmware the same few operations: the PCR banks, extend, read the PCRs, and
send a TPM 2.0 command (SubmitCommand). A TPM starts as after TPM2_Startup(TPM_SU_CLEAR) on a
PC client platform: PCRs 0-16 and 23 are zero, PCRs 17-22 (the dynamic root of trust's, reset
only by a D-RTM event) are all ones.

- ``ModelTpm`` (``--tpm model``): a SHA-256 bank of 24 PCRs in Python. It answers the TPM 2.0
  commands boot loaders send (TPM2_PCR_Read, TPM2_GetCapability for PCRs and TPM properties,
  TPM2_GetRandom) and any other with a TPM 2.0 response code, such as TPM_RC_COMMAND_CODE.
- ``SwTpm`` (``--tpm swtpm``): the swtpm program (Debian's swtpm package), started for the run in
  socket mode on a fresh state in a temporary folder; every command goes to it over its Unix
  socket, extends are TPM2_PCR_Extend. Its banks are what it has allocated (a fresh swtpm: SHA-1,
  SHA-256, SHA-384 and SHA-512).
"""

from __future__ import annotations

import hashlib
import os
import time
import weakref
from typing import TYPE_CHECKING

from construct import ConstructError

from .errors import InputError
from .layouts import tpm2

if TYPE_CHECKING:
    import socket

PCR_COUNT = 24
DRTM_PCRS = range(17, 23)  # reset to all ones at TPM2_Startup on a PC client platform
MAX_BUFFER = 4096  # MaxCommandSize and MaxResponseSize of the model


class TpmError(Exception):
    """The TPM could not be reached or refused an extend: the firmware's EFI_DEVICE_ERROR."""


def reset_value(pcr: int, size: int) -> bytes:
    return (b"\xff" if pcr in DRTM_PCRS else b"\0") * size


def extend(value: bytes, digest: bytes, algorithm: int) -> bytes:
    """PCR extend: the new value is H(old value || digest)."""
    return hashlib.new(tpm2.HASHES[algorithm][0], value + digest).digest()


def computable(algorithm: int) -> bool:
    """Whether efistub can hash with this TPM algorithm (hashlib has it)."""
    return algorithm in tpm2.HASHES and tpm2.HASHES[algorithm][0] in hashlib.algorithms_available


def response(code: int, tag: int = tpm2.ST_NO_SESSIONS, body: bytes = b"") -> bytes:
    return tpm2.Message.build(dict(tag=tag, code=code, body=body))


def response_code(raw: bytes) -> int | None:
    try:
        return tpm2.Header.parse(raw).code
    except ConstructError:
        return None


class ModelTpm:
    """efistub's TPM: one SHA-256 bank of 24 PCRs; TPM 2.0 commands answered in Python."""

    kind = "model"
    MANUFACTURER = int.from_bytes(b"EFIS", "big")  # TPM_PT_MANUFACTURER, four characters as TPMs give it
    VENDOR_STRINGS = (b"efis", b"tub ", b"TPM ", b"\0\0\0\0")

    def __init__(self, random):
        self.random = random  # a DeterministicRandom: TPM2_GetRandom depends only on --seed
        self.banks = [tpm2.ALG_SHA256]  # allocated, in TPM_CAP_PCRS order
        self.implemented = [tpm2.ALG_SHA256]
        self.max_command = self.max_response = MAX_BUFFER
        self.manufacturer = self.MANUFACTURER
        self.pcrs = {alg: [reset_value(i, tpm2.HASHES[alg][1]) for i in range(PCR_COUNT)] for alg in self.banks}
        self.update_counter = 0

    def extend(self, pcr: int, digests: dict[int, bytes]) -> None:
        for alg, digest in digests.items():
            if alg in self.pcrs:
                self.pcrs[alg][pcr] = extend(self.pcrs[alg][pcr], digest, alg)
        self.update_counter += 1

    def read_all(self) -> dict[int, list[bytes]]:
        return {alg: list(values) for alg, values in self.pcrs.items()}

    def close(self) -> None:
        pass

    # -- TPM 2.0 commands ------------------------------------------------------------------------
    def properties(self) -> dict[int, int]:
        """The TPM properties TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES) reports."""
        strings = [int.from_bytes(s, "big") for s in self.VENDOR_STRINGS]
        return {
            tpm2.PT_FAMILY_INDICATOR: int.from_bytes(b"2.0\0", "big"), tpm2.PT_LEVEL: 0, tpm2.PT_REVISION: 159,
            tpm2.PT_DAY_OF_YEAR: 1, tpm2.PT_YEAR: 2025, tpm2.PT_MANUFACTURER: self.manufacturer,
            tpm2.PT_VENDOR_STRING_1: strings[0], tpm2.PT_VENDOR_STRING_2: strings[1],
            tpm2.PT_VENDOR_STRING_3: strings[2], tpm2.PT_VENDOR_STRING_4: strings[3],
            tpm2.PT_VENDOR_TPM_TYPE: 0, tpm2.PT_FIRMWARE_VERSION_1: 0x00010000, tpm2.PT_FIRMWARE_VERSION_2: 0,
            tpm2.PT_INPUT_BUFFER: 1024, tpm2.PT_PCR_COUNT: PCR_COUNT, tpm2.PT_PCR_SELECT_MIN: tpm2.PCR_SELECT_MAX,
            tpm2.PT_MAX_COMMAND_SIZE: self.max_command, tpm2.PT_MAX_RESPONSE_SIZE: self.max_response,
            tpm2.PT_MAX_DIGEST: max(tpm2.HASHES[alg][1] for alg in self.implemented),
            tpm2.PT_PERMANENT: 0, tpm2.PT_STARTUP_CLEAR: 0x80000007,  # phEnable, shEnable, ehEnable, phEnableNV
        }

    def submit(self, command: bytes) -> bytes:
        """The response to a TPM 2.0 command; never an exception (malformed commands get a code)."""
        if len(command) < tpm2.Header.sizeof():
            return response(tpm2.RC_COMMAND_SIZE)
        header = tpm2.Header.parse(command)
        if header.tag not in (tpm2.ST_NO_SESSIONS, tpm2.ST_SESSIONS):
            return response(tpm2.RC_BAD_TAG)
        if header.size != len(command):
            return response(tpm2.RC_COMMAND_SIZE)
        handler = {tpm2.CC_PCR_Read: self._pcr_read, tpm2.CC_GetCapability: self._get_capability,
                   tpm2.CC_GetRandom: self._get_random}.get(header.code)
        if handler is None:
            return response(tpm2.RC_COMMAND_CODE)
        if header.tag == tpm2.ST_SESSIONS:  # the model keeps no sessions: none of them is loaded
            return response(tpm2.RC_REFERENCE_S0)
        parameters = command[tpm2.Header.sizeof():]
        try:
            return handler(parameters)
        except (ConstructError, IndexError):
            return response(tpm2.parameter_error(tpm2.RC_INSUFFICIENT, 1))

    def _pcr_read(self, parameters: bytes) -> bytes:
        selections = tpm2.PcrSelectionList.parse(parameters)
        if len(tpm2.PcrSelectionList.build(selections)) != len(parameters):
            return response(tpm2.parameter_error(tpm2.RC_SIZE, 1))
        out, digests = [], []
        for selection in selections:
            if selection.hash not in self.implemented:
                return response(tpm2.parameter_error(tpm2.RC_HASH, 1))
            if selection.sizeofSelect > tpm2.PCR_SELECT_MAX:
                return response(tpm2.parameter_error(tpm2.RC_VALUE, 1))
            bitmap = bytearray(selection.sizeofSelect)
            bank = self.pcrs.get(selection.hash)
            for pcr in range(8 * selection.sizeofSelect):
                wanted = selection.pcrSelect[pcr // 8] >> (pcr % 8) & 1
                if wanted and bank is not None and pcr < PCR_COUNT and len(digests) < tpm2.MAX_DIGESTS_PER_READ:
                    bitmap[pcr // 8] |= 1 << (pcr % 8)
                    digests.append(list(bank[pcr]))
            out.append(dict(hash=selection.hash, sizeofSelect=selection.sizeofSelect, pcrSelect=bytes(bitmap)))
        body = (self.update_counter.to_bytes(4, "big") + tpm2.PcrSelectionList.build(out)
                + tpm2.DigestList.build(digests))
        return response(tpm2.RC_SUCCESS, body=body)

    def _get_capability(self, parameters: bytes) -> bytes:
        if len(parameters) != tpm2.GetCapabilityCommand.sizeof():
            return response(tpm2.parameter_error(tpm2.RC_SIZE, 1) if len(parameters) > tpm2.GetCapabilityCommand.sizeof()
                            else tpm2.parameter_error(tpm2.RC_INSUFFICIENT, 1))
        request = tpm2.GetCapabilityCommand.parse(parameters)
        if request.capability == tpm2.CAP_PCRS:
            selections = [dict(hash=alg, sizeofSelect=tpm2.PCR_SELECT_MAX,
                               pcrSelect=(b"\xff" * tpm2.PCR_SELECT_MAX if alg in self.banks
                                          else bytes(tpm2.PCR_SELECT_MAX)))
                          for alg in self.implemented]
            data = tpm2.PcrSelectionList.build(selections)
            more = tpm2.NO
        elif request.capability == tpm2.CAP_TPM_PROPERTIES:
            table = sorted(self.properties().items())
            after = [(p, v) for p, v in table if p >= request.property]
            count = min(request.propertyCount, tpm2.MAX_TPM_PROPERTIES)
            chosen = after[:count]
            data = tpm2.TaggedPropertyList.build([dict(property=p, value=v) for p, v in chosen])
            more = tpm2.YES if len(after) > len(chosen) else tpm2.NO
        else:  # the capabilities a boot loader asks for are the ones above; the model has no others
            return response(tpm2.parameter_error(tpm2.RC_VALUE, 1))
        body = tpm2.Bool.build(more) + request.capability.to_bytes(4, "big") + data
        return response(tpm2.RC_SUCCESS, body=body)

    def _get_random(self, parameters: bytes) -> bytes:
        if len(parameters) != tpm2.GetRandomCommand.sizeof():
            return response(tpm2.parameter_error(tpm2.RC_SIZE if parameters else tpm2.RC_INSUFFICIENT, 1))
        wanted = tpm2.GetRandomCommand.parse(parameters).bytesRequested
        size = min(wanted, max(tpm2.HASHES[alg][1] for alg in self.implemented))  # at most one digest's worth
        return response(tpm2.RC_SUCCESS, body=tpm2.Digest2B.build(list(self.random.bytes(size))))


SWTPM_START_TIMEOUT = 10.0
SWTPM_IO_TIMEOUT = 30.0


class SwTpm:
    """swtpm in socket mode, started for one run on a fresh state; TPM 2.0 over its Unix socket."""

    kind = "swtpm"

    def __init__(self):
        import shutil  # these here: a run with efistub's model TPM starts no process and opens no socket
        import subprocess
        import tempfile

        program = shutil.which("swtpm")
        if program is None:
            raise InputError("--tpm swtpm", "swtpm is not installed (Debian package swtpm)")
        self.folder = tempfile.mkdtemp(prefix="efistub-swtpm-")
        path = os.path.join(self.folder, "socket")
        log = open(os.path.join(self.folder, "log"), "wb")
        try:
            self.process = subprocess.Popen(
                [program, "socket", "--tpm2", "--tpmstate", f"dir={self.folder}",
                 "--server", f"type=unixio,path={path}", "--flags", "not-need-init,startup-clear"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        self._finalizer = weakref.finalize(self, _stop_swtpm, self.process, self.folder)
        self.socket = self._connect(path)
        self.implemented, self.banks = self._pcr_banks()
        properties = self._properties([tpm2.PT_MANUFACTURER, tpm2.PT_MAX_COMMAND_SIZE, tpm2.PT_MAX_RESPONSE_SIZE])
        self.manufacturer = properties.get(tpm2.PT_MANUFACTURER, 0)
        self.max_command = properties.get(tpm2.PT_MAX_COMMAND_SIZE, MAX_BUFFER)
        self.max_response = properties.get(tpm2.PT_MAX_RESPONSE_SIZE, MAX_BUFFER)

    def _connect(self, path: str) -> socket.socket:
        import socket

        deadline = time.monotonic() + SWTPM_START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.close()
                raise InputError("--tpm swtpm", f"swtpm exited with status {self.process.returncode} at its start")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(SWTPM_IO_TIMEOUT)
                sock.connect(path)
                return sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    self.close()
                    raise InputError("--tpm swtpm", f"swtpm did not open its socket in {SWTPM_START_TIMEOUT:g} s")
                time.sleep(0.02)

    def submit(self, command: bytes) -> bytes:
        """Send one command, return swtpm's response; TpmError when swtpm cannot be reached."""
        try:
            self.socket.sendall(command)
            raw = self._receive(tpm2.Header.sizeof())
            raw += self._receive(tpm2.Header.parse(raw).size - len(raw))
        except (OSError, ConstructError) as e:
            raise TpmError(f"swtpm: {e}") from None
        return raw

    def _receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            part = self.socket.recv(size - len(data))
            if not part:
                raise OSError("swtpm closed its socket")
            data += part
        return data

    def _command(self, code: int, body: bytes, tag: int = tpm2.ST_NO_SESSIONS) -> bytes:
        raw = self.submit(tpm2.Message.build(dict(tag=tag, code=code, body=body)))
        rc = tpm2.Header.parse(raw).code
        if rc != tpm2.RC_SUCCESS:
            raise TpmError(f"swtpm answered command 0x{code:x} with TPM response code 0x{rc:x}")
        return raw[tpm2.Header.sizeof():]

    def _pcr_banks(self) -> tuple[list[int], list[int]]:
        body = self._command(tpm2.CC_GetCapability, tpm2.GetCapabilityCommand.build(
            dict(capability=tpm2.CAP_PCRS, property=0, propertyCount=1)))
        selections = tpm2.PcrSelectionList.parse(body[1 + 4:])
        implemented = [s.hash for s in selections]
        return implemented, [s.hash for s in selections if any(s.pcrSelect)]

    def _properties(self, wanted: list[int]) -> dict[int, int]:
        found = {}
        for prop in wanted:
            body = self._command(tpm2.CC_GetCapability, tpm2.GetCapabilityCommand.build(
                dict(capability=tpm2.CAP_TPM_PROPERTIES, property=prop, propertyCount=1)))
            for entry in tpm2.TaggedPropertyList.parse(body[1 + 4:]):
                if entry.property == prop:
                    found[prop] = entry.value
        return found

    def extend(self, pcr: int, digests: dict[int, bytes]) -> None:
        """TPM2_PCR_Extend of every bank swtpm has allocated, with a password session (empty password)."""
        session = tpm2.PasswordSession.build(dict(sessionHandle=tpm2.RS_PW, nonce=[], sessionAttributes=0, hmac=[]))
        values = tpm2.DigestValues.build([dict(hashAlg=alg, digest=d) for alg, d in digests.items()])
        body = pcr.to_bytes(4, "big") + len(session).to_bytes(4, "big") + session + values
        self._command(tpm2.CC_PCR_Extend, body, tag=tpm2.ST_SESSIONS)

    def read_all(self) -> dict[int, list[bytes]]:
        """Every PCR of every allocated bank, read with TPM2_PCR_Read (at most 8 a command)."""
        out = {}
        for alg in self.banks:
            values = []
            for first in range(0, PCR_COUNT, tpm2.MAX_DIGESTS_PER_READ):
                bitmap = bytearray(tpm2.PCR_SELECT_MAX)
                for pcr in range(first, first + tpm2.MAX_DIGESTS_PER_READ):
                    bitmap[pcr // 8] |= 1 << (pcr % 8)
                body = self._command(tpm2.CC_PCR_Read, tpm2.PcrSelectionList.build(
                    [dict(hash=alg, sizeofSelect=tpm2.PCR_SELECT_MAX, pcrSelect=bytes(bitmap))]))
                rest = body[4:]  # pcrUpdateCounter
                rest = rest[len(tpm2.PcrSelectionList.build(tpm2.PcrSelectionList.parse(rest))):]
                values += [bytes(d) for d in tpm2.DigestList.parse(rest)]
            out[alg] = values
        return out

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
            self.socket = None
        self._finalizer()


def _stop_swtpm(process, folder: str) -> None:
    """End the swtpm this run started (by its own handle) and remove its state folder."""
    import shutil
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(folder, ignore_errors=True)


def open_tpm(kind: str, random):
    """The TPM of a run: ``model``, ``swtpm``, or None for ``none``."""
    if kind == "none":
        return None
    if kind == "model":
        return ModelTpm(random)
    if kind == "swtpm":
        return SwTpm()
    raise InputError("--tpm", f"unknown TPM {kind!r} (model, swtpm or none)")
