"""Tasks for tests/test_scan_dask.py that the scan's workers import: efistub's own task, with a way to die.

An image whose name starts with "crash" kills the worker running it (SIGKILL) at every attempt,
one whose name starts with "crash-once" only at its first. Each attempt at such an image adds a
line to IMAGE.attempts, so a test can count them; every task adds its image to ran.log beside it.
"""

import os
import signal

from efistub.executors import run_task

ALWAYS, ONCE = "crash", "crash-once"


def run_or_die(image: str, options: dict, engine=None) -> dict:
    name = os.path.basename(image)
    with open(os.path.join(os.path.dirname(image), "ran.log"), "a") as log:
        log.write(name + "\n")
    if name.startswith(ALWAYS):
        attempts = image + ".attempts"
        first = not os.path.exists(attempts)
        with open(attempts, "a") as f:
            f.write("attempt\n")
        if first or not name.startswith(ONCE):
            os.kill(os.getpid(), signal.SIGKILL)
    return run_task(image, options, engine)
