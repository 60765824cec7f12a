"""Evaluating streaming detectors on real labelled recordings (SKAB): pure code over arrays.

Each recording (one file: one device, several measures, labels per row) is
streamed through a *runner* from a fresh state, learning as it goes, and the
runner says which rows it alarms on and where it sees a change. The outcome is
scored with SKAB's own metrics (:mod:`processors.skab`), per part of the
dataset, over every row and over the leaderboard's test rows (each file's rows
after the first :data:`TRAIN_ROWS`, which the published offline models trained
on). ``anomaly-free`` recordings carry no labels: what counts there is how many
rows after the warm-up alarm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from processors.series import PER_MEASURE_DETECTORS, SeriesScorer
from processors.skab import PROFILES, Confusion, NabCounts, confusion, edges, nab_counts, nab_score

TRAIN_ROWS = 400
"""SKAB's split: the first 400 rows of each file train the published models; the rest is the test."""


@dataclass(frozen=True, eq=False)
class Recording:
    """One file: a device's readings in time order, and its labels when it has them."""

    name: str
    part: str
    ts_ms: NDArray[np.int64]
    values: NDArray[np.float64]
    """Shape (rows, measures)."""
    measures: tuple[str, ...]
    anomaly: NDArray[np.bool_] | None = None
    changepoint: NDArray[np.bool_] | None = None


@dataclass(frozen=True, eq=False)
class Flags:
    """What a runner said about each row of a recording."""

    alarm: NDArray[np.bool_]
    """The outlier prediction: rows the detector alarms on."""
    score: NDArray[np.float64]
    """The anomaly score in [0, 1]: the evidence at each row."""
    threshold: float = 0.5

    def changes(self, signal: str, rows: slice = slice(None)) -> NDArray[np.bool_]:
        """Predicted changepoints among ``rows``: ``edges`` of the alarm (SKAB's way: where it rises or
        falls) or ``onsets`` of the score (where it reaches the threshold); the first row counts if set."""
        if signal == "edges":
            return edges(self.alarm[rows])
        high = self.score[rows] >= self.threshold
        onset = high.copy()
        onset[1:] &= ~high[:-1]
        return onset


Runner = Callable[[Recording], Flags]
"""Streams one recording through a fresh detector set."""


@dataclass
class PartResult:
    """Pooled metrics of one part of the dataset (valve1, valve2, other, anomaly-free)."""

    files: int = 0
    rows: int = 0
    outliers: Confusion = field(default_factory=Confusion)
    changes: dict[str, list[NabCounts]] = field(default_factory=lambda: {"edges": [], "onsets": []})
    alarm_rows: int = 0
    """Rows alarmed after the warm-up (what counts on unlabelled, anomaly-free recordings)."""
    alarm_onsets: int = 0

    def summary(self) -> dict[str, float | int]:
        found: dict[str, float | int] = {"files": self.files, "rows": self.rows}
        if self.outliers.tp + self.outliers.fn:
            found.update(
                f1=round(self.outliers.f1, 3),
                far=round(self.outliers.far, 2),
                mar=round(self.outliers.mar, 2),
            )
            for signal, counts in self.changes.items():
                for profile in PROFILES:
                    found[f"nab_{profile.name}_{signal}"] = round(nab_score(counts, profile), 2)
                found[f"cp_missed_{signal}"] = sum(c.misses for c in counts)
                found[f"cp_false_{signal}"] = sum(c.false_positives for c in counts)
        found["alarm_rows_after_warmup"] = self.alarm_rows
        found["alarm_onsets_after_warmup"] = self.alarm_onsets
        return found


def run(
    recordings: Iterable[Recording], runner: Runner, progress: Callable[[Recording], None] | None = None
) -> list[Flags]:
    """Stream each recording through ``runner`` (a fresh detector set each): what it said of every row."""
    found = []
    for recording in recordings:
        found.append(runner(recording))
        if progress is not None:
            progress(recording)
    return found


def evaluate(
    recordings: Iterable[Recording], flags: Iterable[Flags], first_row: int = 0
) -> dict[str, PartResult]:
    """Pool SKAB's metrics per part over what a runner said of each recording (:func:`run`).

    The detector saw every row from the first; ``first_row`` says from which row on its
    answers are scored (0 for every row, :data:`TRAIN_ROWS` for the leaderboard's test
    part). Alarms on anomaly-free recordings are counted after :data:`TRAIN_ROWS` rows
    of warm-up, whatever ``first_row``.
    """
    results: dict[str, PartResult] = {}
    for recording, said in zip(recordings, flags, strict=True):
        part = results.setdefault(recording.part, PartResult())
        part.files += 1
        scored = slice(first_row, None)
        part.rows += int(recording.ts_ms[scored].size)
        warm = slice(TRAIN_ROWS, None)
        part.alarm_rows += int(np.count_nonzero(said.alarm[warm]))
        part.alarm_onsets += int(np.count_nonzero(said.changes("edges", warm) & said.alarm[warm]))
        if recording.anomaly is not None and recording.changepoint is not None:
            part.outliers += confusion(recording.anomaly[scored], said.alarm[scored])
            truth = recording.ts_ms[scored][recording.changepoint[scored]]
            for signal, counts in part.changes.items():
                predicted = recording.ts_ms[scored][said.changes(signal, scored)]
                counts.append(nab_counts(truth, predicted))
    labelled = [r for r in results.values() if r.outliers.tp + r.outliers.fn]
    if len(labelled) > 1:
        results[POOLED] = pooled(labelled)
    return results


POOLED = "all labelled"
"""The pseudo-part pooling every labelled part (the dataset's own figure)."""


def pooled(parts: Iterable[PartResult]) -> PartResult:
    """Several parts' counts together, as if they were one."""
    found = PartResult()
    for part in parts:
        found.files += part.files
        found.rows += part.rows
        found.outliers += part.outliers
        for signal, counts in part.changes.items():
            found.changes[signal].extend(counts)
        found.alarm_rows += part.alarm_rows
        found.alarm_onsets += part.alarm_onsets
    return found


TODAY_SAMPLE_ROWS = 2_000
"""``citypulse detect`` learns a series' normal band from its first 2,000 readable rows."""


def today(recording: Recording) -> Flags:
    """``citypulse detect``'s per-measure detectors, each measure alone; a row alarms when any scores >= 0.5.

    Each measure goes through :class:`~processors.series.SeriesScorer` as the command
    fed it before the generic detector (its normal band from the first 2,000 rows;
    spike, shift, noise and stuck), and is scored as it was then.
    """
    best = np.zeros(recording.ts_ms.size)
    for column in range(recording.values.shape[1]):
        values = recording.values[:, column]
        sample = values[:TODAY_SAMPLE_ROWS], recording.ts_ms[:TODAY_SAMPLE_ROWS]
        scorer = SeriesScorer(*sample, detectors=PER_MEASURE_DETECTORS)
        np.maximum(best, scorer.score(recording.ts_ms, values).score, out=best)
    return Flags(alarm=best >= 0.5, score=best)


def generic(recording: Recording) -> Flags:
    """The generic detector on the recording's measures as one device, as ``citypulse detect`` runs it."""
    sample = recording.values[:TODAY_SAMPLE_ROWS], recording.ts_ms[:TODAY_SAMPLE_ROWS]
    found = SeriesScorer(*sample).score(recording.ts_ms, recording.values)
    return Flags(alarm=found.alarm, score=found.score.astype(np.float64))


RUNNERS: Mapping[str, Runner] = MappingProxyType({"today": today, "generic": generic})
"""The detector sets ``citypulse evaluate-real`` compares: the per-measure detectors ``citypulse detect``
ran before, and the generic detector it runs now."""
