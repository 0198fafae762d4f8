"""The usage matrix of a scan (``efistub scan --matrix OUT``): which image called what.

One row per image that ran (images that could not run or crashed have no calls to
count). The columns, after image, arch and outcome:

- each boot, runtime and protocol service by name: how many calls of it the image made;
- ``protocol:NAME``: how many calls named that protocol (HandleProtocol, OpenProtocol,
  LocateProtocol, installs, ...; efistub.usage);
- ``table:NAME``: how many InstallConfigurationTable calls named that table.

Services come first, then protocols, then tables; within each, the ones most images use
first. OUT.csv holds the counts (0 for none), OUT.png the same matrix as a heat map on a
logarithmic colour scale, blank where the count is 0.
"""

from __future__ import annotations

import csv
import os

from .errors import InputError
from .executors import INSTALL

FIXED = ("image", "arch", "outcome")
KINDS = (("services", ""), ("protocols", "protocol:"), ("tables", "table:"))
CELL_IN = 0.22  # inches per row and per column of the heat map
MIN_CELLS = 4  # the plot is at least this many cells wide and high
LABEL_CHAR_IN = 0.075  # inches per character of an axis label (7 points)
COLORBAR_IN, TITLE_IN = 1.3, 0.6
MAX_SIDE_IN = 160  # a heat map of thousands of images stays a PNG that opens
MAX_LABELS = 300  # more rows than this: no image names on the axis
DPI = 100


def require() -> None:
    """matplotlib, or the one-line error that names it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("--matrix", f"needs matplotlib, which is not installed: {INSTALL}") from None


def columns(rows: list[dict]) -> list[str]:
    """The count columns: services, then protocols, then tables, each the most used first."""
    out = []
    for kind, prefix in KINDS:
        users: dict[str, int] = {}
        for r in rows:
            for name in r[kind]:
                users[name] = users.get(name, 0) + 1
        out += [prefix + name for name in sorted(users, key=lambda n: (-users[n], n))]
    return out


def _count(r: dict, column: str) -> int:
    for kind, prefix in KINDS[1:]:  # service names have no prefix (and no colon)
        if column.startswith(prefix):
            return r[kind].get(column[len(prefix):], 0)
    return r["services"].get(column, 0)


def table(rows: list[dict], folder: str) -> tuple[list[str], list[list]]:
    """The header and the rows of the matrix (images that ran)."""
    ran = [r for r in rows if r["ran"]]
    counts = columns(ran)
    body = [[os.path.relpath(r["image"], folder), r["arch"], r["outcome"], *(_count(r, c) for c in counts)]
            for r in ran]
    return [*FIXED, *counts], body


def write_csv(path: str, header: list[str], body: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(body)


def write_png(path: str, header: list[str], body: list[list]) -> None:
    """The heat map: images down, columns across, log-scaled counts."""
    import numpy
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    names, counted = [r[0] for r in body], header[len(FIXED):]
    values = numpy.array([r[len(FIXED):] for r in body], dtype=float).reshape(len(body), len(counted))
    shown = numpy.ma.masked_less_equal(values, 0)
    labelled = len(names) <= MAX_LABELS
    left = LABEL_CHAR_IN * max((len(n) for n in names), default=0) if labelled else 0.5
    bottom = LABEL_CHAR_IN * max((len(c) for c in counted), default=0)
    width = min(MAX_SIDE_IN, left + CELL_IN * max(len(counted), MIN_CELLS) + COLORBAR_IN)
    height = min(MAX_SIDE_IN, bottom + CELL_IN * max(len(body), MIN_CELLS) + TITLE_IN)
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    top = max(1.0, float(values.max()) if values.size else 1.0)
    image = axes.imshow(shown, aspect="auto", interpolation="nearest", cmap="viridis",
                        norm=LogNorm(vmin=1, vmax=max(top, 2.0)))
    axes.set_xticks(range(len(counted)), counted, rotation=90, fontsize=7)
    if labelled:
        axes.set_yticks(range(len(names)), names, fontsize=7)
    else:
        axes.set_yticks([])
        axes.set_ylabel(f"{len(names)} images")
    boundaries = [i for i in range(1, len(counted)) if _kind(counted[i]) != _kind(counted[i - 1])]
    for x in boundaries:  # services | protocols | tables
        axes.axvline(x - 0.5, color="black", linewidth=1)
    axes.set_title("calls per image (services, protocol:, table:)", fontsize=9)
    bar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.01)
    bar.set_label("calls (log scale)", fontsize=8)
    figure.savefig(path)


def _kind(column: str) -> str:
    return next((prefix for _, prefix in KINDS[1:] if column.startswith(prefix)), "")


def write(rows: list[dict], folder: str, out: str) -> tuple[str, str]:
    """OUT.csv and OUT.png (a .csv or .png ending of ``out`` is dropped); their paths."""
    stem = out[:-4] if out.lower().endswith((".csv", ".png")) else out
    header, body = table(rows, folder)
    csv_path, png_path = stem + ".csv", stem + ".png"
    try:
        write_csv(csv_path, header, body)
        write_png(png_path, header, body)
    except OSError as e:
        raise InputError(e.filename or stem, e.strerror or str(e)) from None
    return csv_path, png_path
