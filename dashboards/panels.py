"""The few panel shapes every citypulse dashboard is made of, with the house's defaults.

Each function returns an SDK builder (typed, so a wrong option is a type error,
not a broken dashboard) with the InfluxDB data source set, a description, and a
size on the 24-column grid. Units, thresholds and value mappings come from the
sensor-kind declarations (:func:`unit_of`, :func:`limit_thresholds`).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, common, geomap, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import DashboardLink, QueryVariable, ThresholdsConfig
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dash

from dashboards.influxql import InfluxQL, datasource
from processors.kinds import Measure

TimeseriesPanel = timeseries.Panel
TablePanel = table.Panel
StatPanel = stat.Panel

GREEN, YELLOW, ORANGE, RED, PURPLE, MAROON, GREY = (
    "green",
    "yellow",
    "orange",
    "red",
    "purple",
    "#7e0023",
    "text",
)
_UNITS = {
    "µg/m³": "conμgm3",
    "mg/m³": "conmgm3",
    "°C": "celsius",
    "%": "percent",
    "W": "watt",
    "km/h": "velocitykmh",
    "bar": "pressurebar",
    "m³/h": "flowcmh",
    "lx": "lux",
    "°": "degree",
    "mg/L": "suffix: mg/L",
}


def unit_of(measure: Measure) -> str:
    """Grafana's unit id for a declared unit, or the unit itself as a suffix."""
    return _UNITS.get(measure.unit, f"suffix: {measure.unit}")


def steps(*pairs: tuple[float | None, str]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(dash.ThresholdsMode.ABSOLUTE)
        .steps([dash.Threshold(value=v, color=c) for v, c in pairs])
    )


def limit_thresholds(measure: Measure) -> ThresholdsConfig:
    """Coloured steps at the measure's published limits: below a minimum or above a maximum is wrong."""
    limits = sorted(measure.limits, key=lambda lim: lim.value)
    base = RED if any(lim.bound == "min" for lim in limits) else GREEN
    maxima = [lim for lim in limits if lim.bound == "max"]
    colours = [RED] if len(maxima) == 1 else [YELLOW, *[ORANGE] * (len(maxima) - 2), RED]
    pairs: list[tuple[float | None, str]] = [(None, base)]
    for lim in limits:
        pairs.append((lim.value, GREEN if lim.bound == "min" else colours[maxima.index(lim)]))
    return steps(*pairs)


def band_thresholds(measure: Measure) -> ThresholdsConfig:
    """Outside the normal band a healthy device usually reports: orange."""
    low, high = measure.normal
    return steps((None, ORANGE if low > measure.lo else GREEN), (low, GREEN), (high, ORANGE))


def limits_text(measure: Measure) -> str:
    if not measure.limits:
        return ""
    lines = ", ".join(
        f"{'min' if lim.bound == 'min' else 'max'} {lim.value:g} ({lim.source})" for lim in measure.limits
    )
    return f" Lines: {lines}."


def timeseries_panel(
    title: str,
    description: str,
    targets: Sequence[InfluxQL],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    thresholds: ThresholdsConfig | None = None,
    stacked: bool = False,
    bars: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .span_nulls(True)
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.DASHED)
        )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL)).fill_opacity(
            40
        )
    if bars:
        panel = panel.draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(60)
    return panel


def table_panel(
    title: str,
    description: str,
    targets: Sequence[InfluxQL],
    *,
    width: int = 12,
    height: int = 8,
    transformations: Sequence[dash.DataTransformerConfig] = (),
    links: Sequence[DashboardLink] = (),
) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(list(targets))
        .span(width)
        .height(height)
        .filterable(True)
    )
    if transformations:
        panel = panel.transformations(list(transformations))
    if links:
        panel = panel.data_links(list(links))
    return panel


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[InfluxQL],
    *,
    unit: str = "short",
    width: int = 6,
    height: int = 4,
    thresholds: ThresholdsConfig | None = None,
    no_value: str = "0",
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .no_value(no_value)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .color_mode(common_models.BigValueColorMode.BACKGROUND)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return panel.thresholds(thresholds) if thresholds is not None else panel


def bar_gauge_panel(
    title: str,
    description: str,
    targets: Sequence[InfluxQL],
    *,
    thresholds: ThresholdsConfig,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    max_value: float | None = None,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(thresholds)
        .min(0)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return panel.max(max_value) if max_value is not None else panel


def device_map_panel(
    title: str,
    description: str,
    target: InfluxQL,
    *,
    centre: tuple[float, float],
    zoom: int,
    colours: dict[str, str],
    links: Sequence[DashboardLink] = (),
) -> geomap.Panel:
    """Markers at each row's ``lat``/``lon``, coloured by its ``state`` through value mappings."""
    markers = common.MapLayerOptions().type("markers").name("Devices").tooltip(True)
    markers.build().config = {
        "showLegend": True,
        "style": {
            "color": {"field": "state", "fixed": GREEN},
            "opacity": 0.8,
            "size": {"fixed": 6, "max": 6, "min": 2},
            "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
        },
    }
    markers = markers.location(
        common.FrameGeometrySource()
        .mode(common_models.FrameGeometrySourceMode.COORDS)
        .latitude("lat")
        .longitude("lon")
    )
    view = geomap.MapViewConfig().id("coords").zoom(zoom)
    built_view = view.build()
    # The SDK types the centre as int; Grafana stores degrees as floats.
    built_view.lat, built_view.lon = centre  # type: ignore[assignment]
    panel = (
        geomap.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .with_target(target)
        .span(16)
        .height(14)
        .view(view)
        .basemap(common.MapLayerOptions().type("default").name("Basemap"))
        .layers([markers])
        .mappings(
            [
                dash.ValueMap(
                    options={
                        state: dash.ValueMappingResult(text=state, color=colour, index=i)
                        for i, (state, colour) in enumerate(colours.items())
                    }
                )
            ]
        )
    )
    if links:
        panel = panel.data_links(list(links))
    return panel


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = True,
    include_all: bool = True,
    hidden: bool = False,
    on_time_range: bool = False,
) -> QueryVariable:
    """A template variable filled by an InfluxQL query (``SHOW TAG VALUES`` and the like)."""
    variable = (
        QueryVariable(name)
        .label(label)
        .datasource(datasource())
        .query(query)
        .refresh(
            dash.VariableRefresh.ON_TIME_RANGE_CHANGED
            if on_time_range
            else dash.VariableRefresh.ON_DASHBOARD_LOAD
        )
        .sort(dash.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(include_all)
    )
    if include_all:
        variable = variable.all_value(".*")
    if hidden:
        variable = variable.hide(dash.VariableHide.HIDE_VARIABLE)
    return variable


def link(title: str, url: str) -> DashboardLink:
    """A data link (``${__data.fields.device}`` and the like are filled from the clicked row)."""
    return DashboardLink(title).type(dash.DashboardLinkType.LINK).url(url)


def dashboard_links() -> DashboardLink:
    """The drop-down of every citypulse dashboard, keeping the time range."""
    return (
        DashboardLink("citypulse")
        .type(dash.DashboardLinkType.DASHBOARDS)
        .tags(["citypulse"])
        .as_dropdown(True)
        .include_vars(False)
        .keep_time(True)
    )
