"""The references in docs/ are generated from the code: committed files must equal what it generates."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import ingest.docs
from ingest.docs import COMMAND, DOCS, configuration, detectors, main, stale
from ingest.metrics import every_family
from ingest.settings import Settings, load_settings, sections
from processors.detectors import DETECTORS
from processors.kinds import KINDS


def test_the_committed_references_are_what_the_code_generates() -> None:
    outdated = [str(path.relative_to(ingest.docs.ROOT)) for path in stale()]
    assert outdated == [], f"stale: {', '.join(outdated)}; run `{COMMAND}` and commit the result"


def test_check_names_a_stale_file_and_a_build_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.docs, "ROOT", tmp_path)
    monkeypatch.setattr(ingest.docs, "DOCS", tmp_path / "docs")
    said: list[str] = []
    assert main(["--check"], said.append) == 1
    assert said == [
        f"docs/{name} is stale: run `{COMMAND}` and commit the result\n"
        for name in ("configuration.md", "detectors.md", "metrics.md")
    ]
    assert main([], said.append) == 0
    assert (tmp_path / "docs" / "detectors.md").read_text() == detectors()
    (tmp_path / "docs" / "configuration.md").write_text("edited by hand\n")
    said.clear()
    assert main(["--check"], said.append) == 1
    assert said == [f"docs/configuration.md is stale: run `{COMMAND}` and commit the result\n"]
    main([], said.append)
    said.clear()
    assert main(["--check"], said.append) == 0
    assert said == []


def rows(text: str) -> dict[str, list[str]]:
    """Table rows by their first cell's code span (a variable or a detector)."""
    found = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        match = (
            re.fullmatch(r"\[?`([A-Za-z0-9_]+)`(?:\]\(#\w+\))?", cells[0]) if line.startswith("|") else None
        )
        if match:
            found[match.group(1)] = cells[1:]
    return found


def test_the_configuration_reference_lists_every_setting_with_its_variable_key_and_default() -> None:
    table = rows(configuration())
    expected = {"CITYPULSE_CONFIG"}
    nested = sections(Settings)
    for name, field in Settings.model_fields.items():
        if name in nested:
            for option in nested[name].model_fields:
                expected.add(f"CITYPULSE_{name}_{option}".upper())
                assert table[f"CITYPULSE_{name}_{option}".upper()][0] == f"`{name}.{option}`"
        else:
            expected.add(f"CITYPULSE_{name}".upper())
            assert table[f"CITYPULSE_{name}".upper()][0] == f"`{name}`"
            assert table[f"CITYPULSE_{name}".upper()][3] == field.description
    assert set(table) == expected
    assert table["CITYPULSE_INFLUX_BATCH_POINTS"][1:3] == ["integer, ≥ 1, ≤ 1000000", "`50000`"]
    assert table["CITYPULSE_INFLUX_TOKEN"][1:3] == ["secret text", "(empty)"]
    assert table["CITYPULSE_UNKNOWN_FIELDS"][1:3] == ["one of `ignore`, `reject`", "`ignore`"]
    assert table["CITYPULSE_MAX_AGE_S"][2] == "`604800`"


def test_the_configuration_reference_example_file_loads(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", configuration(), flags=re.S)
    assert block, "the configuration reference lost its example file"
    example = tmp_path / "citypulse.toml"
    example.write_text(block.group(1))
    settings = load_settings(example)
    assert (settings.sink, settings.batch_linger_s, settings.influx.url) == (
        "influxdb",
        0.25,
        "http://127.0.0.1:8086",
    )


def test_the_detector_reference_lists_every_detector_as_the_code_declares_it() -> None:
    """The operations centre reads it to know what an alarm means: it must match the code."""
    text = detectors()
    listed = {name: tuple(cells) for name, cells in rows(text).items()}
    declared = {}
    for name, cls in DETECTORS.items():
        kinds = [k for k, kind in KINDS.items() if cls.applies_to(kind)]
        where = "all" if len(kinds) == len(KINDS) else ", ".join(kinds)
        if not all(cls.runs_by_default(KINDS[k]) for k in kinds):
            assert not any(cls.runs_by_default(KINDS[k]) for k in kinds), "the reference says 'each'"
            where += " (each when named in `CITYPULSE_DETECTORS`)"
        declared[name] = (cls.category.value, where, cls.description)
        assert f"\n## `{name}`\n" in text
        assert (cls.__doc__ or "").split("\n")[0] in text
    assert listed == declared


def test_every_example_in_the_detector_reference_runs() -> None:
    text = detectors()
    examples = re.findall(r"```pycon\n(.*?)```", text, flags=re.S)
    assert len(examples) == sum(">>>" in (cls.__doc__ or "") for cls in DETECTORS.values())
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, example in enumerate(examples):
        runner.run(parser.get_doctest(example, {}, f"detectors.md example {i}", None, 0))
    assert runner.summarize(verbose=False).failed == 0


def test_the_metrics_reference_lists_every_family_a_scrape_can_serve() -> None:
    documented = set(re.findall(r"^\| `(citypulse_\w+)` \|", (DOCS / "metrics.md").read_text(), flags=re.M))
    served = {f.name + ("_total" if f.type == "counter" else "") for f in every_family()}
    assert served == documented
    assert {"citypulse_cycles_total", "citypulse_anomalies_total", "citypulse_alerts_total"} <= documented
