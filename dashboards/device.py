"""Device drill-down: one device's measures, with its anomalies and alerts laid over them.

The ``kind`` and ``device`` variables pick the device; one panel per measure of
its kind is repeated over the ``field`` variable (``SHOW FIELD KEYS``), so any
kind's device opens here with no edit.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models import dashboard as dash

from dashboards import panels
from dashboards.influxql import InfluxQL, annotation
from dashboards.queries import RP_VARIABLE, alert_annotation_query, policy_query, where
from processors.kinds import KINDS

UID = "citypulse-device"
DEVICE = "\"device\" = '$device'"
TARGET = "\"target\" = '$device'"


def build() -> Dashboard:
    measure = (
        panels.timeseries_panel(
            "$field",
            "The device's readings of this measure (mean per interval); anomalies and alerts as annotations.",
            [
                InfluxQL(
                    f'SELECT mean("$field") AS "$field" FROM "${RP_VARIABLE}"."$kind" {where(DEVICE)} '
                    "GROUP BY time($__interval) fill(none)"
                )
            ],
            width=12,
        )
        .repeat("field")
        .repeat_direction("h")
        .max_per_row(2)
    )
    for kind in KINDS.values():
        for m in kind.measures:
            measure = measure.override_by_name(
                m.name, [dash.DynamicConfigValue(id_val="unit", value=panels.unit_of(m))]
            )
    return (
        Dashboard("citypulse · Device")
        .uid(UID)
        .description("One device: its measures, its anomalies and its alerts.")
        .tags(["citypulse"])
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("browser")
        .link(panels.dashboard_links())
        .with_variable(
            panels.query_variable(
                "kind",
                "Kind",
                'SHOW TAG VALUES FROM "devices" WITH KEY = "kind"',
                multi=False,
                include_all=False,
            )
        )
        .with_variable(
            panels.query_variable(
                "device",
                "Device",
                'SHOW TAG VALUES FROM "devices" WITH KEY = "device" WHERE "kind" = \'$kind\'',
                multi=False,
                include_all=False,
            )
        )
        .with_variable(
            panels.query_variable("field", "Measure", 'SHOW FIELD KEYS FROM "$kind"', include_all=True)
        )
        .with_variable(
            panels.query_variable(
                RP_VARIABLE,
                "Retention",
                policy_query(),
                multi=False,
                include_all=False,
                hidden=True,
                on_time_range=True,
            )
        )
        .annotation(
            annotation(
                "Anomalies",
                f'SELECT "detector", "field", "score" FROM "anomalies" {where(DEVICE)}',
                text="detector",
                tags="field",
                colour=panels.ORANGE,
            )
        )
        .annotation(
            annotation(
                "Alerts fired",
                alert_annotation_query(TARGET),
                text="message",
                tags="severity",
                colour=panels.RED,
            )
        )
        .with_row(Row("Measures"))
        .with_panel(measure)
        .with_row(Row("Events"))
        .with_panel(
            panels.table_panel(
                "Anomalies",
                "The device's alarm onsets: which detector, on which measure, how sure.",
                [
                    InfluxQL(
                        'SELECT "detector", "category", "field", "score", "value" FROM "anomalies" '
                        f"{where(DEVICE)} ORDER BY time DESC LIMIT 500"
                    ).table()
                ],
            )
        )
        .with_panel(
            panels.table_panel(
                "Alerts",
                "Every alert event about the device: fired, acknowledged, resolved.",
                [
                    InfluxQL(
                        'SELECT "rule", "event", "severity", "state", "message" FROM "alerts" '
                        f"{where(TARGET)} "
                        "ORDER BY time DESC LIMIT 500"
                    ).table()
                ],
            )
        )
    )
