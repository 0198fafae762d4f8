#!/usr/bin/env python3
"""A Secure Boot chain against the same chain with Secure Boot off: shim 16.1 -> GRUB 2.06 -> the 6.12 kernel.

The ESP is built in a temporary folder from corpus files signed with sbsign (sbsigntool) and keys made
here: shim signed by a db key, GRUB and the kernel by a MOK key, MokList holding that key's certificate
(the store is a JSON store: the test's PK, KEK and db). Every run is one Machine.run() in this process, on
a fresh copy of the store; the rows alternate, --repeat times, and the table gives medians of the run's
own time (report.timing run_s: from the first instruction to the hand-off).

- off, linux: --no-secure-boot with grub.cfg's `linux`: GRUB's own x86 loader; the kernel's EFI stub
  never runs (GRUB exits boot services and jumps to the kernel).
- off, linuxefi: --no-secure-boot with `linuxefi`: the EFI handover, the kernel's stub runs (it
  decompresses the kernel) - the path GRUB takes with Secure Boot on, so the same chain.
- on, linuxefi: Secure Boot on (the store in user mode); `linux` takes the same path there.

Below the table, where the difference goes: efistub's own verification (image_verification.verify of
shim's image, timed around every call) and shim's SHIM_LOCK.Verify of the kernel as GRUB calls it (guest
code, timed from the probe's entry hook to its return hook).

    python3 benchmarks/secureboot.py [--corpus DIR] [--repeat N] [--json]
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from efistub import guids, image_verification, probe, secureboot, varstore  # noqa: E402
from efistub.machine import Machine  # noqa: E402
from efistub.variables import BOOTSERVICE_ACCESS, NON_VOLATILE, VariableStore  # noqa: E402

import _common

SHIM = "x86_64/shimx64.efi"
GRUB = "x86_64/2.06-13+deb12u2_grubx64.efi"
KERNEL = "x86_64/vmlinuz-6.12.117+deb13-amd64"
INITRD = "initrd/initrd-busybox.cpio.gz"
CMDLINE = "console=ttyS0 rdinit=/init"
TARGET = 1.3  # issue 12: the Secure Boot chain within 1.3x of the same chain with Secure Boot off
ROWS = {"off, linux": (False, "linux"), "off, linuxefi": (False, "linuxefi"), "on, linuxefi": (True, "linuxefi")}


def make_key(folder: Path, name: str) -> tuple[Path, Path, x509.Certificate]:
    key = rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"efistub benchmark {name}")])
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(start)
                   .not_valid_after(start + timedelta(days=3650)).sign(key, hashes.SHA256()))
    pem, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return pem, key_file, certificate


def sign(key: tuple, source: Path, target: Path) -> None:
    subprocess.run(["sbsign", "--key", str(key[1]), "--cert", str(key[0]), "--output", str(target), str(source)],
                   check=True, capture_output=True)


def make_chain(corpus: Path, folder: Path) -> tuple[Path, Path]:
    """The ESP (grub.cfg written per row) and the store."""
    keys = {name: make_key(folder, name) for name in ("PK", "KEK", "db", "mok")}
    esp = folder / "esp"
    (esp / "EFI" / "BOOT").mkdir(parents=True)
    sign(keys["db"], corpus / SHIM, esp / "EFI" / "BOOT" / "BOOTX64.EFI")
    sign(keys["mok"], corpus / GRUB, esp / "EFI" / "BOOT" / "grubx64.efi")
    sign(keys["mok"], corpus / KERNEL, esp / "vmlinuz")
    shutil.copy(corpus / INITRD, esp / "initrd.img")
    store = VariableStore()
    secureboot.enroll_keys(store, f"PK={keys['PK'][0]},KEK={keys['KEK'][0]},db={keys['db'][0]}")
    from virt.firmware.efi import guids as vguids
    from virt.firmware.efi import siglist

    mok = siglist.EfiSigDB()
    mok.add_cert_data(vguids.parse_str(str(guids.OVMF_ENROLL_DEFAULT_KEYS)),
                      keys["mok"][2].public_bytes(serialization.Encoding.PEM))
    store.set("MokList", guids.SHIM_LOCK, NON_VOLATILE | BOOTSERVICE_ACCESS, bytes(mok))
    path = folder / "vars.json"
    varstore.save(store, path)
    return esp, path


class Timers:
    """Seconds spent in efistub's verification and in the guest's SHIM_LOCK.Verify calls of one run."""

    def __init__(self):
        self.verification = 0.0
        self.shim_verify = 0.0
        self.shim_calls = 0
        self._entered: list[float] = []
        verify, entered, watch = image_verification.verify, probe.Probes._entered, probe.Probes.watch
        timers = self

        def timed_verify(*args, **kwargs):
            started = time.perf_counter()
            try:
                return verify(*args, **kwargs)
            finally:
                timers.verification += time.perf_counter() - started

        def timed_entered(self, *args):
            timers._entered.append(time.perf_counter())
            return entered(self, *args)

        def timed_watch(self, address, convention, count, on_call):
            def returned(arguments, result):
                timers.shim_verify += time.perf_counter() - timers._entered.pop()
                timers.shim_calls += 1
                on_call(arguments, result)
            return watch(self, address, convention, count, returned)

        image_verification.verify = timed_verify
        probe.Probes._entered, probe.Probes.watch = timed_entered, timed_watch
        self._restore = (verify, entered, watch)

    def close(self):
        image_verification.verify = self._restore[0]
        probe.Probes._entered, probe.Probes.watch = self._restore[1], self._restore[2]


def run(esp: Path, store: Path, folder: Path, secure: bool, loader: str) -> dict:
    initrd = "initrdefi" if loader == "linuxefi" else "initrd"
    (esp / "EFI" / "BOOT" / "grub.cfg").write_text(
        f"set timeout=0\nmenuentry efistub {{\n  {loader} /vmlinuz {CMDLINE}\n  {initrd} /initrd.img\n}}\n")
    copy = folder / "run.json"
    shutil.copy(store, copy)
    timers = Timers()
    try:
        report = Machine(str(esp / "EFI" / "BOOT" / "BOOTX64.EFI"), esp=str(esp), boot_path="\\EFI\\BOOT\\BOOTX64.EFI",
                         vars=str(copy), secure_boot=secure, timeout=300).run()
    finally:
        timers.close()
    if report.outcome != "handoff":
        raise SystemExit(f"secure boot {secure}, {loader}: {report.outcome} {report.fault or report.error}")
    return {"run_s": report.timing["run_s"], "cpu_s": report.timing["cpu_s"], "verification_s": timers.verification,
            "shim_verify_s": timers.shim_verify, "shim_verify_calls": timers.shim_calls}


def main() -> int:
    parser = _common.parser(__doc__, repeat=5)
    args = parser.parse_args()
    if shutil.which("sbsign") is None:
        raise SystemExit("sbsign is missing: install Debian's sbsigntool")
    samples: dict[str, list[dict]] = {name: [] for name in ROWS}
    with tempfile.TemporaryDirectory() as tmp:
        esp, store = make_chain(Path(args.corpus), Path(tmp))
        for _ in range(args.repeat):
            for name, (secure, loader) in ROWS.items():
                samples[name].append(run(esp, store, Path(tmp), secure, loader))
    medians = {name: {key: statistics.median(s[key] for s in rows) for key in rows[0]}
               for name, rows in samples.items()}
    if args.json:
        print(json.dumps({"repeat": args.repeat, "medians": medians}))
        return 0
    same = medians["off, linuxefi"]["run_s"]
    print(f"shim 16.1 -> GRUB 2.06 -> 6.12 x86_64 kernel to its hand-off, in-process run_s, median of {args.repeat}")
    same_cpu = medians["off, linuxefi"]["cpu_s"]
    print(f"{'Secure Boot, grub.cfg':<24}{'run s':>8}{'/ off':>8}{'cpu s':>8}{'/ off':>8}{'efistub verify ms':>19}"
          f"{'SHIM_LOCK.Verify s':>20}")
    for name, m in medians.items():
        calls = f" ({m['shim_verify_calls']:.0f} calls)" if m["shim_verify_calls"] else ""
        print(f"{name:<24}{m['run_s']:>8.2f}{m['run_s'] / same:>7.2f}x{m['cpu_s']:>8.2f}{m['cpu_s'] / same_cpu:>7.2f}x"
              f"{m['verification_s'] * 1000:>19.2f}{m['shim_verify_s']:>20.2f}{calls}")
    on = medians["on, linuxefi"]
    print(f"on / off (linuxefi): {on['run_s'] / same:.2f}x wall, {on['cpu_s'] / same_cpu:.2f}x CPU (target {TARGET}x); "
          f"without the guest's SHIM_LOCK.Verify time: {(on['run_s'] - on['shim_verify_s']) / same:.2f}x wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
