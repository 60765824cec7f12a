"""The generic detector's arithmetic: any device's measures judged together, in its own time.

For a device with ``f`` measures read every ``interval`` (its declared reporting
interval live, the median gap of a recorded series), each reading goes through:

1. **A variance-stabilising transform** per measure (:class:`~._robust.Transform`:
   a log for concentrations and other heavy-tailed measures, the Anscombe square
   root for counts, nothing for the rest), so that noise is about the same size
   whatever the level.
2. **A seasonal profile** taken out: the usual offset at this time of day (24
   hourly bins) plus the usual offset at this hour of the week (168 bins),
   linearly interpolated, learned only from readings judged normal. A bin learns
   over about :data:`DAY_MEMORY` days (:data:`WEEK_MEMORY` weeks) of its own
   hour, so on a one-second series it hardly moves and on an hourly one it
   carries the day's cycle after a week.
3. **A normal baseline** of what is left: its exponentially weighted mean and
   covariance (memory :data:`SLOW` intervals), learned only from readings judged
   normal, widened by how far the recent mean usually wanders from the baseline
   (an engine's temperature strays by degrees while its second-to-second noise is
   a tenth of one). The wander is a covariance too: measures that wander together
   (two sensors on one pipe) keep their relation, and a break of it still shows.

Three statistics come out of it, each a standard normal deviate (a chi-square's
or a maximum's upper tail mapped to the normal's), so that one scale fits any
number of measures:

- ``level``: Hotelling's T-squared of the reading against the baseline. It stays
  high for as long as the device is away from its normal, so it drives the
  **alarm**: on once it has been at or above :data:`Z_ON` for :data:`CONFIRM`
  readings in a row, off below :data:`REARM` of that. An alarm that lasts
  :data:`ACCEPT` intervals is a new normal: the baseline learns again from scratch.
- **fast evidence**: T-squared of the reading against where the device has just
  been (a fast mean, :data:`FAST` intervals), measured with the normal covariance:
  a spike, or a step, scores where it happens and fades as the fast mean follows.
- **change evidence**: per measure, a short mean (:data:`SHORT`) less a longer one
  (:data:`LONG`), over its own usual size (learned, as the baseline, only from
  readings that do not look like a change): a slope or a step that is unusual
  for this measure, whatever its level. It rises while a device is moving and
  falls back once it settles, as a restarted CUSUM does.

The **anomaly score** in [0, 1] is the largest of the two evidences (and, where
an alarm starts, of the level), over ``2 Z_ON``: 0.5 is as surprising as the
alarm's own level. It is the evidence that *this* reading is anomalous, high
where a change starts and where new evidence arrives, low while an alarm holds
without news; the alarm is the state.

Time is counted in the device's reporting intervals, so one setting fits a
series read every second and one read every hour. A reading after a gap counts
for at most :data:`CAP` intervals of learning; across a gap longer than
:data:`GAP` intervals the fast mean relaxes towards the baseline and the change
evidence starts afresh, so the first reading after a gap is judged on its level
against what is normal, not as a jump from where the device was days ago.

**Blocks.** Readings are judged against the state at the start of their block of
:data:`BLOCK` readings (the baseline, the profile, the change's usual size); what
they teach is added as they come and takes effect at the block's end. The same
arithmetic then runs reading by reading over many devices (the live detector,
:mod:`processors.detectors.generic`) and block by block over one long series
(:class:`processors.detectors._generic_series.GenericSeries`), with the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from processors.detectors._generic_learn import ACCEPT, NEVER, WARMUP, close_block
from processors.detectors._generic_learn import learn as learn_block
from processors.detectors._generic_learn import restart as restart_baseline
from processors.detectors._generic_math import affine_path, equivalent_z, largest_z, latch, runs
from processors.detectors._robust import DAY_MS, Transform, time_of_day_bins
from processors.detectors._storage import Spec, State, spec

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

SLOW = 900.0
"""Memory of the normal baseline (mean, covariance, wander), in reporting intervals."""
FAST = 10.0
"""Memory of the fast mean the fast evidence is measured against, in intervals."""
SHORT = 3.0
"""Memory of the short mean of the change evidence, in intervals."""
LONG = 30.0
"""Memory of the longer mean the short one is compared with, in intervals."""
CHANGE_MEMORY = 900.0
"""Memory of the change evidence's usual size, in intervals."""
Z_ON = 4.0
"""Alarm level of the statistic (a normal deviate); the score is 0.5 there."""
CONFIRM = 3
"""Readings in a row at or above :data:`Z_ON` before the alarm goes on: a blip of one or two readings
is evidence (the score shows it), not a state the operators should be paged for."""
REARM = 0.5
"""The alarm ends when the statistic falls below this share of :data:`Z_ON`."""
LEARN_BELOW = 0.5
PROFILE_CLIP = 2.5
"""What one reading teaches the seasonal profile is clipped at this many of the measure's usual sizes."""
"""A reading teaches the baseline only while its statistic is below this share of :data:`Z_ON`."""
CHANGE_GATE = 4.0
"""A change this many usual sizes or more does not teach the change's usual size."""
CAP = 3.0
"""A reading teaches at most this many intervals' worth, however long the gap before it."""
GAP = 5.0
"""A silence longer than this many intervals is a gap: the change evidence starts afresh after it."""
DAY_MEMORY = 7.0
"""Days of its own hour a daily-profile bin remembers."""
WEEK_MEMORY = 4.0
"""Weeks of its own hour a weekly-profile bin remembers."""
DAY_BINS = 24
WEEK_BINS = 7 * 24
BINS = DAY_BINS + WEEK_BINS
"""Profile bins per measure: the day's 24 hours, then the week's 168."""
WEEK_MS = 7 * DAY_MS
BLOCK = 32
"""Readings judged against one state before what they taught takes effect."""


class Tables(Protocol):
    """Where the seasonal profiles live: per device, :data:`BINS` x fields, as ``season`` (what readings
    are judged by) and ``pending`` (what they taught since the block started)."""

    def read(self, index: NDArray[np.intp]) -> NDArray[np.float32]:
        """``season`` at ``index`` (shape (4, devices, k)): shape (4, devices, k, fields)."""

    def add(self, index: NDArray[np.intp], values: NDArray[np.float32]) -> None:
        """Add ``values`` (4, devices, k, fields) to ``pending`` at ``index``, repeated cells summed."""

    def flush(self, devices: NDArray[np.intp]) -> None:
        """For these devices (positions among the call's): ``season += pending``, ``pending = 0``."""


def core_spec(fields: int) -> dict[str, Spec]:
    """One device's state (besides its profiles): O(fields^2) numbers, whatever the series' length."""
    f = (fields,)
    return {
        "seen": spec(np.int64, (), 0),
        "learned": spec(np.float64, (), 0.0),
        "last_ts": spec(np.int64, (), NEVER),
        "ref": spec(np.float64, f, np.nan),
        "s1": spec(np.float64, f, 0.0),
        "s2": spec(np.float64, (fields, fields), 0.0),
        "wander": spec(np.float64, (fields, fields), 0.0),
        "judge_mean": spec(np.float64, f, 0.0),
        "judge_precision": spec(np.float64, (fields, fields), 0.0),
        "judge_sd": spec(np.float64, f, 0.0),
        "judging": spec(np.bool_, (), False),
        "fast": spec(np.float64, f, np.nan),
        "short": spec(np.float64, f, np.nan),
        "long": spec(np.float64, f, np.nan),
        "change_var": spec(np.float64, f, 0.0),
        "change_n": spec(np.float64, f, 0.0),
        "judge_change_var": spec(np.float64, f, 0.0),
        "active": spec(np.bool_, (), False),
        "run": spec(np.int64, (), 0),
        "alarm_since": spec(np.int64, (), NEVER),
        "culprit": spec(np.int64, (), -1),
    }


def table_spec(fields: int) -> dict[str, Spec]:
    """The seasonal profiles: the day's and the week's bins per measure, and what a block taught them."""
    return {
        "season": spec(np.float32, (BINS, fields), 0.0),
        "pending": spec(np.float32, (BINS, fields), 0.0),
    }


@dataclass(frozen=True, eq=False)
class Setup:
    """What is fixed per detector: the measures' transform and the noise floors it implies."""

    transform: Transform
    relative: NDArray[np.bool_]
    """Measures whose noise floor is a share of their level (the linear ones)."""
    eye: NDArray[np.bool_]

    @classmethod
    def of(cls, transform: Transform) -> Setup:
        fields = int(transform.mode.size)
        return cls(transform, transform.mode == Transform.LINEAR, np.eye(fields, dtype=np.bool_)[None])

    @property
    def fields(self) -> int:
        return int(self.transform.mode.size)


@dataclass(frozen=True, eq=False)
class Found:
    """What the core said of each reading: shape (devices, readings)."""

    score: FloatArray
    """Evidence now, in [0, 1]."""
    alarm: BoolArray
    """The alarm state after each reading."""
    level: FloatArray
    """The alarm statistic (a normal deviate; 0 while the device is not judged)."""
    scored_by: NDArray[np.intp]
    """The measure (its position among the fields) that carries most of each score's evidence."""
    alarmed_by: NDArray[np.intp]
    """The measure most of the level came from where the running alarm started (-1 without one)."""


def bins_of(ts_ms: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """The four profile bins around each time (the day's two, the week's two) and their weights.

    Returns ``index`` (4, ...) and ``weight`` (4, ...): each reading reads and teaches
    ``sum(weight * season[index])``.
    """
    d0, d1, dw = time_of_day_bins(ts_ms, DAY_BINS)
    w0, w1, ww = time_of_day_bins(ts_ms, WEEK_BINS, WEEK_MS)
    index = np.stack([d0, d1, DAY_BINS + w0, DAY_BINS + w1])
    weight = np.stack([1.0 - dw, dw, 1.0 - ww, ww]).astype(np.float32)
    return index, weight


@dataclass(frozen=True, eq=False)
class Prepared:
    """What the core needs of each reading that does not depend on the state: shape (devices, k, ...).

    Worked out once for a whole recorded series (then taken a block at a time with
    :meth:`part`), or once per round live.
    """

    y: FloatArray
    """The transformed readings (devices, k, fields); NaN = not reported."""
    t: NDArray[np.int64]
    newest: NDArray[np.int64]
    """The device's newest time after each reading."""
    gap: FloatArray
    """Intervals since the device's newest reading before (1 for its first)."""
    means: FloatArray
    """Per-reading weights of the fast, short and long means, each repeated per field: (devices, k, 3 f)."""
    rates: FloatArray
    """Per-reading weights (devices, k, 2): the baseline's and the change's size's memories."""
    index: NDArray[np.intp]
    weight: NDArray[np.float32]
    """The profile bins of each reading and their weights, (4, devices, k)."""
    share: NDArray[np.float32]
    """``weight`` times each bin's learning rate."""
    interval: FloatArray
    """Each device's reporting interval, ms (devices,)."""

    def part(self, lo: int, hi: int) -> Prepared:
        return Prepared(
            self.y[:, lo:hi],
            self.t[:, lo:hi],
            self.newest[:, lo:hi],
            self.gap[:, lo:hi],
            self.means[:, lo:hi],
            self.rates[:, lo:hi],
            self.index[:, :, lo:hi],
            self.weight[:, :, lo:hi],
            self.share[:, :, lo:hi],
            self.interval,
        )


def prepare(
    x: FloatArray, ts_ms: NDArray[np.int64], last_ts: NDArray[np.int64], interval_ms: FloatArray, setup: Setup
) -> Prepared:
    """:class:`Prepared` of readings ``x`` (devices, k, fields) at ``ts_ms`` (devices, k), the devices'
    newest times before them being ``last_ts`` and their reporting intervals ``interval_ms``."""
    n_dev, k, f = x.shape
    y = setup.transform.exact(x.reshape(n_dev * k, f)).reshape(n_dev, k, f)
    interval = np.maximum(interval_ms, 1.0)[:, None]
    t = ts_ms.astype(np.int64)
    newest = np.maximum.accumulate(np.concatenate([last_ts[:, None], t], axis=1), axis=1)
    gap = np.where(newest[:, :-1] != NEVER, (t - newest[:, :-1]) / interval, 1.0)
    step = np.clip(gap, 0.0, CAP)[:, :, None]
    rates = -np.expm1(-step / np.array([SLOW, CHANGE_MEMORY]))
    means = np.repeat(-np.expm1(-step / np.array([FAST, SHORT, LONG])), f, axis=2)
    index, weight = bins_of(t)
    day = interval[:, 0] / (DAY_MS / DAY_BINS) / DAY_MEMORY
    week = interval[:, 0] / (WEEK_MS / WEEK_BINS) / WEEK_MEMORY
    per_bin = np.minimum(np.stack([day, day, week, week]), 0.5)[:, :, None]
    share = (weight * per_bin).astype(np.float32)
    return Prepared(y, t, newest[:, 1:], gap, means, rates, index, weight, share, interval[:, 0])


def advance(state: State, tables: Tables, p: Prepared, setup: Setup) -> Found:
    """Judge and learn the next ``k`` readings of each of ``devices`` devices (:func:`prepare`).

    ``state`` holds the devices' rows (:func:`core_spec`), changed in place. Each
    device's ``k`` readings must lie in one block: ``seen % BLOCK + k <= BLOCK``.
    """
    s = state
    y = p.y
    n_dev, k, f = y.shape
    finite = np.isfinite(y)
    whole = bool(finite.all())  # the usual case: every measure of every reading reported
    fresh = p.gap > 0
    across = p.gap > GAP
    gaps = bool(across.any())

    # Measures seen for the first time set their reference; a device that gains a measure
    # after it started learning starts learning again (its covariance knows nothing of it).
    unseen = np.isnan(s["ref"])
    if unseen.any():
        new_seen = unseen & finite.any(axis=1)
        where = np.argmax(finite, axis=1)
        first_values = np.take_along_axis(y, where[:, None, :], axis=1)[:, 0, :]
        s["ref"] = np.where(new_seen, first_values, s["ref"])
        regain = new_seen.any(axis=1) & (s["learned"] > 0)
        if regain.any():
            restart_baseline(s, regain)
        unseen = np.isnan(s["ref"])
    seen = ~unseen
    dof = seen.sum(axis=1).astype(np.float64)[:, None]
    judging = s["judging"]
    judge_mean = s["judge_mean"]

    # The profile's expectation at each reading, from the block-start tables.
    season = (p.weight[..., None] * tables.read(p.index)).sum(axis=0, dtype=np.float64)
    resid = y - season
    filled0 = resid if whole else np.where(finite, resid, 0.0)

    # Three running means of what is left, as one recursion over 3f columns: the fast mean
    # (relaxed towards the baseline across a gap), and the change evidence's short and long
    # means (started afresh after a gap). A measure's first reading starts its means.
    prior = np.concatenate([s["fast"], s["short"], s["long"]], axis=1)  # (d, 3f)
    a = p.means
    finite3 = None if whole else np.concatenate([finite, finite, finite], axis=2)
    if finite3 is not None:
        a = a * finite3
    starts = np.isnan(prior)
    restart = None
    if starts.any():
        live = np.ones_like(a, dtype=np.bool_) if finite3 is None else finite3
        restart = live & starts[:, None, :] & (np.cumsum(live, axis=1) == 1)
        prior0 = np.where(starts, 0.0, prior)
    else:
        prior0 = prior
    relax = None
    if gaps:
        live = np.ones_like(a, dtype=np.bool_) if finite3 is None else finite3
        gapped = np.zeros_like(live)
        gapped[:, :, f:] = across[:, :, None] & live[:, :, f:]
        restart = gapped if restart is None else restart | gapped
        relax = np.ones_like(a)
        relax[:, :, :f] = np.where(across & judging[:, None], np.exp(-(p.gap - 1.0) / FAST), 1.0)[:, :, None]
    if restart is not None:
        a = np.where(restart, 1.0, a)
    target = np.concatenate([filled0, filled0, filled0], axis=2)
    keep = 1.0 - a
    push = a * target
    if relax is not None:
        toward = np.zeros((n_dev, 1, 3 * f))
        toward[:, 0, :f] = judge_mean
        push += keep * (1.0 - relax) * toward
        keep *= relax
    after = affine_path(prior0, keep, push)
    before = np.concatenate([prior0[:, None, :], after[:, :-1, :]], axis=1)
    if relax is not None:
        before = relax * before + (1.0 - relax) * toward
    last = after[:, -1, :]
    if not whole:
        last = np.where(np.tile(finite.any(axis=1), 3), last, prior)
    s["fast"], s["short"], s["long"] = last[:, :f], last[:, f : 2 * f], last[:, 2 * f :]
    fast_before = before[:, :, :f]
    long_before = before[:, :, 2 * f :]
    if restart is not None:
        long_before = np.where(restart[:, :, 2 * f :], filled0, long_before)
    change = after[:, :, f : 2 * f] - long_before
    complete: BoolArray = np.ones((n_dev, k), dtype=np.bool_)
    if whole:
        filled = resid
    else:
        filled = np.where(finite, resid, np.where(seen[:, None, :], fast_before, 0.0))
        complete = np.logical_and((finite | unseen[:, None, :]).all(axis=2), finite.any(axis=2))
        change = np.where(finite, change, 0.0)

    # Judging against the block-start state.
    # Each statistic is a sum over the measures (T-squared: each measure's share of it), and
    # the measure with the largest share is the one the evidence is put down to.
    level = np.zeros((n_dev, k))
    evidence = np.zeros((n_dev, k))
    level_by = scored_by = np.zeros((n_dev, k), dtype=np.intp)
    if judging.any():
        precision = s["judge_precision"]
        off = filled - judge_mean[:, None, :]
        shares = (off @ precision) * off
        level = np.maximum(equivalent_z(shares.sum(axis=2), dof), 0.0)
        level_by = shares.argmax(axis=2)
        moved = filled - fast_before
        shares = (moved @ precision) * moved
        evidence = equivalent_z(shares.sum(axis=2), dof)
        scored_by = shares.argmax(axis=2)
        if not judging.all():
            level[~judging] = 0.0
    usual = s["judge_change_var"]
    known = (s["change_n"] >= WARMUP) & (usual > 0)
    change_each = change / np.sqrt(np.where(known, usual, 1.0))[:, None, :]
    if not known.all() or not whole:
        change_each = np.where(known[:, None, :] & finite, change_each, 0.0)
    if known.any():
        present = (finite & known[:, None, :]).sum(axis=2).astype(np.float64)
        size = np.abs(change_each)
        changed = largest_z(size.max(axis=2), present)
        scored_by = np.where(changed > evidence, size.argmax(axis=2), scored_by)
        evidence = np.maximum(evidence, changed)

    # The alarm: on after CONFIRM readings in a row at the level, off well below it.
    if s["active"].any() or s["run"].any() or level.max(initial=0.0) >= Z_ON:
        high = level >= Z_ON
        run = runs(high, s["run"])
        alarm = latch(run >= CONFIRM, level < REARM * Z_ON, s["active"])
        was = np.concatenate([s["active"][:, None], alarm[:, :-1]], axis=1)
        onset = alarm & ~was
        scored_by = np.where(onset & (level > evidence), level_by, scored_by)
        evidence = np.maximum(evidence, np.where(onset, level, 0.0))
        alarmed_by = _alarm_times(s, alarm, onset, p.t, level_by)
        s["run"] = run[:, -1]
    else:
        alarm = np.zeros((n_dev, k), dtype=np.bool_)
        alarmed_by = np.full((n_dev, k), -1, dtype=np.intp)
    score = np.clip(evidence / (2.0 * Z_ON), 0.0, 1.0)
    if not judging.all():
        score[~judging] = 0.0

    # Learning, gated: only readings that look normal teach the baseline and the profile.
    learn = complete & fresh & ~alarm & (level < LEARN_BELOW * Z_ON)
    usable = (fresh & ~across)[:, :, None] if whole else finite & (fresh & ~across)[:, :, None]
    learn_block(
        s, learn, usable & (np.abs(change_each) < CHANGE_GATE), p.rates, filled, fast_before, change, judging
    )
    # The profile learns from every reading short of the alarm's level, each residual clipped to a
    # few of the measure's usual sizes: a rush hour that looks wild on its first days is learned a
    # little at a time from its flanks until it is usual, while a wild reading teaches it nothing.
    taught = complete & fresh & ~alarm & (level < Z_ON) & judging[:, None]
    if taught.any():
        reach = PROFILE_CLIP * s["judge_sd"][:, None, :]
        residual = np.clip(filled - judge_mean[:, None, :], -reach, reach)
        if not whole or not taught.all():
            residual = np.where(finite & taught[:, :, None], residual, 0.0)
        tables.add(p.index, p.share[..., None] * residual[None].astype(np.float32))

    s["last_ts"] = p.newest[:, -1]
    s["seen"] = s["seen"] + k
    boundary = np.flatnonzero(s["seen"] % BLOCK == 0)
    if boundary.size:
        close_block(s, tables, boundary, p.newest[:, -1], p.interval, setup)
    return Found(score, alarm, level, scored_by, alarmed_by)


def _alarm_times(
    s: State, alarm: BoolArray, onset: BoolArray, t: NDArray[np.int64], level_by: NDArray[np.intp]
) -> NDArray[np.intp]:
    """Keep when the running alarm started (for :data:`ACCEPT`) and which measure started it; returns
    that measure after each reading (-1 where no alarm runs)."""
    k = alarm.shape[1]
    position = np.arange(k)[None, :]
    last = np.maximum.accumulate(np.where(onset, position, -1), axis=1)
    started = np.take_along_axis(t, np.maximum(last, 0), axis=1)
    culprit = np.take_along_axis(level_by, np.maximum(last, 0), axis=1)
    culprit = np.where(last >= 0, culprit, s["culprit"][:, None])
    since = np.where(last[:, -1] >= 0, started[:, -1], s["alarm_since"])
    s["alarm_since"] = np.where(alarm[:, -1], since, NEVER)
    s["culprit"] = np.where(alarm[:, -1], culprit[:, -1], -1)
    s["active"] = alarm[:, -1].copy()
    found: NDArray[np.intp] = np.where(alarm, culprit, -1)
    return found


def fresh_state(devices: int, fields: int) -> State:
    """Per-device state for ``devices`` new devices (the series runner's and the tests')."""
    found: dict[str, Any] = {}
    for name, (dtype, shape, fill) in core_spec(fields).items():
        found[name] = np.full((devices, *shape), fill, dtype=dtype)
    return found


__all__ = [
    "ACCEPT",
    "BINS",
    "BLOCK",
    "CONFIRM",
    "WARMUP",
    "Z_ON",
    "Found",
    "Prepared",
    "Setup",
    "Tables",
    "advance",
    "core_spec",
    "equivalent_z",
    "fresh_state",
    "largest_z",
    "prepare",
    "table_spec",
]
