"""Scenario files (the examples in docs/simulation.md run as written) and staged incidents in the data."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from processors.registry import Registry
from simulators.fleet import make_registry
from simulators.incidents import IncidentSpec, place_incidents
from simulators.models import INCIDENTS
from simulators.scenario import builtin_scenarios, load_scenario, parse_scenario_text
from simulators.sun import sun_times
from tests.e2e.helpers import last_json_line, run_citypulse
from tests.simulators.helpers import HOUR_MS, START, device_of, read_labels, reading_of, run_to_file, ts_of

SIMULATION_DOC = Path(__file__).resolve().parents[2] / "docs" / "simulation.md"


def doc_example(language: str) -> str:
    section = SIMULATION_DOC.read_text(encoding="utf-8").split("## Scenario files", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, flags=re.S)
    assert match, f"docs/simulation.md's 'Scenario files' lost its {language} scenario example"
    return match.group(1)


def test_the_docs_toml_and_yaml_examples_say_the_same() -> None:
    toml = parse_scenario_text(doc_example("toml"), ".toml", "docs/simulation.md (TOML)")
    yaml = parse_scenario_text(doc_example("yaml"), ".yaml", "docs/simulation.md (YAML)")
    assert (toml.run, toml.faults, toml.fault_rate, toml.fault_rates, toml.incidents) == (
        yaml.run,
        yaml.faults,
        yaml.fault_rate,
        yaml.fault_rates,
        yaml.incidents,
    )
    assert toml.incidents
    assert toml.faults


@pytest.mark.parametrize("language", ["toml", "yaml"])
def test_the_docs_scenario_runs_as_written(tmp_path: Path, language: str) -> None:
    scenario = tmp_path / f"rehearsal.{language}"
    scenario.write_text(doc_example(language), encoding="utf-8")
    done = run_citypulse(
        "simulate", "--scenario", str(scenario), "--output", "out.tsv", "--labels", "labels.jsonl",
        "--start", "2026-01-05T00:00:00Z", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    parsed = load_scenario(str(scenario))
    assert set(summary["readings_by_kind"]) == set(parsed.run["kinds"].split(","))
    assert summary["sim_end_ms"] - summary["sim_start_ms"] == parsed.run["span"] * 1000
    labels = read_labels(Path("labels.jsonl"))
    kinds_of = defaultdict(set)
    for label in labels:
        kinds_of[label["fault"]].add(label["kind"])
    assert kinds_of["pollution_episode"] == {"air"}
    assert kinds_of["pipe_burst"] == {"water"}
    assert sum(1 for label in labels if label["fault"] == "pipe_burst") == 3
    districts = set(parsed.incidents[0].districts)
    assert {label["detail"].get("district") for label in labels if label["fault"] == "pollution_episode"} <= (
        districts | {None}
    )
    assert set(summary["faults"]) - {"pollution_episode", "pipe_burst"} <= set(parsed.faults or ())
    assert len(labels) == summary["labels"]


def test_scenario_mistakes_name_the_file_the_entry_and_the_fix(tmp_path: Path) -> None:
    cases = {
        'incidents = [{type = "pipeburst"}]': "incidents[1]: unknown incident 'pipeburst'; choose from",
        "[run]\ndevicez = 3": "[run]: unknown key(s) devicez; known: devices",
        '[faults]\ninject = ["spikes"]': "[faults] unknown fault(s) spikes",
        'incidents = [{type = "bin_fire", duration = "soon"}]': "'soon' is not a duration",
        'incidents = [{type = "lighting_outage", mode = "flicker"}]': (
            "has no mode 'flicker'; its modes: circuit, lamp"
        ),
        "[faults]\nrate = 2": "rate must be a number between 0 and 1",
        "run = 3": "[run] must be a table",
        '[run]\ndevices = "many"': "[run] devices must be a whole number of at least 1",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)):
            load_scenario(str(path))
    with pytest.raises(ValueError, match="neither a scenario file nor a built-in scenario"):
        load_scenario("no-such-scenario")
    (tmp_path / "bad.yaml").write_text("incidents: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_scenario(str(tmp_path / "bad.yaml"))


def test_command_line_scenario_mistakes_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('incidents = [{type = "bin_fire", districts = ["Atlantis"]}]')
    for args, message in (
        (["--scenario", str(bad)], "unknown district(s) Atlantis"),
        (["--scenario", "pipe_burst", "--kinds", "air"], "needs water devices, but the fleet has none"),
        (["--scenario", "typo"], "neither a scenario file nor a built-in scenario"),
    ):
        done = run_citypulse("simulate", "--span", "10m", "--speed", "0", "--output", "x.tsv", *args)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_builtin_scenarios_place_incidents_sensibly(small_registry: Registry) -> None:
    builtins = builtin_scenarios()
    assert set(builtins) == {"incidents", "pollution_episode", "pipe_burst", "lighting_outage",
                             "traffic_incident", "bin_fire"}  # fmt: skip
    end = START + 2 * 86_400_000
    placed = {
        p.type.name: p
        for p in place_incidents(builtins["incidents"].incidents, small_registry, START, end, 1)
    }
    assert len(placed["pollution_episode"].devices) == len(small_registry.tables["air"]), "city-wide"
    assert len(placed["pipe_burst"].devices) == 3
    assert len(placed["bin_fire"].devices) == 1
    burst = placed["pipe_burst"]
    assert len({small_registry.tables["water"].devices[i].district for i in burst.devices}) <= 2, "neighbours"
    outage = placed["lighting_outage"]
    day = outage.start_ms - outage.start_ms % 86_400_000
    _, sunset = sun_times(day)
    assert sunset < outage.start_ms <= sunset + 3_600_000, "lighting outages start after dusk"
    assert START + (end - START) // 10 <= placed["bin_fire"].start_ms


def _by_key(messages: list[tuple[int, str, bytes]]) -> dict[tuple[str, int], dict[str, Any]]:
    index = {}
    for sent, topic, payload in messages:
        reading = reading_of(payload)
        assert reading is not None
        index[(device_of(topic), sent)] = reading
    return index


INCIDENT_CHECKS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    # incident: (measure, how the incident's value compares to the clean value at full intensity)
    "pollution_episode": ("pm25", lambda hit, clean: hit >= 3.0 * clean),
    "pipe_burst": ("pressure", lambda hit, clean: hit <= 0.5 * clean),
    "traffic_incident": ("mean_speed", lambda hit, clean: hit <= 0.5 * clean),
    "bin_fire": ("temperature", lambda hit, clean: hit >= clean + 50),
    "lighting_outage": ("power", lambda hit, clean: (hit < 0.1) & (clean > 5.0)),
}


@pytest.fixture(scope="module")
def staged(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[tuple[str, int], Any], dict[tuple[str, int], Any], list[dict[str, Any]]]:
    """One fleet run twice, with every incident staged in the second (an incident draws its own
    random numbers, so everything it does not touch stays identical)."""
    folder = tmp_path_factory.mktemp("incidents")
    registry = make_registry(40, ["air", "water", "traffic", "lighting", "waste"], seed=4)
    # Lighting outages start at the first dusk (a dark lamp only shows at night); the others an hour in.
    specs = tuple(
        IncidentSpec(
            name,
            at=None if name == "lighting_outage" else "+30m",
            duration_s=(11 if name == "pollution_episode" else 4) * 3600,
        )
        for name in INCIDENT_CHECKS
    )
    span = 12 * HOUR_MS
    clean, _ = run_to_file(registry, folder / "clean.tsv", span, seed=9)
    hit, _ = run_to_file(
        registry, folder / "hit.tsv", span, seed=9, incidents=specs, labels=folder / "labels.jsonl"
    )
    return _by_key(clean), _by_key(hit), read_labels(folder / "labels.jsonl")


@pytest.mark.parametrize("incident", sorted(INCIDENT_CHECKS))
def test_each_incident_shows_where_and_when_its_labels_say(
    staged: tuple[dict[tuple[str, int], Any], dict[tuple[str, int], Any], list[dict[str, Any]]], incident: str
) -> None:
    before, after, all_labels = staged
    assert before.keys() == after.keys()
    labels = [label for label in all_labels if label["fault"] == incident]
    assert labels
    kind = INCIDENTS[incident]
    assert {label["kind"] for label in labels} == {kind.kind}
    measure, visible = INCIDENT_CHECKS[incident]
    window_start, window_end = labels[0]["detail"]["window_start_ms"], labels[0]["detail"]["window_end_ms"]
    steady = (window_start + kind.ramp_in_s * 1000 + 60_000, window_end - kind.ramp_out_s * 1000 - 60_000)
    assert steady[0] < steady[1]
    touched = {label["device"]: (label["start_ms"], label["end_ms"]) for label in labels}
    shown = 0
    for (device, sent), reading in after.items():
        if not device.startswith(kind.kind + "-"):
            continue
        window = touched.get(device)
        if window is None or not window[0] <= ts_of(reading) <= window[1]:
            assert reading == before[(device, sent)], "nothing changes outside the labelled devices and times"
            continue
        if steady[0] <= sent <= steady[1]:
            clean = before[(device, sent)]
            assert visible(float(reading[measure]), float(clean[measure])), (device, reading, clean)
            shown += 1
    assert shown >= len(touched), "every labelled device shows the incident"
