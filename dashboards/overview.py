"""City overview: is the city all right, and which devices need someone now?

A map of Hanoi with every device coloured by its state, VN_AQI by district, the
open alerts, readings per second by kind, the devices silent now and the ten
devices with the most alarms.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models import dashboard as dash

from dashboards import panels
from dashboards.influxql import InfluxQL, annotation
from dashboards.queries import RP_VARIABLE, alert_annotation_query, matches, policy_query, readings, where
from processors.air_index import MEASUREMENT as AQI
from processors.kinds import KINDS

UID = "citypulse-overview"
HANOI = (21.0285, 105.8542)
STATE_COLOURS = {"ok": panels.GREEN, "anomalous": panels.ORANGE, "alerting": panels.RED, "silent": "#8e8e8e"}
DEVICE_LINK = (
    "/d/citypulse-device?var-kind=${__data.fields.kind}"
    "&var-device=${__data.fields.device}&${__url_time_range}"
)
VN_AQI_COLOURS = panels.steps(
    (None, "#00e400"), (51, "#ffff00"), (101, "#ff7e00"), (151, "#ff0000"), (201, "#8f3f97"), (301, "#7e0023")
)
"""Decision 1459/QĐ-TCMT's categories: Tốt, Trung bình, Kém, Xấu, Rất xấu, Nguy hại."""


def vn_aqi_by_district(width: int = 12) -> panels.TimeseriesPanel:
    return panels.timeseries_panel(
        "VN_AQI by district",
        "Hourly VN_AQI (Decision 1459/QĐ-TCMT: NowCast for PM, 1-hour means for gases), the mean of "
        "each district's monitors. 0-50 good, 51-100 moderate, 101-150 poor, 151-200 bad, 201-300 very bad.",
        [
            InfluxQL(
                f'SELECT mean("vn_aqi") FROM {readings(AQI)} '
                f'{where(matches("district", "district"))} GROUP BY time(1h), "district" fill(none)'
            ).alias("$tag_district")
        ],
        thresholds=VN_AQI_COLOURS,
        width=width,
    )


def build() -> Dashboard:
    devices_now = (
        'SELECT last("state") AS "state", last("lat") AS "lat", last("lon") AS "lon" FROM "devices" '
        f"{where(matches('kind', 'kind'), matches('district', 'district'))} "
        'GROUP BY "device", "kind", "district"'
    )
    silent_now = (
        'SELECT "state" FROM (SELECT last("state") AS "state" FROM "devices" '
        f"{where(matches('kind', 'kind'), matches('district', 'district'))} "
        'GROUP BY "device", "kind", "district") WHERE $timeFilter AND "state" = \'silent\' '
        'GROUP BY "device", "kind", "district"'
    )
    open_alerts = (
        'SELECT last("open") AS "open", "severity", "message", "id", "state" FROM "alerts" '
        f"WHERE time > now() - 30d AND {matches('kind', 'kind')} AND {matches('district', 'district')} "
        'GROUP BY "rule", "target"'
    )
    worst = (
        'SELECT "device", "detector", "score" FROM "anomalies" '
        f"{where(matches('kind', 'kind'), matches('district', 'district'))}"
    )
    rate = InfluxQL(
        "SELECT "
        + ", ".join(f'non_negative_derivative(max("valid_{name}"), 1s) AS "{name}"' for name in KINDS)
        + ' FROM "pipeline" WHERE $timeFilter GROUP BY time($__interval) fill(none)'
    )
    device_link = panels.link("Open this device", DEVICE_LINK)
    return (
        Dashboard("citypulse · City overview")
        .uid(UID)
        .description("Hanoi at a glance: device states, air quality, open alerts, what needs attention now.")
        .tags(["citypulse"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .link(panels.dashboard_links())
        .with_variable(
            panels.query_variable("kind", "Kind", 'SHOW TAG VALUES FROM "devices" WITH KEY = "kind"')
        )
        .with_variable(
            panels.query_variable(
                "district",
                "District",
                f'SHOW TAG VALUES FROM "devices" WITH KEY = "district" WHERE {matches("kind", "kind")}',
            )
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
                "Alerts fired",
                alert_annotation_query(matches("kind", "kind"), matches("district", "district")),
                text="message",
                tags="severity",
                colour=panels.RED,
            )
        )
        .with_panel(
            panels.device_map_panel(
                "Devices by state",
                "Every device at its registered place, coloured by its state now: green ok, orange "
                "anomalous (a detector alarm in the last 15 minutes), red alerting (an open alert), "
                "grey silent (stopped reporting). Click a device to open it.",
                InfluxQL(devices_now).table(),
                centre=HANOI,
                zoom=11,
                colours=STATE_COLOURS,
                links=[device_link],
            )
        )
        .with_panel(
            panels.bar_gauge_panel(
                "VN_AQI by district, last hour",
                "The latest hourly VN_AQI of each district (mean of its monitors).",
                [
                    InfluxQL(
                        f'SELECT mean("vn_aqi") FROM {readings(AQI)} '
                        f'{where(matches("district", "district"))} GROUP BY time(1h), "district" fill(none)'
                    ).alias("$tag_district")
                ],
                thresholds=VN_AQI_COLOURS,
                width=8,
                height=14,
                max_value=300,
            )
        )
        .with_row(Row("Now"))
        .with_panel(
            panels.table_panel(
                "Open alerts",
                "Alerts firing or acknowledged, newest first: one row per rule and target.",
                [InfluxQL(open_alerts).table()],
                width=12,
                transformations=[
                    dash.DataTransformerConfig(
                        id_val="filterByValue",
                        options={
                            "filters": [
                                {"config": {"id": "equal", "options": {"value": 1}}, "fieldName": "open"}
                            ],
                            "match": "any",
                            "type": "include",
                        },
                    ),
                    dash.DataTransformerConfig(
                        id_val="sortBy", options={"sort": [{"desc": True, "field": "Time"}]}
                    ),
                ],
            )
        )
        .with_panel(
            panels.table_panel(
                "Devices silent now",
                "Devices the silence detector reports as no longer sending readings.",
                [InfluxQL(silent_now).table()],
                width=6,
                links=[device_link],
            )
        )
        .with_panel(
            panels.table_panel(
                "Worst ten devices",
                "The devices with the most anomaly alarms in the time range.",
                [InfluxQL(worst).table()],
                width=6,
                transformations=[
                    dash.DataTransformerConfig(
                        id_val="groupBy",
                        options={
                            "fields": {
                                "device": {"aggregations": [], "operation": "groupby"},
                                "score": {"aggregations": ["count", "max"], "operation": "aggregate"},
                            }
                        },
                    ),
                    dash.DataTransformerConfig(
                        id_val="sortBy", options={"sort": [{"desc": True, "field": "score (count)"}]}
                    ),
                    dash.DataTransformerConfig(id_val="limit", options={"limitField": 10}),
                ],
            )
        )
        .with_row(Row("Trends"))
        .with_panel(vn_aqi_by_district())
        .with_panel(
            panels.timeseries_panel(
                "Readings per second by kind",
                "Valid readings stored per second, by sensor kind (all ingest processes).",
                [rate],
                unit="reqps",
                stacked=True,
            )
        )
    )
