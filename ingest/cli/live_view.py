"""The demo's terminal view: rates per kind, rejects by reason, anomalies, alerts, store size."""

from __future__ import annotations

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
from processors.units import human_bytes
from simulators.runner import Progress


@dataclass
class LiveView:
    """Renders the pipeline's state; rates are measured between consecutive renders."""

    title: str
    stats: Callable[[], StatsSnapshot]
    store: Callable[[], SinkHealth]
    simulator: Callable[[], Progress | None]
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
                f"{rates.get(kind, 0.0):,.1f}",
                f"{now.received.get(kind, 0):,}",
                f"{now.stored.get(kind, 0):,}",
                f"{now.rejected.get(kind, 0):,}",
                f"{now.anomalies.get(kind, 0):,}",
            )
        kinds.add_row(
            Text("total", style="bold"),
            f"{sum(rates.values()):,.1f}",
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
                f"{progress.counts.acknowledged:,} acknowledged, {progress.counts.failed:,} failed · "
                f"simulated time {format_rfc3339(progress.sim_ms)}"
            )
        parts: list[RenderableType] = [kinds, reasons]
        if self.alerts is not None:
            parts.append(alert_table(now, self.alerts()))
        parts.append(Text("\n".join(lines)))
        return Panel(Group(*parts), title=self.title)


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
