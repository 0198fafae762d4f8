#!/usr/bin/env python3
"""Run an EFI image and print what it called: the calls, then the usage summary.

    python3 examples/trace_kernel.py IMAGE [--cmdline TEXT]
"""

import argparse
import json
import sys

import efistub


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--cmdline", default="")
    args = parser.parse_args()
    report = efistub.Machine(args.image, cmdline=args.cmdline).run()
    for call in report.calls:
        print(f"{call.seq:4} {call.service}({', '.join(f'{k}={v}' for k, v in call.args.items())}) -> {call.status}")
    print(f"outcome: {report.outcome}")
    print(json.dumps(report.usage["services"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
