"""``efistub scan``: run every EFI image below a folder, in parallel worker processes."""

from __future__ import annotations

import os
from pathlib import Path

from .parallel import pool, run_image


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


def scan(folder: str, options: dict, jobs: int | None = None) -> list[dict]:
    """One result per image: its report, or the reason efistub cannot run it."""
    paths = images(folder)
    executor = pool(jobs)
    try:
        futures = [executor.submit(run_image, str(path), options) for path in paths]
        return [future.result() for future in futures]
    finally:
        executor.shutdown()
