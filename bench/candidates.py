"""Streaming detectors compared on real data, and the detector sets ``citypulse evaluate-real`` runs.

Every candidate is causal and online: it reads a device's rows one at a time (all
its measures together), keeps O(1) state per measure (O(measures^2) for a
covariance), learns as it goes from a cold start, and is tuned on no series. Each
gives two things per row, kept apart as the alert layer needs them:

- ``score`` in [0, 1]: the evidence that this row is anomalous (0.5 = confident);
- ``alarm``: a state with hysteresis, on when the evidence reaches the threshold and
  off when it falls below half of it; while it is on, the baselines do not learn
  (river's rule: no learning from what looks wrong).

These are reference implementations, written row by row for clarity: they are
for the comparison (``bench/skab_compare.py``, ``docs/detection.md``), not for speed.
What shipped is the generic detector (:mod:`processors.detectors.generic`); its
first version is ``generic-v1`` here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from bench import generic_v1
from processors.detectors import _generic_core as core
from processors.realeval import RUNNERS as SHIPPED
from processors.realeval import Flags, Recording, Runner

FloatArray = NDArray[np.float64]
REARM = 0.5
WARMUP = 60
"""Rows before any candidate may alarm (its baselines need a minute of one-second data)."""


def q_tail(z: FloatArray) -> FloatArray:
    """Two-sided normal tail probability of |z| (the Q-function, doubled)."""
    tail: FloatArray = _erfc(np.abs(z) / math.sqrt(2.0)).astype(np.float64)
    return tail


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


class Hysteresis:
    """An alarm state per row from a statistic: on at ``on``, off below ``REARM * on``."""

    def __init__(self, on: float) -> None:
        self.on = on
        self.active = False

    def __call__(self, statistic: float) -> bool:
        self.active = statistic >= self.on or (self.active and statistic >= REARM * self.on)
        return self.active


class Ewm:
    """Per-measure exponentially weighted mean and variance; the first rows are a plain average."""

    def __init__(self, fields: int, tau: float, floor: FloatArray | None = None) -> None:
        self.tau = tau
        self.n = 0
        self.mean = np.zeros(fields)
        self.var = np.zeros(fields)
        self.floor = floor if floor is not None else np.zeros(fields)

    def z(self, x: FloatArray) -> FloatArray:
        sd = np.sqrt(np.maximum(self.var, self.floor**2))
        with np.errstate(divide="ignore", invalid="ignore"):
            found: FloatArray = np.where(sd > 0, (x - self.mean) / np.where(sd > 0, sd, 1.0), 0.0)
        return found

    def learn(self, x: FloatArray) -> None:
        self.n += 1
        a = max(1.0 / self.n, 1.0 / self.tau)
        d = x - self.mean
        self.mean = self.mean + a * d
        self.var = (1 - a) * (self.var + a * d * d)


def _resolution(x: FloatArray) -> FloatArray:
    """The smallest nonzero step of each measure's first rows: a scale floor for quantised sensors."""
    steps = np.abs(np.diff(x, axis=0))
    steps[steps == 0] = np.inf
    found: FloatArray = np.min(steps, axis=0)
    found[~np.isfinite(found)] = 0.0
    return found


@dataclass(frozen=True)
class Candidate:
    """A named candidate and the function that streams one recording through it."""

    name: str
    method: str
    run: Callable[[FloatArray], tuple[FloatArray, NDArray[np.bool_]]]

    def __call__(self, recording: Recording) -> Flags:
        score, alarm = self.run(recording.values)
        return Flags(alarm=alarm, score=score)


def ewma_gauss(x: FloatArray, tau: float = 120.0, z_on: float = 4.0) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Per-measure EWMA mean and variance, learning only outside alarms; the largest |z| decides."""
    n, f = x.shape
    base = Ewm(f, tau, _resolution(x[:WARMUP]) / 2)
    hyst = Hysteresis(z_on)
    score, alarm = np.zeros(n), np.zeros(n, dtype=np.bool_)
    for t in range(n):
        z = float(np.max(np.abs(base.z(x[t])))) if t >= WARMUP else 0.0
        score[t] = min(z / (2 * z_on), 1.0)
        alarm[t] = hyst(z)
        if not alarm[t]:
            base.learn(x[t])
    return score, alarm


def window_gauss(x: FloatArray, window: int = 300, z_on: float = 4.0) -> tuple[FloatArray, NDArray[np.bool_]]:
    """NAB's windowed Gaussian: each measure against the mean and deviation of its last ``window`` rows."""
    n, _ = x.shape
    hyst = Hysteresis(z_on)
    score, alarm = np.zeros(n), np.zeros(n, dtype=np.bool_)
    floor = _resolution(x[:WARMUP]) / 2
    c1 = np.cumsum(np.vstack([np.zeros(x.shape[1]), x]), axis=0)
    c2 = np.cumsum(np.vstack([np.zeros(x.shape[1]), x * x]), axis=0)
    for t in range(WARMUP, n):
        lo = max(0, t - window)
        k = t - lo
        mean = (c1[t] - c1[lo]) / k
        sd = np.sqrt(np.maximum((c2[t] - c2[lo]) / k - mean**2, floor**2))
        z = float(np.max(np.abs(x[t] - mean) / np.where(sd > 0, sd, 1.0)))
        score[t] = min(z / (2 * z_on), 1.0)
        alarm[t] = hyst(z)
    return score, alarm


def robust_likelihood(
    x: FloatArray, tau: float = 900.0, short: float = 10.0, likelihood_on: float = 1e-3
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """A robust baseline (running median and mean absolute deviation by stochastic approximation),
    and NAB/HTM's anomaly likelihood over its prediction errors: the short-term mean error against
    the long-term distribution of errors, as a normal tail probability."""
    n, f = x.shape
    med = x[0].copy()
    mad = np.maximum(_resolution(x[:WARMUP]), 1e-9)
    err_long = Ewm(f, tau * 3)
    err_short = np.zeros(f)
    hyst = Hysteresis(-math.log10(likelihood_on))
    score, alarm = np.zeros(n), np.zeros(n, dtype=np.bool_)
    for t in range(n):
        error = np.minimum(np.abs(x[t] - med) / mad, 50.0)
        a_short = 1.0 / short
        err_short = err_short + a_short * (error - err_short) if t else error
        if t >= WARMUP:
            sd = np.sqrt(np.maximum(err_long.var, 1e-6))
            zl = np.maximum((err_short - err_long.mean) / sd, 0.0)
            tail = max(float(np.min(q_tail(zl))) / 2, 1e-300)
            surprise = -math.log10(tail)
        else:
            surprise = 0.0
        score[t] = min(surprise / (2 * hyst.on), 1.0)
        alarm[t] = hyst(surprise)
        err_long.learn(error)
        if not alarm[t]:
            rate = max(1.0 / (t + 1), 1.0 / tau)
            med = med + rate * mad * np.sign(x[t] - med) * 2
            mad = np.maximum(mad + rate * (np.abs(x[t] - med) * 1.2533 - mad), _resolution(x[:WARMUP]) / 2)
    return score, alarm


def cusum(
    x: FloatArray, tau: float = 300.0, drift: float = 0.5, h: float = 20.0
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Two-sided CUSUM per measure on residuals standardised by a gated EWMA baseline.

    The alarm is on while any measure's sum is past ``h`` (off below ``h / 2``); the baseline
    does not learn meanwhile. A sum that ends an alarm restarts from 0."""
    n, f = x.shape
    base = Ewm(f, tau, _resolution(x[:WARMUP]) / 2)
    up, down = np.zeros(f), np.zeros(f)
    hyst = Hysteresis(h)
    score, alarm = np.zeros(n), np.zeros(n, dtype=np.bool_)
    for t in range(n):
        if t >= WARMUP:
            z = np.clip(base.z(x[t]), -10, 10)
            up = np.minimum(np.maximum(up + z - drift, 0.0), 4 * h)
            down = np.minimum(np.maximum(down - z - drift, 0.0), 4 * h)
            statistic = float(max(up.max(), down.max()))
        else:
            statistic = 0.0
        score[t] = min(statistic / (2 * h), 1.0)
        was = hyst.active
        alarm[t] = hyst(statistic)
        if was and not alarm[t]:
            up[:], down[:] = 0.0, 0.0
        if not alarm[t]:
            base.learn(x[t])
    return score, alarm


def spot(
    x: FloatArray, risk: float = 1e-4, drift: int = 0, init: int = 300
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """SPOT (Siffer et al. 2017): a generalised Pareto tail over each measure's peaks sets a threshold
    exceeded with probability ``risk``; peaks keep refitting it. ``drift`` > 0 is DSPOT: the value
    less the mean of its last ``drift`` normal rows. Both tails (|deviation| from the initial median)."""
    n, f = x.shape
    score, alarm = np.zeros(n), np.zeros(n, dtype=np.bool_)
    hyst = Hysteresis(1.0)
    init = min(init, n // 2)
    history: list[FloatArray] = []
    if drift:
        devs = []
        for t in range(init):
            lo = max(0, t - drift)
            ref = x[lo:t].mean(axis=0) if t > lo else x[t]
            devs.append(np.abs(x[t] - ref))
        calib = np.array(devs)
    else:
        centre = np.median(x[:init], axis=0)
        calib = np.abs(x[:init] - centre)
    u = np.quantile(calib, 0.98, axis=0)
    peaks = [list(calib[calib[:, j] > u[j], j] - u[j]) for j in range(f)]
    recent = list(x[max(0, init - drift) : init]) if drift else []
    total = init
    thresholds = np.array([_gpd_threshold(peaks[j], u[j], total, risk) for j in range(f)])
    for t in range(init, n):
        if drift:
            ref = np.mean(recent, axis=0)
            dev = np.abs(x[t] - ref)
        else:
            dev = np.abs(x[t] - centre)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(thresholds > 0, dev / thresholds, 0.0)
        statistic = float(np.max(ratio))
        score[t] = min(statistic / 2, 1.0)
        alarm[t] = hyst(statistic)
        if not alarm[t]:
            total += 1
            for j in np.flatnonzero(dev > u):
                peaks[j].append(float(dev[j] - u[j]))
                thresholds[j] = _gpd_threshold(peaks[j], u[j], total, risk)
            if drift:
                recent.append(x[t])
                if len(recent) > drift:
                    recent.pop(0)
        history.append(thresholds)
    return score, alarm


def _gpd_threshold(peaks: list[float], u: float, total: int, risk: float) -> float:
    """The level exceeded with probability ``risk`` under a GPD fitted to the peaks (method of moments)."""
    k = len(peaks)
    if k < 5:
        return u * 2 if u > 0 else math.inf
    y = np.asarray(peaks)
    mean, var = float(y.mean()), float(y.var())
    if var <= 0 or mean <= 0:
        return u + mean
    gamma = 0.5 * (1 - mean * mean / var)
    sigma = 0.5 * mean * (mean * mean / var + 1)
    r = risk * total / k
    if abs(gamma) < 1e-6:
        return u - sigma * math.log(r)
    return float(u + sigma / gamma * (r ** (-gamma) - 1))


def t_squared(x: FloatArray, tau: float = 900.0, on: float = 4.0) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Hotelling's T-squared of the measures against a gated EWMA mean and covariance.

    The statistic is reported as an equivalent |z| (sqrt(T2 / measures) ... a chi-square scaled
    to one degree of freedom) so that one threshold reads like the univariate ones."""
    n, f = x.shape
    floor = _resolution(x[:WARMUP]) / 2
    mean = np.zeros(f)
    cov = np.zeros((f, f))
    count = 0
    hyst = Hysteresis(on)
    score, alarm = np.zeros(n), np.zeros(n, dtype=np.bool_)
    for t in range(n):
        d = x[t] - mean
        if t >= WARMUP:
            reg = cov + np.diag(np.maximum(floor**2, 1e-6 * np.diag(cov) + 1e-12))
            t2 = float(d @ np.linalg.solve(reg, d))
            statistic = float(core.equivalent_z(t2, f))
        else:
            statistic = 0.0
        score[t] = min(statistic / (2 * on), 1.0)
        alarm[t] = hyst(statistic)
        if not alarm[t]:
            count += 1
            a = max(1.0 / count, 1.0 / tau)
            mean = mean + a * d
            cov = (1 - a) * (cov + a * np.outer(d, d))
    return score, alarm


def _generic_v1(x: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    found = generic_v1.GenericCore(x.shape[1]).run(x)
    return found.score, found.alarm


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("ewma-gauss", "EWMA Gaussian per measure, max |z|", ewma_gauss),
    Candidate("window-gauss", "windowed Gaussian per measure (NAB), max |z|", window_gauss),
    Candidate("robust-likelihood", "median/MAD baseline + anomaly likelihood (NAB/HTM)", robust_likelihood),
    Candidate("cusum", "two-sided CUSUM per measure with restart", cusum),
    Candidate("spot", "SPOT extreme-value threshold per measure", spot),
    Candidate("dspot", "DSPOT (SPOT on drift-removed values)", lambda x: spot(x, risk=1e-5, drift=30)),
    Candidate("t-squared", "T-squared, online covariance of the measures", t_squared),
    Candidate("generic-v1", "the generic detector's first version (bench/generic_v1.py)", _generic_v1),
)

RUNNERS: Mapping[str, Runner] = MappingProxyType({**SHIPPED, **{c.name: c for c in CANDIDATES}})
"""Every detector set by name: what ``citypulse evaluate-real`` runs (today's per-measure path and the
generic detector) and each candidate."""
