"""The report of a run: what the guest printed and called, and how the run ended.

A Report is plain data. ``to_dict()`` gives the JSON document described in
docs/report.md (schema 1); the CLI renders the terminal summary from it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 2  # 2: images, files, stalled, calls[].image; variable_store and tpm (added within 2)
READABLE_SCHEMAS = (1, 2)  # what efistub diff compares
OUTCOMES = ("handoff", "exit", "reset", "stalled", "fault", "timeout", "error")


@dataclass
class Report:
    image: str
    arch: str
    outcome: str
    console: str = ""
    calls: list = field(default_factory=list)  # dispatch.Call records
    exit_status: str | None = None
    exit_data: str | None = None
    handoff: dict | None = None
    images: list = field(default_factory=list)  # the chain of images: services.image.LoadedImage.as_dict
    files: list = field(default_factory=list)  # files the guest opened on a volume
    fault: dict | None = None
    timeout: dict | None = None  # where a guest that ran out of time was
    stalled: dict | None = None  # what a guest waits for that can never come, and where
    reset: dict | None = None  # ResetSystem: type, status, data
    error: dict | None = None
    notes: list[str] = field(default_factory=list)
    image_info: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    variable_store: dict | None = None  # --vars: the store file, what was loaded, changed and saved
    secure_boot: dict | None = None  # the Secure Boot state at the end, with a store (secureboot.describe)
    tpm: dict | None = None  # --tpm: the PCRs that changed, the event log, --save-tpm (protocols.tcg2.finish)
    shim: dict | None = None  # SHIM_LOCK installed by a guest, and the Verify calls made of it (efistub.shim)
    platform: dict | None = None  # the board whose memory layout RAM copies: name, RAM ranges, reserved ranges
    engine: str = "stock"
    dispatch: str = "python"

    @property
    def services_called(self) -> Counter:
        return Counter(c.service for c in self.calls)

    @property
    def unimplemented(self) -> list[str]:
        return sorted({c.service for c in self.calls if c.unimplemented})

    @property
    def usage(self) -> dict:
        """Services, protocols, configuration tables and variables the run used (efistub.usage)."""
        from .usage import usage

        return usage([c.as_dict() for c in self.calls], self.handoff)

    @property
    def violations(self) -> list[dict]:
        return [c.as_dict() for c in self.calls if c.violation]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "image": self.image,
            "arch": self.arch,
            "outcome": self.outcome,
        }
        if self.outcome == "exit":
            out["exit_status"] = self.exit_status
            out["exit_data"] = self.exit_data
        out.update({
            "console": self.console,
            "calls": [c.as_dict() for c in self.calls],
            "usage": self.usage,
            "unimplemented": self.unimplemented,
            "violations": self.violations,
            "images": self.images,
            "files": self.files,
            "handoff": self.handoff,
            "fault": self.fault,
            "timeout": self.timeout,
            "stalled": self.stalled,
            "reset": self.reset,
            "error": self.error,
            "notes": self.notes,
            "image_info": self.image_info,
            "options": self.options,
            "variable_store": self.variable_store,
            "secure_boot": self.secure_boot,
            "tpm": self.tpm,
            "shim": self.shim,
            "platform": self.platform,
            "engine": self.engine,
            "dispatch": self.dispatch,
            "timing": self.timing,
        })
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def from_run(platform, options, outcome: str, details: dict) -> Report:
    """The report of a finished run: what the platform recorded and how the run ended."""
    import os

    from . import shim
    from .linux.handoff import describe
    from .protocols.simple_file_system import files_report
    from .status import Status

    fw, image = platform.fw, platform.image
    calls = platform.dispatcher.calls
    chain = fw.image_chain
    ranges = [(i, loaded.base, loaded.base + loaded.pages * 4096) for i, loaded in enumerate(chain)]
    for call in calls:  # attribute every call to the image its return address lies in
        if call.caller is not None:
            call.image = next((i for i, start, end in reversed(ranges) if start <= call.caller < end), None)
    report = Report(
        image=os.path.abspath(image.path) if os.path.exists(image.path) else image.path, arch=platform.arch.name, outcome=outcome,
        console="".join(fw.console), calls=calls, notes=fw.notes,
        images=[loaded.as_dict(fw) for loaded in chain], files=files_report(fw),
        image_info={"load_address": platform.load_address, "entry": platform.entry, "size": image.size_of_image,
                    "image_base": image.image_base, "has_relocations": image.has_relocations},
        options={"cmdline": options.cmdline, "memory": options.memory, "seed": options.seed,
                 "initrd_size": None if options.initrd is None else len(options.initrd), "rng": options.rng},
        platform=platform.board.as_dict(options.memory), shim=shim.describe(fw),
    )
    if outcome == "exit":
        report.exit_status = Status.name_of(details["status"])
        report.exit_data = details.get("exit_data")
        if details.get("returned"):
            report.notes.append("the image's entry point returned")
    elif outcome == "handoff":
        report.handoff = describe(platform, details["entry"])
    elif outcome == "reset":
        report.reset = {"type": details["type"], "status": Status.name_of(details["status"]), "data": details["data"]}
    elif outcome == "fault":
        report.fault = details
    elif outcome == "timeout":
        report.timeout = details
    elif outcome == "stalled":
        report.stalled = details
    elif outcome == "error":
        report.error = details
    return report
