"""The catalogue of faults the simulator can inject, each with its default rate and expected outcome.

Three families, matching the labels file's ``scope``:

``signal``
    The sensor misbehaves but the message is valid: the pipeline stores it, and
    only anomaly detection can notice (spike, drift, stuck, dropout, noise_burst).
``message``
    The message itself is bad or badly delivered. Bad content has exactly one reject
    reason the pipeline must give (``expected_reason``); delivery faults
    (duplicates, out_of_order, clock_skew) test ordering and time handling.
``incident``
    A real-world event staged by a scenario (pipe burst, bin fire, ...), see
    :mod:`simulators.incidents`.
``behaviour``
    Something real devices do that is *not* a fault, but that detectors must
    tolerate: a device offline for hours (``gap``), a large but normal excursion
    (``excursion``). Labelled so the evaluation can tell the alarms they cause
    from true detections.

The real-data behaviours (``gap``, ``excursion``, and ``recalibration``, a sensor
re-zeroed after maintenance: a level step that is a real change, to be seen once)
are not part of ``all``, so a scenario that injects ``all`` keeps its meaning;
name them (``all,gap,excursion,recalibration``) to add them.

Rates are the probability that a given reading starts that fault (for faults
that spoil a whole gateway message: that a given message does). ``--fault-rate R``
keeps the chosen faults' proportions and scales them so that together they start
on a share R of readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from processors.reasons import Reason


class Scope(StrEnum):
    SIGNAL = "signal"
    MESSAGE = "message"
    INCIDENT = "incident"
    BEHAVIOUR = "behaviour"


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    scope: Scope
    rate: float
    """Default probability that a reading starts this fault."""
    reason: Reason | None
    """The reject reason the pipeline must give, or None when the reading must be stored."""
    description: str
    whole_message: bool = False
    """Spoils a whole message: in gateway mode every reading of the batch is lost with it."""
    single_only: bool = False
    """Only meaningful on one-reading topics (the topic names the device)."""
    min_intervals: int = 1
    """Shortest episode, in the device's reporting intervals."""
    in_all: bool = True
    """Part of ``all``; the real-data behaviours are added by name."""


FAULTS: Mapping[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "spike", Scope.SIGNAL, 5e-4, None, "one reading of one field jumps by >= 6x its usual variation"
        ),
        Fault(
            "drift",
            Scope.SIGNAL,
            1e-4,
            None,
            "one field drifts linearly by >= half its normal band",
            min_intervals=12,
        ),
        Fault("stuck", Scope.SIGNAL, 2e-4, None, "one field repeats exactly the same value", min_intervals=8),
        Fault("dropout", Scope.SIGNAL, 2e-4, None, "the device falls silent", min_intervals=6),
        Fault("noise_burst", Scope.SIGNAL, 2e-4, None, "one field's noise grows >= 6-fold", min_intervals=6),
        Fault("out_of_range", Scope.MESSAGE, 5e-4, Reason.OUT_OF_RANGE, "a value beyond the sensor's range"),
        Fault(
            "malformed_json",
            Scope.MESSAGE,
            5e-4,
            Reason.MALFORMED_JSON,
            "the payload is cut short",
            whole_message=True,
        ),
        Fault("wrong_type", Scope.MESSAGE, 5e-4, Reason.WRONG_TYPE, "a number sent as a string"),
        Fault("not_finite", Scope.MESSAGE, 2e-4, Reason.NOT_FINITE, "NaN or Infinity as a value"),
        Fault("missing_timestamp", Scope.MESSAGE, 2e-4, Reason.MISSING_TIMESTAMP, "no 'ts' field"),
        Fault(
            "unknown_device", Scope.MESSAGE, 5e-4, Reason.UNKNOWN_DEVICE, "a device that is not registered"
        ),
        Fault(
            "device_mismatch",
            Scope.MESSAGE,
            2e-4,
            Reason.DEVICE_MISMATCH,
            "the payload names another device than the topic",
            single_only=True,
        ),
        Fault(
            "oversized",
            Scope.MESSAGE,
            1e-4,
            Reason.PAYLOAD_TOO_LARGE,
            "a payload over the size limit",
            whole_message=True,
        ),
        Fault("duplicates", Scope.MESSAGE, 5e-4, Reason.DUPLICATE, "the same reading delivered twice"),
        Fault("out_of_order", Scope.MESSAGE, 5e-4, None, "a reading delivered after >= 2 later ones"),
        Fault(
            "clock_skew",
            Scope.MESSAGE,
            1e-4,
            None,
            "the device clock is off by minutes to hours for a while (beyond CITYPULSE_MAX_FUTURE_S: "
            "rejected as timestamp_in_future)",
            min_intervals=6,
        ),
        Fault(
            "recalibration",
            Scope.SIGNAL,
            3e-5,
            None,
            "one field's level steps for good by 15-40 % of its normal band (a sensor re-zeroed after "
            "maintenance): a real change, to be seen once and then learned",
            in_all=False,
        ),
        Fault(
            "gap",
            Scope.BEHAVIOUR,
            3e-5,
            None,
            "the device is offline for 1-12 h (power, maintenance): expected silence, not a sensor fault",
            min_intervals=6,
            in_all=False,
        ),
        Fault(
            "excursion",
            Scope.BEHAVIOUR,
            3e-4,
            None,
            "one field makes a large but normal excursion over 3-8 readings (a passing plume, a gust), "
            "its size heavy-tailed (Student-t)",
            min_intervals=3,
            in_all=False,
        ),
    )
}
"""Every injectable fault, by name, in a fixed order (the order of the labels' random draws)."""


def parse_faults(spec: str) -> tuple[str, ...]:
    """``"all"``, ``"none"``/``""`` or a comma-separated list of fault names (``all`` among them), checked.

    >>> parse_faults("spike, stuck,spike")
    ('spike', 'stuck')
    >>> parse_faults("all,gap")[-3:]
    ('out_of_order', 'clock_skew', 'gap')
    """
    spec = spec.strip()
    if not spec or spec == "none":
        return ()
    return check_fault_names([s.strip() for s in spec.split(",") if s.strip()])


def check_fault_names(names: Sequence[str]) -> tuple[str, ...]:
    """The names, checked, in the order given, ``all`` expanded to every fault that is part of it."""
    unknown = [n for n in names if n not in FAULTS and n != "all"]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from: all, {', '.join(FAULTS)}")
    expanded: list[str] = []
    for name in names:
        if name == "all":
            expanded.extend(n for n, f in FAULTS.items() if f.in_all)
        else:
            expanded.append(name)
    return tuple(dict.fromkeys(expanded))


def fault_rates(
    names: Sequence[str], total: float | None = None, overrides: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The onset rate of each chosen fault.

    Defaults come from the catalogue; ``overrides`` (per fault) replace them; ``total``
    then rescales all of them together so they add up to it.

    >>> fault_rates(["spike", "stuck"], total=0.07)
    {'spike': 0.05, 'stuck': 0.02}
    """
    rates = {n: FAULTS[n].rate for n in names}
    for name, rate in (overrides or {}).items():
        if name not in rates:
            raise ValueError(f"a rate is given for {name!r}, which is not among the faults chosen")
        rates[name] = rate
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"the rate of {name} must be between 0 and 1, not {rate}")
    if total is not None:
        if not 0.0 <= total <= 1.0:
            raise ValueError(f"--fault-rate must be between 0 and 1, not {total}")
        current = sum(rates.values())
        rates = {n: (r * total / current if current else 0.0) for n, r in rates.items()}
        rates = {n: round(r, 12) for n, r in rates.items()}
    return rates
