"""One dashboard per sensor kind, generated from the kind's declaration alone.

What a kind declares decides what its dashboard shows, so a new kind gets its
dashboard with no edit here:

- every measure, by district (the mean of the district's devices, or their sum
  for a ``district_total`` measure such as vehicles counted or power drawn), in
  its unit, with its published ``limits`` as dashed lines;
- a switch (a 0/1 measure such as a lamp's state): devices on and off;
- a power in watts: energy by district;
- the devices above their normal band now, per measure (bins near full);
- a table of each device's latest values, coloured outside the normal band;
- for kinds with particulates: VN_AQI and US AQI by district;
- the events of every detector that judges the city rather than the device
  (rules, published limits, forecasts: burst mains, incidents, lamps on by day,
  fire risk, bins about to be full), by district and as a list.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models import dashboard as dash

from dashboards import panels
from dashboards.influxql import InfluxQL, annotation
from dashboards.overview import DEVICE_LINK, VN_AQI_COLOURS
from dashboards.queries import (
    BY_DISTRICT,
    RP_VARIABLE,
    alert_annotation_query,
    matches,
    policy_query,
    readings,
    where,
)
from processors.air_index import MEASUREMENT as AQI
from processors.air_index import applies_to as has_air_index
from processors.detectors import Category, detectors_for
from processors.kinds import Measure, SensorKind
from processors.retention import quote

CITY_EVENTS = (Category.RULE, Category.STANDARD, Category.FORECAST)


def uid(kind: SensorKind) -> str:
    return f"citypulse-{kind.name}"


def _by_district(kind: SensorKind, m: Measure) -> InfluxQL:
    source = readings(kind.name)
    filters = where(matches("district", "district"), matches("device", "device"))
    if m.district_total:
        inner = (
            f"SELECT mean({quote(m.name)}) AS {quote(m.name)} FROM {source} {filters} "
            'GROUP BY time($__interval), "device", "district"'
        )
        text = f"SELECT sum({quote(m.name)}) FROM ({inner}) WHERE $timeFilter {BY_DISTRICT}"
    else:
        text = f"SELECT mean({quote(m.name)}) FROM {source} {filters} {BY_DISTRICT}"
    return InfluxQL(text).alias("$tag_district")


def measure_panel(kind: SensorKind, m: Measure) -> panels.TimeseriesPanel:
    how = "summed over" if m.district_total else "mean of"
    return panels.timeseries_panel(
        f"{m.description} by district",
        f"{m.description} ({m.unit}), {how} each district's devices.{panels.limits_text(m)}",
        [_by_district(kind, m)],
        unit=panels.unit_of(m),
        thresholds=panels.limit_thresholds(m) if m.limits else None,
    )


def switch_panel(kind: SensorKind, m: Measure) -> panels.TimeseriesPanel:
    inner = (
        f"SELECT last({quote(m.name)}) AS {quote(m.name)} FROM {readings(kind.name)} "
        f"{where(matches('district', 'district'), matches('device', 'device'))} "
        'GROUP BY time($__interval), "device"'
    )
    name = quote(m.name)
    return panels.timeseries_panel(
        f"Devices on and off ({m.name})",
        f"How many devices report {m.name} = 1 (on) and 0 (off), from each device's last report in "
        "the interval.",
        [
            InfluxQL(
                f'SELECT sum({name}) AS "on", count({name}) - sum({name}) AS "off" FROM ({inner}) '
                "WHERE $timeFilter GROUP BY time($__interval) fill(none)"
            )
        ],
        stacked=True,
    )


def energy_panel(kind: SensorKind, m: Measure) -> panels.TimeseriesPanel:
    inner = (
        f'SELECT integral({quote(m.name)}, 1h) / 1000 AS "kwh" FROM {readings(kind.name)} '
        f"{where(matches('district', 'district'), matches('device', 'device'))} "
        'GROUP BY time($__interval), "device", "district"'
    )
    return panels.timeseries_panel(
        "Energy by district",
        f"Energy drawn ({m.description.lower()} integrated over time), summed over each district's devices.",
        [
            InfluxQL(f'SELECT sum("kwh") FROM ({inner}) WHERE $timeFilter {BY_DISTRICT}').alias(
                "$tag_district"
            )
        ],
        unit="kwatth",
        bars=True,
    )


def above_band_panel(kind: SensorKind, m: Measure) -> panels.StatPanel:
    inner = (
        f'SELECT last({quote(m.name)}) AS "v" FROM {readings(kind.name)} '
        f'{where(matches("district", "district"), matches("device", "device"))} GROUP BY "device"'
    )
    return panels.stat_panel(
        f"Above {m.normal[1]:g} {m.unit} now: {m.name}",
        f"Devices whose latest {m.description.lower()} is above the normal band ({m.normal[1]:g} {m.unit}).",
        [InfluxQL(f'SELECT count("v") FROM ({inner}) WHERE "v" > {m.normal[1]:g}')],
        thresholds=panels.steps((None, panels.GREEN), (1, panels.ORANGE)),
        width=4,
    )


def latest_table(kind: SensorKind) -> panels.TablePanel:
    columns = ", ".join(f"last({quote(m.name)}) AS {quote(m.name)}" for m in kind.measures)
    panel = panels.table_panel(
        "Latest per device",
        "Each device's latest values; cells outside the normal band are orange. Click a row to open "
        "the device.",
        [
            InfluxQL(
                f"SELECT {columns} FROM {readings(kind.name)} "
                f"{where(matches('district', 'district'), matches('device', 'device'))} "
                'GROUP BY "device", "district"'
            ).table()
        ],
        width=24,
        height=10,
        links=[panels.link("Open this device", DEVICE_LINK.replace("${__data.fields.kind}", kind.name))],
    )
    for m in kind.measures:
        panel = panel.override_by_name(
            m.name,
            [
                dash.DynamicConfigValue(id_val="unit", value=panels.unit_of(m)),
                dash.DynamicConfigValue(id_val="thresholds", value=panels.band_thresholds(m).build()),
                dash.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
    return panel


def index_panels(kind: SensorKind) -> list[panels.TimeseriesPanel]:
    filters = where(matches("district", "district"), matches("device", "device"))
    found = []
    for field, title, description in (
        ("vn_aqi", "VN_AQI", "Vietnam's index, Decision 1459/QĐ-TCMT (NowCast for PM, 1-hour gases)."),
        ("us_aqi", "US AQI", "US EPA index, 2024 PM2.5 breakpoints (NowCast for PM, 8-hour O3 and CO)."),
    ):
        found.append(
            panels.timeseries_panel(
                f"{title} by district",
                f"Hourly {title}, mean of each district's monitors. {description}",
                [
                    InfluxQL(
                        f"SELECT mean({quote(field)}) FROM {readings(AQI)} {filters} "
                        'GROUP BY time(1h), "district" fill(none)'
                    ).alias("$tag_district")
                ],
                thresholds=VN_AQI_COLOURS,
            )
        )
    return found


def event_panels(kind: SensorKind) -> list[panels.TimeseriesPanel | panels.TablePanel]:
    found: list[panels.TimeseriesPanel | panels.TablePanel] = []
    for detector in detectors_for(kind.name):
        if detector.category not in CITY_EVENTS:
            continue
        condition = f"\"kind\" = '{kind.name}' AND \"detector\" = '{detector.name}'"
        found.append(
            panels.timeseries_panel(
                f"{detector.description[0].upper()}{detector.description[1:]}",
                f"Onsets of the {detector.name} detector ({detector.category}), by district.",
                [
                    InfluxQL(
                        f'SELECT count("score") FROM "anomalies" '
                        f"{where(condition, matches('district', 'district'))} "
                        'GROUP BY time($__interval), "district" fill(none)'
                    ).alias("$tag_district")
                ],
                bars=True,
                width=8,
            )
        )
    condition = f"\"kind\" = '{kind.name}'"
    found.append(
        panels.table_panel(
            "Latest events",
            "Every detector's alarm onsets on this kind's devices, newest first.",
            [
                InfluxQL(
                    'SELECT "device", "detector", "category", "field", "district", "score", "value" '
                    f'FROM "anomalies" {where(condition, matches("district", "district"))} '
                    "ORDER BY time DESC LIMIT 200"
                ).table()
            ],
            width=24,
            links=[panels.link("Open this device", DEVICE_LINK.replace("${__data.fields.kind}", kind.name))],
        )
    )
    return found


def build(kind: SensorKind) -> Dashboard:
    source = quote(kind.name)
    board = (
        Dashboard(f"citypulse · {kind.title}")
        .uid(uid(kind))
        .description(f"{kind.title}: every measure by district, the devices out of line, the city's events.")
        .tags(["citypulse", kind.name])
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("browser")
        .link(panels.dashboard_links())
        .with_variable(
            panels.query_variable(
                "district", "District", f'SHOW TAG VALUES FROM {source} WITH KEY = "district"'
            )
        )
        .with_variable(
            panels.query_variable(
                "device",
                "Device",
                f'SHOW TAG VALUES FROM {source} WITH KEY = "device" WHERE {matches("district", "district")}',
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
                alert_annotation_query(
                    f"\"kind\" = '{kind.name}'", matches("district", "district"), matches("target", "device")
                ),
                text="message",
                tags="severity",
                colour=panels.RED,
            )
        )
    )
    if has_air_index(kind):
        board = board.with_row(Row("Air quality index"))
        for panel in index_panels(kind):
            board = board.with_panel(panel)
    board = board.with_row(Row("By district"))
    for m in kind.measures:
        board = board.with_panel(switch_panel(kind, m) if m.is_switch else measure_panel(kind, m))
        if m.unit == "W":
            board = board.with_panel(energy_panel(kind, m))
    board = board.with_row(Row("Devices now"))
    for m in kind.measures:
        if m.normal[1] < m.hi and not m.is_switch:
            board = board.with_panel(above_band_panel(kind, m))
    board = board.with_panel(latest_table(kind))
    board = board.with_row(Row("Events"))
    for event_panel in event_panels(kind):
        board = board.with_panel(event_panel)
    return board
