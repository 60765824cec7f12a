"""InfluxQL for grafana-foundation-sdk: the query type and annotation target the SDK lacks.

The SDK types every Grafana object but has no InfluxDB query, and its annotation
target only knows Grafana's built-in annotations. Following the SDK's own
extension point (a custom ``Dataquery`` variant registered with the runtime, as
in its ``custom-query`` example), this module adds:

- :class:`InfluxQLQuery` and its builder :class:`InfluxQL`: a raw InfluxQL panel
  query as Grafana's InfluxDB data source stores it (``query``, ``rawQuery``,
  ``resultFormat``, ``alias``);
- :class:`InfluxQLAnnotationTarget`: the target of an InfluxQL annotation query
  (``query``, ``textColumn``, ``tagsColumn``, ``titleColumn``);
- :func:`load_dashboard`: JSON back into SDK objects, these included, so committed
  dashboards round-trip through the SDK.

Every query runs on one data source, provisioned with a fixed uid.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.builders.dashboard import AnnotationQuery
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard

DATASOURCE_TYPE = "influxdb"
DATASOURCE_UID = "citypulse-influxdb"
DATASOURCE_NAME = "citypulse InfluxDB"
ResultFormat = Literal["time_series", "table"]


def datasource() -> dashboard.DataSourceRef:
    """The provisioned InfluxDB data source every panel, variable and annotation reads."""
    return dashboard.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL query of Grafana's InfluxDB data source."""

    def __init__(
        self,
        query: str = "",
        ref_id: str | None = None,
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        hide: bool | None = None,
        datasource: dashboard.DataSourceRef | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias
        self.hide = hide
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            query=data.get("query", ""),
            ref_id=data.get("refId"),
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            hide=data.get("hide"),
            datasource=dashboard.DataSourceRef.from_json(data["datasource"])
            if "datasource" in data
            else None,
        )


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of :class:`InfluxQLQuery`, in the SDK's style."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query, datasource=datasource())

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> Self:
        """Rows and columns (tags as columns) instead of one series per group."""
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        """Series name pattern, e.g. ``$tag_district``."""
        self._internal.alias = alias
        return self


class InfluxQLAnnotationTarget(dashboard.AnnotationTarget):
    """What Grafana's InfluxDB data source reads from an annotation query's ``target``."""

    def __init__(
        self,
        query: str = "",
        text_column: str = "",
        tags_column: str = "",
        title_column: str = "",
        **builtin: Any,
    ) -> None:
        super().__init__(**builtin)
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column
        self.title_column = title_column

    def to_json(self) -> dict[str, object]:
        return {
            "query": self.query,
            "rawQuery": True,
            "fromAnnotations": True,
            "textColumn": self.text_column,
            "tagsColumn": self.tags_column,
            "titleColumn": self.title_column,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            query=data.get("query", ""),
            text_column=data.get("textColumn", ""),
            tags_column=data.get("tagsColumn", ""),
            title_column=data.get("titleColumn", ""),
        )


def annotation(name: str, query: str, text: str, tags: str, colour: str) -> AnnotationQuery:
    """An InfluxQL annotation query over the dashboard's time-series panels."""
    built = AnnotationQuery().name(name).datasource(datasource()).enable(True).icon_color(colour)
    built.build().target = InfluxQLAnnotationTarget(query=query, text_column=text, tags_column=tags)
    return built


def register() -> None:
    """Teach the SDK's runtime to read InfluxQL queries back (idempotent)."""
    register_default_plugins()
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json)
    )


def load_dashboard(data: dict[str, Any]) -> dashboard.Dashboard:
    """A dashboard's JSON as SDK objects, InfluxQL queries and annotation targets included."""
    register()
    loaded = dashboard.Dashboard.from_json(data)
    listed = (data.get("annotations") or {}).get("list") or []
    kept = loaded.annotations.list_val if loaded.annotations is not None else None
    for raw, built in zip(listed, kept or [], strict=True):
        if (raw.get("datasource") or {}).get("type") == DATASOURCE_TYPE and "target" in raw:
            built.target = InfluxQLAnnotationTarget.from_json(raw["target"])
    return loaded
