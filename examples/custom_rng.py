#!/usr/bin/env python3
"""A firmware protocol written in Python: an EFI_RNG_PROTOCOL that feeds the arm64 KASLR seed.

    python3 examples/custom_rng.py [path/to/arm64/vmlinuz]

The kernel's EFI stub asks the RNG for 8 bytes and puts them into /chosen/kaslr-seed;
this script shows the bytes it handed out and the seed the kernel receives.
"""

import os
import sys

import efistub

EFI_RNG_PROTOCOL = "3152bca5-eade-433d-862e-c01cdc291f44"


class CountingRng:
    """Hands out bytes 1, 2, 3, ... and remembers every request."""

    members = ["GetInfo", "GetRNG"]  # the protocol's function table, in order

    def __init__(self):
        self.next = 1
        self.given = []

    def GetInfo(self, ctx, this, size_ptr, list_ptr):
        return "EFI_UNSUPPORTED"  # the stub does not need the algorithm list

    def GetRNG(self, ctx, this, algorithm, length, value):
        data = bytes((self.next + i) & 0xFF for i in range(length))
        self.next += length
        ctx.write(value, data)
        self.given.append(data)
        return "EFI_SUCCESS"


def main() -> int:
    corpus = os.environ.get("EFISTUB_CORPUS", "../shared/corpus")
    image = sys.argv[1] if len(sys.argv) > 1 else os.path.join(corpus, "aarch64/vmlinuz-6.12.117+deb13-arm64")
    rng = CountingRng()
    machine = efistub.Machine(image, cmdline="console=ttyAMA0", rng=False)  # hide the built-in RNG
    machine.install_protocol(EFI_RNG_PROTOCOL, rng)
    report = machine.run()
    print(f"outcome: {report.outcome}")
    print(f"the RNG handed out: {[chunk.hex() for chunk in rng.given]}")
    seed = report.handoff["fdt"]["chosen"].get("kaslr-seed") if report.handoff else None
    print(f"/chosen/kaslr-seed: {seed:#018x}" if seed is not None else "no kaslr-seed")
    return 0 if report.outcome == "handoff" else 1


if __name__ == "__main__":
    sys.exit(main())
