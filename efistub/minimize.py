"""``efistub minimize``: the smallest set of boot and runtime services an image needs.

Delta debugging (Zeller's ddmin) over the services the image calls in a full run:
a candidate set passes when the image, with only those services implemented and
every other one answering as an absent firmware would (EFI_NOT_FOUND for look-ups,
EFI_UNSUPPORTED otherwise), reaches the same outcome (for an exit: with the same
status). The sets of each round run
in parallel worker processes. The result is 1-minimal: removing any one service of
it changes the outcome.
"""

from __future__ import annotations

from .machine import TABLE_SERVICES
from .parallel import pool, run_image


def _outcome(report: dict) -> tuple:
    """What must stay the same: the outcome, and for an exit its status."""
    return report["outcome"], report.get("exit_status")


def _split(items: list[str], n: int) -> list[list[str]]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [part for part in out if part]


class Minimizer:
    def __init__(self, image: str, options: dict, jobs: int | None = None, log=lambda message: None):
        self.image, self.options, self.log = image, options, log
        self.executor = pool(jobs)
        self.runs = 0
        self._cache: dict[frozenset, dict] = {}

    def _runs(self, sets: list[list[str]]) -> list[dict]:
        todo = [s for s in {frozenset(s) for s in sets} if s not in self._cache]
        futures = {s: self.executor.submit(run_image, self.image, self.options, sorted(s)) for s in todo}
        for s, future in futures.items():
            self._cache[s] = future.result()
            self.runs += 1
        return [self._cache[frozenset(s)] for s in sets]

    def minimize(self) -> dict:
        try:
            baseline = run_image(self.image, self.options)
            self.runs += 1
            if "input_error" in baseline:
                return baseline
            target = _outcome(baseline)
            called = sorted(n for n in baseline["usage"]["services"] if n in TABLE_SERVICES)
            self.log(f"full run: {target}; {len(called)} boot and runtime services called")
            passes = lambda report: _outcome(report) == target  # noqa: E731
            current, n = called, 2
            if passes(self._runs([[]])[0]):
                current = []
            while len(current) >= 2:
                parts = _split(current, n)
                complements = [[s for s in current if s not in part] for part in parts]
                results = self._runs(parts + complements)
                subset = next((p for p, r in zip(parts, results) if passes(r)), None)
                complement = next((c for c, r in zip(complements, results[len(parts):]) if passes(r)), None)
                if subset is not None:
                    current, n = subset, 2
                elif complement is not None:
                    current, n = complement, max(n - 1, 2)
                elif n >= len(current):
                    break
                else:
                    n = min(len(current), 2 * n)
                self.log(f"{len(current)} services left after {self.runs} runs")
            optional = [s for s in called if s not in current]
            without = self._runs([[s for s in called if s != name] for name in optional])
            return {
                "image": self.image,
                "outcome": baseline["outcome"],
                "exit_status": baseline.get("exit_status"),
                "services": current,
                "called": called,
                "optional": {name: {"outcome": r["outcome"], "exit_status": r.get("exit_status"), "console": r["console"],
                                    "unimplemented": r["usage"]["unimplemented"]}
                             for name, r in zip(optional, without)},
                "runs": self.runs,
            }
        finally:
            self.executor.shutdown()
