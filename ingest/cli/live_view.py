"""The demo's terminal view: rates per kind, rejects by reason, anomalies, alerts, store size."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ingest.sinks.base import SinkHealth
from ingest.stats import StatsSnapshot
from processors.alerts import AlertEvent
from processors.kinds import KINDS
from processors.timestamps import format_rfc3339
from processors.units import human_bytes, human_rate
from simulators.runner import Progress

SHOWN_DETECTORS = 8


def _span(seconds: float) -> str:
    """``93784`` -> ``'1 d 2 h'``: how far behind, roughly."""
    minutes = int(seconds // 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min" if mins else f"{int(seconds)} s"


@dataclass
class LiveView:
    """Renders the pipeline's state; rates are measured between consecutive renders."""

    title: str
    stats: Callable[[], StatsSnapshot]
    store: Callable[[], SinkHealth]
    simulator: Callable[[], Progress | None]
    speed: float = 1.0
    hint: str = ""
    """A last line, e.g. how to look closer."""
    alerts: Callable[[], list[AlertEvent]] | None = None
    """The latest alert events (oldest first), when alerts are on."""
    _previous: StatsSnapshot | None = None
    _rates: dict[str, float] | None = None

    def _update_rates(self, now: StatsSnapshot) -> dict[str, float]:
        previous = self._previous
        if previous is None or now.at - previous.at >= 1.0:
            if previous is not None:
                span = now.at - previous.at
                self._rates = {
                    kind: (now.received.get(kind, 0) - previous.received.get(kind, 0)) / span
                    for kind in set(now.received) | set(previous.received)
                }
            self._previous = now
        return self._rates or {}

    def render(self) -> RenderableType:
        now = self.stats()
        rates = self._update_rates(now)
        kinds = Table(title="Readings by kind", expand=True)
        for column in ("kind", "readings/s", "received", "stored", "rejected", "anomalies"):
            kinds.add_column(column, justify="left" if column == "kind" else "right")
        names = list(KINDS) + sorted(k for k in now.received if k not in KINDS)
        for kind in names:
            kinds.add_row(
                KINDS[kind].title if kind in KINDS else kind,
                human_rate(rates.get(kind, 0.0)),
                f"{now.received.get(kind, 0):,}",
                f"{now.stored.get(kind, 0):,}",
                f"{now.rejected.get(kind, 0):,}",
                f"{now.anomalies.get(kind, 0):,}",
            )
        kinds.add_row(
            Text("total", style="bold"),
            human_rate(sum(rates.values())),
            f"{sum(now.received.values()):,}",
            f"{sum(now.stored.values()):,}",
            f"{sum(now.rejected.values()):,}",
            f"{sum(now.anomalies.values()):,}",
            style="bold",
        )
        reasons = Table(title="Rejected by reason (dead-lettered)", expand=True)
        reasons.add_column("reason")
        reasons.add_column("count", justify="right")
        for reason, count in sorted(now.reasons.items(), key=lambda kv: -kv[1]):
            reasons.add_row(reason, f"{count:,}")
        if not now.reasons:
            reasons.add_row("none yet", "0")
        detectors = Table(title="Anomalies by detector (onsets)", expand=True)
        detectors.add_column("kind / detector")
        detectors.add_column("count", justify="right")
        ranked = sorted(now.anomaly_detectors.items(), key=lambda kv: (-kv[1], kv[0]))
        for (kind, detector), count in ranked[:SHOWN_DETECTORS]:
            detectors.add_row(f"{kind} / {detector}", f"{count:,}")
        if len(ranked) > SHOWN_DETECTORS:
            rest = sum(n for _, n in ranked[SHOWN_DETECTORS:])
            detectors.add_row(f"{len(ranked) - SHOWN_DETECTORS} more", f"{rest:,}")
        if not ranked:
            detectors.add_row("none yet", "0")
        health = self.store()
        size = human_bytes(health.size_bytes) if health.size_bytes is not None else "?"
        lines = [
            f"store: {health.detail} · {size} · {'ok' if health.ok else 'FAILING'}",
            f"anomalies so far: {sum(now.anomalies.values()):,} · alerts so far: {now.alerts:,} · "
            f"store write failures: {now.write_failures:,}",
        ]
        progress = self.simulator()
        if progress is not None:
            lines.append(
                f"simulator: {progress.messages:,} messages ({progress.readings:,} readings), "
                f"{progress.counts.acknowledged:,} acknowledged, {progress.counts.failed:,} failed"
            )
            lines.append(f"simulated time {format_rfc3339(progress.sim_ms)} · {self._pace(progress)}")
        if self.hint:
            lines.append(self.hint)
        tables = Table.grid(expand=True)
        tables.add_column(ratio=1)
        tables.add_column(ratio=1)
        tables.add_row(reasons, detectors)
        parts: list[RenderableType] = [kinds, tables]
        if self.alerts is not None:
            parts.append(alert_table(now, self.alerts()))
        parts.append(Text("\n".join(lines)))
        return Panel(Group(*parts), title=self.title)

    def _pace(self, progress: Progress) -> str:
        behind_s = (time.time_ns() // 1_000_000 - progress.sim_ms) / 1000.0
        # Progress comes every half second: a replay that close to the present has caught up.
        if behind_s > max(5.0, self.speed) and self.speed > 1:
            return f"replaying the past at {self.speed:g}x, {_span(behind_s)} behind the present"
        return "live: the fleet's natural rate"


SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def alert_table(now: StatsSnapshot, events: list[AlertEvent], latest: int = 6) -> Table:
    """Alerts by severity and kind, and the latest events: what fired, escalated, resolved."""
    by_severity = " · ".join(f"{s} {n}" for s, n in sorted(now.alerts_by_severity.items())) or "none"
    by_kind = " · ".join(f"{k} {n}" for k, n in sorted(now.alerts_by_kind.items())) or "none"
    table = Table(
        title=f"Alerts: {now.alerts:,} fired ({by_severity}; by kind {by_kind}), "
        f"{now.alerts_resolved:,} resolved, {now.alerts_open:,} open",
        expand=True,
    )
    for column in ("time (data)", "event", "severity", "rule", "target", "message"):
        table.add_column(column, overflow="fold")
    for e in events[-latest:]:
        a = e.alert
        table.add_row(
            format_rfc3339(e.at_ms)[11:19],
            str(e.type) + (" (silenced)" if e.silenced else ""),
            Text(str(a.severity), style=SEVERITY_STYLE.get(str(a.severity), "")),
            a.rule,
            a.target,
            a.message_vi or a.message,
        )
    if not events:
        table.add_row("", "none yet", "", "", "", "")
    return table
