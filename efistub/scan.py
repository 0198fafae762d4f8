"""``efistub scan``: run every EFI image below a folder, and tabulate what each did.

The images run as tasks of an executor (executors.py: worker processes here, or Dask).
Whatever the executor, results are handled here, one way:

- each result is written to the JSON Lines file as it arrives, one line per image,
  flushed, so an interrupted scan leaves every finished image behind it;
- a task whose worker died is run once more; a second death makes the image's
  result the outcome "crashed", with the reason;
- ``resume``: images the JSON Lines file already holds are not run again, and the
  file is appended to (a line torn by the interruption is dropped and its image run);
- each image gets a row: its outcome, the reason for it, the calls and the time.
  The rows are all the scan keeps in memory; the full reports are in the file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

from .errors import InputError

MAX_ATTEMPTS = 2  # a task whose worker dies is run once more, then reported as "crashed"
REASON_CONSOLE_CHARS = 100  # of the last console line, in an exit's reason
CRASHED = "crashed"
BOX_DRAWING = re.compile("[\u2500-\u259f]+")  # frames around a screen of text
SPACES = re.compile(r"\s+")


def images(folder: str) -> list[Path]:
    """Files below ``folder`` that start like a PE image ("MZ")."""
    found = []
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            path = Path(root) / name
            try:
                with open(path, "rb") as f:
                    if f.read(2) == b"MZ":
                        found.append(path)
            except OSError:
                continue
    return sorted(found)


def _last_console_line(console: str) -> str:
    """The last line of the guest's console with words in it, as a terminal would show it."""
    for line in reversed(console.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
        shown: list[str] = []
        for char in line:  # a backspace takes back the character before it
            if char == "\b":
                if shown:
                    shown.pop()
            elif char.isprintable():
                shown.append(char)
        text = SPACES.sub(" ", BOX_DRAWING.sub(" ", "".join(shown))).strip()
        if any(c.isalnum() for c in text):
            return text if len(text) <= REASON_CONSOLE_CHARS else text[:REASON_CONSOLE_CHARS - 3] + "..."
    return ""


def reason(result: dict) -> str:
    """Why the image ended as it did, in one line: from its report, its input error or its crash."""
    if "input_error" in result:
        return f"cannot run: {result['input_error']}"
    outcome = result.get("outcome")
    if outcome == CRASHED:
        return result[CRASHED]["reason"]
    if outcome == "handoff":
        handoff = result.get("handoff") or {}
        problems = [handoff[k] for k in ("boot_params_error", "fdt_error", "memory_map_error") if k in handoff]
        entry = handoff.get("entry")
        text = "ExitBootServices, then the kernel entered" + (f" at 0x{entry:x}" if entry is not None else "")
        return "; ".join([text, *problems])
    if outcome == "exit":
        text = result.get("exit_status") or "?"
        said = _last_console_line(result.get("console", "")) or _last_console_line(result.get("exit_data") or "")
        return f"{text}: {said}" if said else text
    if outcome == "reset":
        reset = result.get("reset") or {}
        data = f", {reset['data']!r}" if reset.get("data") else ""
        return f"ResetSystem({reset.get('type')}, {reset.get('status')}{data})"
    if outcome in ("fault", "timeout", "stalled"):
        details = result.get(outcome) or {}
        text = details.get("reason", outcome)
        if outcome != "stalled" and details.get("pc") is not None:
            text += f" (pc 0x{details['pc']:x})"
        return text
    if outcome == "error":
        return (result.get("error") or {}).get("error", "error")
    return outcome or "?"


def row(result: dict) -> dict:
    """What the table and the usage matrix need of one result."""
    usage = result.get("usage") or {}
    installed = usage.get("configuration_tables", {}).get("installed", {})
    return {
        "image": result["image"],
        "arch": result.get("arch"),
        "outcome": None if "input_error" in result else result.get("outcome"),
        "reason": reason(result),
        "calls": len(result["calls"]) if "calls" in result else None,
        "unimplemented": result.get("unimplemented", []),
        "seconds": result.get("seconds"),
        "ran": "calls" in result,  # a report: it has usage counts (even if all are zero)
        "services": {name: entry["count"] for name, entry in usage.get("services", {}).items()},
        "protocols": {guid: sum(actions.values()) for guid, actions in usage.get("protocols", {}).items()},
        "tables": {guid: sum(actions.values()) for guid, actions in installed.items()},
    }


def crashed(image: str, why: str, attempts: int) -> dict:
    """The result of an image whose worker died at every attempt."""
    return {"image": image, "outcome": CRASHED, "seconds": None,
            CRASHED: {"reason": f"{why}; its worker died at each of {attempts} runs", "attempts": attempts}}


def read_journal(path: str) -> list[dict]:
    """The results in a scan's JSON Lines file, for resume. A last line without its newline (torn by
    an interruption) is cut off the file; any other line that is not a result is an input error."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            complete = data.rfind(b"\n") + 1
            if complete < len(data):
                f.truncate(complete)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    results = []
    for number, line in enumerate(data[:complete].splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except ValueError:
            result = None
        if not isinstance(result, dict) or not isinstance(result.get("image"), str):
            raise InputError(path, f"line {number} is not a scan result (a JSON object with an image)")
        results.append(result)
    return results


def scan(folder: str, options: dict, executor, journal: str | None = None, resume: bool = False,
         engine: str | None = None, progress: Callable[[int, int, dict | None], None] | None = None) -> list[dict]:
    """One row per image below ``folder``, in path order (``row``), each run as a task of ``executor``.

    ``journal``: the JSON Lines file each result is written to as it arrives (``resume``: the images it
    holds are not run, and it is appended to). ``progress(done, total, row)`` is called once before
    the first result (row None) and after each one."""
    if not os.path.isdir(folder):
        raise InputError(folder, "not a folder")
    if resume and not journal:
        raise InputError("--resume", "needs the JSON Lines file of the scan to resume (--json FILE)")
    paths = [os.path.abspath(p) for p in images(folder)]
    wanted = set(paths)
    rows = {r["image"]: row(r) for r in (read_journal(journal) if resume else []) if r["image"] in wanted}
    todo = [p for p in paths if p not in rows]
    out = None
    if journal:
        try:
            out = open(journal, "a" if resume else "w")
        except OSError as e:
            raise InputError(journal, e.strerror or str(e)) from None
    try:
        if progress:
            progress(len(rows), len(paths), None)
        for path in todo:
            executor.submit(path, path, options, engine)
        attempts: dict[str, int] = {}
        for path, result in executor.finished():
            if not isinstance(result, dict):  # a Crash: the worker died
                attempts[path] = attempts.get(path, 0) + result.attempts
                if attempts[path] < MAX_ATTEMPTS:
                    executor.submit(path, path, options, engine)
                    continue
                result = crashed(path, result.reason, attempts[path])
            if out:
                out.write(json.dumps(result) + "\n")
                out.flush()
            rows[path] = row(result)
            if progress:
                progress(len(rows), len(paths), rows[path])
    finally:
        if out:
            out.close()
    return [rows[p] for p in paths]


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("`", "'").replace("\n", " ")


def markdown(rows: list[dict], folder: str) -> str:
    """The scan's table in Markdown: image, architecture, outcome, reason, calls, unimplemented services hit, time."""
    lines = ["| image | arch | outcome | reason | calls | unimplemented hit | time s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"| `{_cell(os.path.relpath(r['image'], folder))}` | {r['arch'] or '-'} | {r['outcome'] or '-'} | "
                     f"{_cell(r['reason'])} | {'' if r['calls'] is None else r['calls']} | "
                     f"{', '.join(r['unimplemented']) or '-'} | {seconds} |")
    return "\n".join(lines) + "\n"
