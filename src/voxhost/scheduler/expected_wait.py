"""Admission by expected wait: how long a new job would queue, from the
measured service time of the work ahead of it.

A task that accepts everything its queue holds answers a short clip a minute
late; a game cannot use that, and a fleet cannot move work off a task that
never refuses. So each engine's executor estimates, at admission, when a new
job in a lane would start, and refuses it (429) when that is past the lane's
budget, with Retry-After saying the wait it estimated (docs/architecture.md,
"Admission by expected wait").

- `ServiceTimes` learns a job's service time per kind of work (an engine's
  name, or None where the executor serves one engine) and lane, as
  a + b * units (units: seconds of audio for speech-to-text, characters for
  text-to-speech), by exponentially weighted least squares over recent jobs.
  Affine, not a plain rate: Whisper encodes a whole window whatever the
  clip, so a 1 s and a 5 s clip cost about the same, while TTS grows with
  the text. A batch's wall time is shared among its jobs by their units, so
  batching's gain is in what is measured.
- A running job's remainder is its mean residual time: over the recent jobs
  (as ratios of their real to their expected time), the mean of those that
  ran longer than it has so far, less what it has run. On a loaded host,
  where a clip takes anywhere from half to three times its estimate, "its
  estimate less what it has run" said 0 for half the running jobs.
- `expected_start` plays the queue forward: the running jobs' remainders
  occupy the workers, and the jobs ahead (more urgent lanes, then the same
  lane in order) each take the worker that frees first.

Knows nothing of HTTP, engines or audio.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

# How fast old jobs are forgotten: a job's weight halves every HALF_LIFE_JOBS
# jobs of its kind and lane, so a server that slows down (a long file's
# neighbour, a noisy host) is seen within about ten requests.
HALF_LIFE_JOBS = 10
MIN_FIT_JOBS = 3  # below this many jobs (by weight) a lane's fit is not trusted alone
RECENT_RATIOS = 64  # real / expected service time of the last jobs: how late a running job may run


@dataclass
class _Fit:
    """Exponentially weighted sums for the least-squares line cost = a + b * units."""

    weight: float = 0.0
    su: float = 0.0
    sc: float = 0.0
    suu: float = 0.0
    suc: float = 0.0
    jobs: int = 0

    def add(self, units: float, cost: float, decay: float, weight: float = 1.0) -> None:
        self.weight = self.weight * decay + weight
        self.su = self.su * decay + weight * units
        self.sc = self.sc * decay + weight * cost
        self.suu = self.suu * decay + weight * units * units
        self.suc = self.suc * decay + weight * units * cost
        self.jobs += 1

    @property
    def mean_cost(self) -> float:
        return self.sc / self.weight

    def line(self) -> tuple[float, float]:
        """(a, b), both >= 0: an intercept or slope the data would make negative is
        dropped and the rest refitted through the means (a rate, or a constant)."""
        mean_u, mean_c = self.su / self.weight, self.sc / self.weight
        var_u = self.suu / self.weight - mean_u * mean_u
        if var_u <= 1e-9 * (1.0 + mean_u * mean_u):  # every job the same size: a constant
            return mean_c, 0.0
        b = (self.suc / self.weight - mean_u * mean_c) / var_u
        if b <= 0.0:
            return mean_c, 0.0
        a = mean_c - b * mean_u
        if a < 0.0:
            return 0.0, mean_c / mean_u if mean_u > 0 else 0.0
        return a, b

    def predict(self, units: float | None) -> float:
        if units is None:
            return self.mean_cost
        a, b = self.line()
        return a + b * units


class ServiceTimes:
    """Measured service time per (kind, lane); what a job is expected to cost.

    `prior_s`: the estimate before anything of that kind was measured (the
    engine's warm-up decode, or a setting); None: 0, so an executor that has
    run nothing admits until it has."""

    def __init__(self, *, prior_s: float | None = None, half_life_jobs: float = HALF_LIFE_JOBS):
        self.prior_s = prior_s
        self.decay = 0.5 ** (1.0 / half_life_jobs)
        self._fits: dict[tuple[Hashable, str], _Fit] = {}
        self._priors: dict[Hashable, float] = {}
        self._ratios: deque[float] = deque(maxlen=RECENT_RATIOS)

    def record(self, kind: Hashable, lane: str, units: float | None, seconds: float,
               expected: float | None = None) -> None:
        """One finished job, and what it was expected to take when admitted. Jobs without
        a size (a cache-warming call) teach nothing: they are estimated as the lane's mean job."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        if expected is not None and expected > 0:
            self._ratios.append(seconds / expected)
        if units is None or not math.isfinite(units):
            return
        self._fits.setdefault((kind, lane), _Fit()).add(max(0.0, float(units)), seconds, self.decay)

    def remaining(self, expected: float, elapsed: float) -> float:
        """Seconds a job expected to take `expected` still needs after `elapsed`: the mean
        residual over the recent jobs that ran longer than that (scaled to this job's
        estimate); when none did, it is about to end. Before any job: its estimate less
        what it has run."""
        if expected <= 0:
            return 0.0
        if not self._ratios:
            return max(0.0, expected - elapsed)
        longer = [ratio * expected for ratio in self._ratios if ratio * expected > elapsed]
        return sum(longer) / len(longer) - elapsed if longer else 0.0

    def estimate(self, kind: Hashable, lane: str, units: float | None = None) -> float:
        """Seconds a job of `units` is expected to take. Falls back, in order: this
        lane's fit; the same kind in another lane, as a plain rate per unit (a lane
        not seen yet, e.g. the first long file); the prior."""
        fit = self._fits.get((kind, lane))
        if fit is not None and fit.jobs >= MIN_FIT_JOBS:
            return fit.predict(units)
        others = [f for (k, other), f in self._fits.items() if k == kind and f.jobs and other != lane]
        if fit is not None and fit.jobs:
            others.insert(0, fit)
        if others:
            best = max(others, key=lambda f: f.weight)
            if units is None or best.su <= 0:
                return best.mean_cost
            return best.sc / best.su * units
        return self._priors.get(kind, self.prior_s or 0.0)

    def seed(self, prior_s: float, kind: Hashable = None) -> None:
        """The estimate for `kind` until a job of it is measured (the engine's warm-up call:
        an overestimate, as it pays lazy initialisation, which errs toward refusing)."""
        self._priors[kind] = max(0.0, prior_s)


def expected_start(workers: int, running: Iterable[float], ahead: Iterable[float]) -> float:
    """Seconds until a new job starts: `running` are the remaining seconds of the
    jobs (or batches) on the workers now, `ahead` the estimated service times of
    the jobs that will start before it, in the order they will. Each takes the
    worker that frees first (list scheduling, as the dispatcher does)."""
    free = sorted(max(0.0, r) for r in running)[:workers]
    free += [0.0] * (workers - len(free))
    heapq.heapify(free)
    for seconds in ahead:
        heapq.heapreplace(free, free[0] + max(0.0, seconds))
    return free[0]


def retry_after_s(wait_s: float) -> float:
    """Retry-After for a refusal: the wait the refused job would have had, at least 1 s."""
    return max(1.0, wait_s)
