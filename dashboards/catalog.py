"""Every citypulse dashboard, as SDK objects and as the JSON files committed beside this module.

``citypulse dashboards build`` writes :func:`render` into ``dashboards/json/``;
a test fails when the committed files differ from what the code generates, so
the JSON in the repository (which Grafana's file provisioning loads) is always
the code's. Panel ids are numbered here, in order, so regeneration is stable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dash

from dashboards import device, domains, overview, pipeline_health
from dashboards.influxql import register
from processors.kinds import KINDS

JSON_DIR = Path(__file__).resolve().parent / "json"
FOLDER_UID = "citypulse"
FOLDER_TITLE = "citypulse"


@dataclass(frozen=True)
class Entry:
    uid: str
    file: str
    make: Callable[[], Dashboard]


def entries() -> list[Entry]:
    """The dashboards, overview first: one per sensor kind, whatever kinds exist."""
    found = [Entry(overview.UID, "overview.json", overview.build)]
    for kind in KINDS.values():
        found.append(Entry(domains.uid(kind), f"{kind.name}.json", partial(domains.build, kind)))
    found.append(Entry(device.UID, "device.json", device.build))
    found.append(Entry(pipeline_health.UID, "pipeline.json", pipeline_health.build))
    return found


def _number_panels(board: dash.Dashboard) -> None:
    next_id = 1
    for panel in board.panels or []:
        panel.id_val = next_id
        next_id += 1
        for inner in getattr(panel, "panels", None) or []:
            inner.id_val = next_id
            next_id += 1


def build(entry: Entry) -> dash.Dashboard:
    register()
    board = entry.make().build()
    _number_panels(board)
    return board


def to_json(board: dash.Dashboard) -> str:
    """Sorted keys, two-space indent, one newline at the end: stable for diffs and the golden test."""
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(board) + "\n"


def render() -> dict[str, str]:
    """File name to JSON text, for every dashboard."""
    return {entry.file: to_json(build(entry)) for entry in entries()}


def write(directory: Path = JSON_DIR) -> list[Path]:
    """Regenerate the JSON files; files of dashboards that no longer exist are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render()
    for stale in directory.glob("*.json"):
        if stale.name not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names of files that differ from what the code generates (missing, changed or left over)."""
    rendered = render()
    found = [
        name
        for name, text in rendered.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    found += [p.name for p in directory.glob("*.json") if p.name not in rendered]
    return sorted(found)


def load(path: Path) -> dict[str, object]:
    loaded = json.loads(path.read_text())
    assert isinstance(loaded, dict)
    return loaded
