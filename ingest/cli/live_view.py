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
        return Panel(Group(kinds, reasons, Text("\n".join(lines))), title=self.title)
