"""History that stays fast: a raw retention policy, an hourly rollup, and which one a range reads.

Years of 100,000 devices do not fit raw, so readings (and the hourly air indices)
are kept raw for ``CITYPULSE_RETENTION_RAW_DAYS`` in the default retention policy
``autogen``, and rolled up per device and hour into ``rollup_1h``, kept for
``CITYPULSE_RETENTION_ROLLUP_DAYS``. A rollup point carries, per field ``f``,
``f`` (the hour's mean, under the raw name, so a dashboard query reads either
policy unchanged), ``f_min``, ``f_max`` and ``f_count``.

Which policy a dashboard reads is decided in InfluxDB itself: a small
``rp_config`` measurement holds, per policy, the range of time-range lengths it
serves, and the dashboards' hidden ``rp`` variable selects the row for the
range on screen (:func:`rp_variable_query`). Everything here is text and
numbers; ``citypulse storage setup`` (``ingest/storage_setup.py``) sends it.

This module names the InfluxDB 1.x objects (retention policies, continuous
queries) and the InfluxDB 2.x ones (buckets ``db`` and ``db/rollup_1h``, which
InfluxDB 2.7+ maps to the same database and policy names for InfluxQL, and a
Flux task per measurement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from processors.air_index import MEASUREMENT as AQI_MEASUREMENT
from processors.air_index import applies_to, index_fields
from processors.kinds import KINDS

RAW_RP = "autogen"
ROLLUP_RP = "rollup_1h"
RP_CONFIG = "rp_config"
ROLLUP_EVERY = "1h"
RESAMPLE_FOR = "6h"
"""Each hourly run recomputes the last 6 hours, so readings that arrive late (a spool
replayed after an outage) still reach the rollup; older backlogs need a backfill."""
STATISTICS = ("mean", "min", "max", "count")
DAY_MS = 86_400_000


def rollup_measurements() -> dict[str, tuple[str, ...]]:
    """Each rolled-up measurement and its fields: every sensor kind, and the air indices."""
    found = {name: kind.measure_names for name, kind in KINDS.items()}
    aqi: list[str] = []
    for kind in KINDS.values():
        if applies_to(kind):
            aqi.extend(f for f in index_fields(kind) if f not in aqi)
    if aqi:
        found[AQI_MEASUREMENT] = tuple(aqi)
    return found


def rollup_name(field: str, statistic: str) -> str:
    """The rollup field holding ``statistic`` of ``field``: the mean keeps the raw name."""
    return field if statistic == "mean" else f"{field}_{statistic}"


def quote(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rollup_select(db: str, measurement: str, fields: Sequence[str], where: str = "") -> str:
    """``SELECT ... INTO`` the rollup, per device and hour; ``where`` limits the time (a backfill)."""
    columns = ", ".join(
        f"{statistic}({quote(f)}) AS {quote(rollup_name(f, statistic))}"
        for f in fields
        for statistic in STATISTICS
    )
    source = f"{quote(db)}.{quote(RAW_RP)}.{quote(measurement)}"
    target = f"{quote(db)}.{quote(ROLLUP_RP)}.{quote(measurement)}"
    condition = f" WHERE {where}" if where else ""
    return f"SELECT {columns} INTO {target} FROM {source}{condition} GROUP BY time({ROLLUP_EVERY}), *"


def continuous_query_name(measurement: str) -> str:
    return f"citypulse_rollup_{measurement}"


def continuous_query(db: str, measurement: str, fields: Sequence[str]) -> str:
    """The 1.x continuous query that keeps ``measurement``'s rollup up to date, hour by hour."""
    return (
        f"CREATE CONTINUOUS QUERY {quote(continuous_query_name(measurement))} ON {quote(db)} "
        f"RESAMPLE EVERY {ROLLUP_EVERY} FOR {RESAMPLE_FOR} BEGIN {rollup_select(db, measurement, fields)} END"
    )


def duration(days: float) -> str:
    """An InfluxQL duration for a number of days (whole hours)."""
    return f"{max(1, round(days * 24))}h"


@dataclass(frozen=True)
class PolicyChoice:
    """One row of ``rp_config``: ``rp`` serves time ranges of ``min_range_ms`` up to ``max_range_ms``."""

    name: str
    rp: str
    min_range_ms: int
    max_range_ms: int

    def line(self, ts_ms: int) -> str:
        """The row as line protocol, in milliseconds."""
        return (
            f'{RP_CONFIG},name={self.name} rp="{self.rp}",min_range_ms={self.min_range_ms}i,'
            f"max_range_ms={self.max_range_ms}i {ts_ms}"
        )


def policy_choices(rollup_from_days: float) -> tuple[PolicyChoice, PolicyChoice]:
    """Raw data for ranges up to ``rollup_from_days``, the rollup beyond."""
    edge = round(rollup_from_days * DAY_MS)
    return (
        PolicyChoice("raw", RAW_RP, 0, edge),
        PolicyChoice("rollup", ROLLUP_RP, edge, 2**62),
    )


def rp_variable_query() -> str:
    """The dashboards' ``rp`` variable: the policy serving the range on screen.

    ``${__from}`` and ``${__to}`` are Grafana's global range variables (epoch ms).

    >>> "${__to} - ${__from}" in rp_variable_query()
    True
    """
    span = "${__to} - ${__from}"
    return (
        f'SELECT "rp" FROM {quote(ROLLUP_RP)}.{quote(RP_CONFIG)} '
        f'WHERE "min_range_ms" <= {span} AND "max_range_ms" > {span}'
    )


def flux_task(bucket: str, measurement: str, fields: Sequence[str]) -> str:
    """The InfluxDB 2.x task that does what the 1.x continuous query does (every hour, last 6 hours)."""
    rollup_bucket = f"{bucket}/{ROLLUP_RP}"
    wanted = ", ".join(f'"{f}"' for f in fields)
    parts = []
    for statistic in STATISTICS:
        suffix = "" if statistic == "mean" else f"_{statistic}"
        parts.append(
            f"{statistic} = data\n"
            f"    |> aggregateWindow(every: {ROLLUP_EVERY}, fn: {statistic}, createEmpty: false, "
            f'timeSrc: "_start")\n'
            f'    |> map(fn: (r) => ({{r with _field: r._field + "{suffix}", _value: float(v: r._value)}}))'
        )
    return (
        f'option task = {{name: "{continuous_query_name(measurement)}", every: {ROLLUP_EVERY}, '
        "offset: 5m}\n\n"
        f'data = from(bucket: "{bucket}")\n'
        f"    |> range(start: -{RESAMPLE_FOR})\n"
        f'    |> filter(fn: (r) => r._measurement == "{measurement}" and contains(value: r._field, '
        f"set: [{wanted}]))\n\n" + "\n\n".join(parts) + "\n\n"
        f'union(tables: [{", ".join(STATISTICS)}])\n    |> to(bucket: "{rollup_bucket}")\n'
    )
