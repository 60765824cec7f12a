"""Scenario files: a rehearsal written down (fleet, faults, incidents) in TOML or YAML.

A scenario says what to run and what goes wrong, so an incident drill or a
detector benchmark can be repeated exactly and reviewed like code::

    [run]                      # optional; command-line options win
    devices = 500
    kinds = ["air", "water"]
    span = "1d"
    speed = 0
    seed = 7

    [faults]                   # optional
    inject = ["spike", "stuck"]  # or "all"
    rate = 0.005               # optional: share of readings that start a fault
    [faults.rates]             # optional, per fault
    spike = 0.002

    [[incidents]]              # any number
    type = "pipe_burst"
    at = "+2h"                 # after the simulated start, or an RFC 3339 time
    duration = "3h"
    districts = ["Đống Đa"]
    devices = 3                # how many (nearest a random point), or a list of ids
    severity = 1.0
    mode = ""                  # lighting_outage: "circuit" (default) or "lamp"

``--scenario NAME`` also accepts a built-in scenario: each incident's name (one
such incident with its defaults) or ``incidents`` (all of them).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processors.timestamps import parse_timestamp
from processors.units import parse_duration
from simulators.faults import check_fault_names, parse_faults
from simulators.incidents import IncidentSpec
from simulators.models import INCIDENTS

RUN_KEYS = ("devices", "kinds", "span", "duration", "speed", "seed", "start", "batch", "qos")
FAULT_KEYS = ("inject", "rate", "rates")
INCIDENT_KEYS = ("type", "at", "duration", "districts", "devices", "severity", "mode")


@dataclass(frozen=True)
class Scenario:
    name: str
    run: dict[str, Any] = field(default_factory=dict)
    faults: tuple[str, ...] | None = None
    """Faults to inject; None when the scenario leaves it to the command line."""
    fault_rate: float | None = None
    fault_rates: dict[str, float] = field(default_factory=dict)
    incidents: tuple[IncidentSpec, ...] = ()


def builtin_scenarios() -> dict[str, Scenario]:
    found = {name: Scenario(name, incidents=(IncidentSpec(name),)) for name in INCIDENTS}
    found["incidents"] = Scenario("incidents", incidents=tuple(IncidentSpec(n) for n in INCIDENTS))
    return found


def load_scenario(spec: str) -> Scenario:
    """A built-in scenario by name, or a ``.toml``/``.yaml``/``.yml`` file."""
    builtins = builtin_scenarios()
    if spec in builtins:
        return builtins[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"--scenario {spec!r} is neither a scenario file nor a built-in scenario ({', '.join(builtins)})"
        )
    text = path.read_text(encoding="utf-8")
    return parse_scenario_text(text, path.suffix.lower(), str(path))


def parse_scenario_text(text: str, suffix: str, where: str) -> Scenario:
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as bad:
            raise ValueError(f"{where}: not valid TOML: {bad}") from None
    elif suffix in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped,unused-ignore]

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as bad:
            raise ValueError(f"{where}: not valid YAML: {bad}") from None
    else:
        raise ValueError(f"{where}: a scenario file ends in .toml, .yaml or .yml")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a scenario is a table of [run], [faults] and [[incidents]]")
    return parse_scenario(data, where)


def _unknown(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    extra = [k for k in data if k not in known]
    if extra:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(str, extra))}; known: {', '.join(known)}")


def parse_scenario(data: Mapping[str, Any], where: str) -> Scenario:
    """Check a scenario's content; every error names the file, the entry and the fix."""
    _unknown(data, ("run", "faults", "incidents"), where)
    run = dict(_table(data.get("run", {}), f"{where}: [run]"))
    _unknown(run, RUN_KEYS, f"{where}: [run]")
    for key in ("span", "duration"):
        if key in run:
            run[key] = _duration(run[key], f"{where}: [run] {key}")
    if "kinds" in run and isinstance(run["kinds"], list):
        run["kinds"] = ",".join(str(k) for k in run["kinds"])
    for key, low in (("devices", 1), ("seed", None), ("batch", 0), ("qos", 0)):
        value = run.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low)
        ):
            raise ValueError(
                f"{where}: [run] {key} must be a whole number" + (f" of at least {low}" if low else "")
            )
    if run.get("qos") not in (None, 0, 1):
        raise ValueError(f"{where}: [run] qos must be 0 or 1")
    speed = run.get("speed")
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int | float) or speed < 0):
        raise ValueError(f"{where}: [run] speed must be a number >= 0 (0: as fast as possible)")
    if "start" in run and not isinstance(run["start"], str):
        run["start"] = run["start"].isoformat() if hasattr(run["start"], "isoformat") else str(run["start"])
    faults = _table(data.get("faults", {}), f"{where}: [faults]")
    _unknown(faults, FAULT_KEYS, f"{where}: [faults]")
    chosen: tuple[str, ...] | None = None
    if "inject" in faults:
        inject = faults["inject"]
        try:
            if isinstance(inject, str):
                chosen = parse_faults(inject)
            elif isinstance(inject, list):
                chosen = check_fault_names([str(n) for n in inject])
            else:
                raise ValueError('inject is "all", "none" or a list of fault names')
        except ValueError as bad:
            raise ValueError(f"{where}: [faults] {bad}") from None
    rate = faults.get("rate")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1
    ):
        raise ValueError(f"{where}: [faults] rate must be a number between 0 and 1")
    rates = dict(_table(faults.get("rates", {}), f"{where}: [faults.rates]"))
    try:
        check_fault_names(list(rates))
    except ValueError as bad:
        raise ValueError(f"{where}: [faults.rates] {bad}") from None
    for name, value in rates.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{where}: [faults.rates] {name} must be a number between 0 and 1")
    entries = data.get("incidents", [])
    if not isinstance(entries, list):
        raise ValueError(f"{where}: incidents must be a list ([[incidents]] in TOML, '- type: ...' in YAML)")
    incidents = tuple(
        _incident(entry, f"{where}: incidents[{i}]") for i, entry in enumerate(entries, start=1)
    )
    return Scenario(
        name=where,
        run=run,
        faults=chosen,
        fault_rate=float(rate) if rate is not None else None,
        fault_rates={k: float(v) for k, v in rates.items()},
        incidents=incidents,
    )


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a table of key = value")
    return value


def _duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as bad:
            raise ValueError(f"{where}: {bad}") from None
    else:
        raise ValueError(f'{where}: give a duration such as "90m" or a number of seconds')
    if seconds <= 0:
        raise ValueError(f"{where}: must be positive")
    return seconds


def _incident(entry: Any, where: str) -> IncidentSpec:
    data = _table(entry, where)
    _unknown(data, INCIDENT_KEYS, where)
    if "type" not in data:
        raise ValueError(f"{where}: missing 'type'; choose from {', '.join(INCIDENTS)}")
    at = data.get("at")
    if at is not None and not isinstance(at, str):
        at = at.isoformat() if hasattr(at, "isoformat") else str(at)
    districts = data.get("districts", [])
    if isinstance(districts, str):
        districts = [districts]
    devices = data.get("devices")
    if isinstance(devices, list):
        devices = tuple(str(d) for d in devices)
    elif devices is not None and (isinstance(devices, bool) or not isinstance(devices, int)):
        raise ValueError(f"{where}: devices is a number of devices or a list of device ids")
    severity = data.get("severity", 1.0)
    if isinstance(severity, bool) or not isinstance(severity, int | float):
        raise ValueError(f"{where}: severity must be a number")
    spec = IncidentSpec(
        type=str(data["type"]),
        at=at,
        duration_s=_duration(data["duration"], f"{where}: duration") if "duration" in data else None,
        districts=tuple(str(d) for d in districts),
        devices=devices,
        severity=float(severity),
        mode=str(data.get("mode", "")),
    )
    try:
        spec.check()
        if spec.at is not None and not spec.at.startswith("+"):
            parse_timestamp(spec.at)
        elif spec.at is not None:
            parse_duration(spec.at[1:])
    except ValueError as bad:
        raise ValueError(f"{where}: {bad}") from None
    return spec
