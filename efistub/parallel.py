"""Runs of one image in worker processes, for minimize and scan."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor


def pool(jobs: int | None) -> ProcessPoolExecutor:
    """Worker processes; fresh interpreters ("spawn"), so no engine state is inherited."""
    return ProcessPoolExecutor(max_workers=jobs or os.cpu_count() or 1,
                               mp_context=multiprocessing.get_context("spawn"))


def run_image(image: str, options: dict, only: list[str] | None = None) -> dict:
    """One run in a worker: the report as a dict, or the input error that stopped it."""
    from .errors import InputError
    from .machine import Machine

    started = time.perf_counter()
    try:
        options = {**options, "save_tpm": None}  # parallel runs would all write the one --save-tpm FILE
        with Machine(image, only=only, save_vars=False, **options) as machine:  # runs from one --vars store
            report = machine.run().to_dict()  # a worker runs many: each one's RAM goes with it (close)
    except InputError as e:
        return {"image": image, "input_error": e.problem, "seconds": time.perf_counter() - started}
    report["seconds"] = time.perf_counter() - started
    return report
