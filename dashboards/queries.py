"""InfluxQL text the dashboards share: variable filters, the retention-policy switch, annotations.

Queries are plain InfluxQL, which InfluxDB 1.x, 2.x (v1 compatibility API and the
bucket's DBRP mapping) and 3.x all answer, with Grafana's macros (``$timeFilter``,
``$__interval``) and template variables. Readings are read from ``"$rp"``, the
retention policy the hidden ``rp`` variable picks for the range on screen (raw up
to a few days, the hourly rollup beyond: :mod:`processors.retention`).
"""

from __future__ import annotations

from collections.abc import Iterable

from processors.retention import RAW_RP, quote, rp_variable_query

RP_VARIABLE = "rp"
BY_DISTRICT = 'GROUP BY time($__interval), "district" fill(none)'


def matches(tag: str, variable: str) -> str:
    """``"tag" =~ /^$variable$/``: a multi-value variable (``.*`` for All) filtering a tag."""
    return f"{quote(tag)} =~ /^${variable}$/"


def where(*conditions: str) -> str:
    """``WHERE $timeFilter AND ...``."""
    return " AND ".join(("WHERE $timeFilter", *conditions))


def readings(measurement: str) -> str:
    """A readings measurement in the retention policy chosen for the range on screen."""
    return f"{quote('$' + RP_VARIABLE)}.{quote(measurement)}"


def raw(measurement: str) -> str:
    return f"{quote(RAW_RP)}.{quote(measurement)}"


def fields(names: Iterable[str]) -> str:
    return ", ".join(quote(n) for n in names)


def policy_query() -> str:
    return rp_variable_query()


def alert_annotation_query(*conditions: str) -> str:
    """Fired alerts (the ``alerts`` measurement) as annotations, narrowed by the page's variables."""
    fired = "\"event\" = 'fired'"
    return 'SELECT "message", "severity" FROM "alerts" ' + where(*conditions, fired)
