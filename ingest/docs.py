"""The references in ``docs/`` that are generated from the code, so they cannot drift from it.

``docs/configuration.md`` comes from ``ingest/settings.py`` (its groups, sections
and field descriptions) and the sink plugins; ``docs/detectors.md`` from the
detectors in ``processors/detectors/`` (their names, categories, kinds and
docstrings, examples included); ``docs/metrics.md`` from what ``/metrics``
serves (``ingest/metrics.py``). A test fails when a committed file differs from
what this module generates now.

Run from a checkout::

    python -m ingest.docs          # rewrite the files
    python -m ingest.docs --check  # exit 1, naming each stale file

A maintainer's tool, not an operator's, so it is a module to run rather than a
``citypulse`` sub-command.
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import itertools
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Iterable
from pathlib import Path

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from ingest.metrics import every_family
from ingest.settings import DEFAULT_CONFIG_FILE, GROUPS, sections
from ingest.settings_section import SettingsSection
from ingest.sinks import SINKS
from processors.detectors import DETECTORS, Category, Detector
from processors.kinds import KINDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMMAND = "python -m ingest.docs"
PREFIX = "CITYPULSE_"


def generated_files() -> dict[Path, str]:
    """Every generated reference, by path, with the text the code gives it now."""
    return {
        DOCS / "configuration.md": configuration(),
        DOCS / "detectors.md": detectors(),
        DOCS / "metrics.md": metrics(),
    }


def stale(files: dict[Path, str] | None = None) -> list[Path]:
    """The generated files whose committed text differs from what the code generates."""
    files = generated_files() if files is None else files
    return [path for path, text in files.items() if not path.is_file() or path.read_text() != text]


def _banner(source: str) -> str:
    return (
        f"<!-- Generated from {source} by `{COMMAND}`: edit the code, then run it. Do not edit by hand. -->"
    )


# --- docs/configuration.md -------------------------------------------------------------------


def configuration() -> str:
    out = [
        "# Configuration",
        "",
        _banner("ingest/settings.py"),
        "",
        "All settings come from one place, `ingest/settings.py`. Each is read from a `CITYPULSE_*`",
        "environment variable or from a TOML file: `--config FILE` if given, else `$CITYPULSE_CONFIG`,",
        f"else `./{DEFAULT_CONFIG_FILE}` if it exists. Precedence, highest first: command-line options,",
        "the environment, the file, the defaults below. Unknown keys in the file, and misspelt options",
        "of a section, are errors. Secrets are never printed.",
        "",
        "Every secret (the broker URL and password, the InfluxDB token) can instead be read from a",
        "file: `CITYPULSE_INFLUX_TOKEN_FILE=/run/secrets/influx_token`, as Docker secrets are mounted.",
        "Setting both the variable and its `_FILE` is an error. See [security.md](security.md).",
        "",
        "In the file, a setting is a key named as its variable without the prefix, in lower case. The",
        "options of a section (a sink's, for example) go in the section's table, or as dotted keys:",
        "",
        "```toml",
        'sink = "influxdb"',
        "batch_linger_s = 0.25",
        "",
        "[influx]",
        'url = "http://127.0.0.1:8086"',
        'bucket = "citypulse"',
        "```",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
        "| `CITYPULSE_CONFIG` | (none) | TOML settings file to read. |",
    ]
    for group in GROUPS:
        title, intro = _title_and_body(group)
        out += ["", f"## {title}", ""]
        if intro:
            out += [intro, ""]
        nested = sections(group)
        out += _table((name, field) for name, field in group.model_fields.items() if name not in nested)
        for name, section in nested.items():
            out += ["", *_section(name, section)]
    return "\n".join(out) + "\n"


def _section(name: str, section: type[SettingsSection]) -> list[str]:
    title, intro = _title_and_body(section)
    out = [f"### {title}", ""]
    owners = [f"`CITYPULSE_SINK={plugin.name}`" for plugin in SINKS.values() if plugin.settings is section]
    if owners:
        out += [f"The options of the sink chosen by {' or '.join(owners)}.", ""]
    if intro:
        out += [intro, ""]
    out += [f"Variables `{PREFIX}{name.upper()}_*`, TOML table `[{name}]`.", ""]
    return out + _table(section.model_fields.items(), section=name)


def _table(fields: Iterable[tuple[str, FieldInfo]], section: str | None = None) -> list[str]:
    out = ["| Variable | TOML key | Type | Default | Meaning |", "|---|---|---|---|---|"]
    for name, field in fields:
        key = f"{section}.{name}" if section else name
        variable = PREFIX + key.replace(".", "_").upper()
        meaning = (field.description or "").replace("|", "\\|")
        out.append(f"| `{variable}` | `{key}` | {_type(field)} | {_default(field)} | {meaning} |")
    return out


def _type(field: FieldInfo) -> str:
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        text = "one of " + ", ".join(f"`{choice}`" for choice in typing.get_args(annotation))
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        text = "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    else:
        names: dict[object, str] = {
            bool: "`true` or `false`",
            int: "integer",
            float: "number",
            str: "text",
            Path: "path",
            SecretStr: "secret text",
        }
        text = names.get(annotation, f"`{getattr(annotation, '__name__', annotation)}`")
    limits = [
        f"{sign} {_value(getattr(rule, attribute))}"
        for rule in field.metadata
        for cls, (sign, attribute) in _BOUNDS.items()
        if isinstance(rule, cls)
    ]
    return text + (f", {', '.join(limits)}" if limits else "")


_BOUNDS = {
    annotated_types.Ge: ("≥", "ge"),
    annotated_types.Gt: (">", "gt"),
    annotated_types.Le: ("≤", "le"),
    annotated_types.Lt: ("<", "lt"),
}


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    text = _value(value)
    return f"`{text}`" if text else "(empty)"


def _value(value: object) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- docs/detectors.md ------------------------------------------------------------------------


def metrics() -> str:
    """``docs/metrics.md``: every Prometheus metric family ``/metrics`` serves, with its labels."""
    lines = [
        "# Metrics",
        "",
        _banner("ingest/metrics.py"),
        "",
        "`citypulse ingest` serves these at `http://CITYPULSE_METRICS_HOST:CITYPULSE_METRICS_PORT/metrics`",
        "(`127.0.0.1:9108` by default; port `0` turns it off), and `/health` beside them. Labels come",
        "only from bounded sets. A family whose part is off (alerts, say) is not served.",
        "",
        "| metric | type | labels | what |",
        "|---|---|---|---|",
    ]
    for family in every_family():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in getattr(family, "_labelnames", ())) or "—"
        lines.append(f"| `{name}` | {family.type} | {labels} | {family.documentation} |")
    return "\n".join(lines) + "\n"


def detectors() -> str:
    order = list(Category)
    chosen = sorted(DETECTORS.values(), key=lambda cls: (order.index(cls.category), cls.name))
    categories = _attribute_docstrings(Category)
    out = [
        "# Detectors",
        "",
        _banner("processors/detectors/"),
        "",
        "Every pipeline cycle, after validation, the detectors score each reading in [0, 1]. Each is",
        "built so that 0.5 means confident, and `CITYPULSE_ANOMALY_THRESHOLD` (0.5) turns scores into",
        "alarms; `CITYPULSE_DETECTORS` chooses which run ([configuration](configuration.md)). The same",
        "detectors score a recorded series offline: `citypulse detect --list` names them.",
        "",
        "The category says who should act:",
        "",
        *[
            f"- **{category.value}**: {_rst_to_markdown(categories.get(category.name, ''))}"
            for category in order
        ],
        "",
        "| Detector | Category | Kinds | Catches |",
        "|---|---|---|---|",
        *[
            f"| [`{cls.name}`](#{cls.name}) | {cls.category.value} | {_kinds(cls)} | {cls.description} |"
            for cls in chosen
        ],
    ]
    for cls in chosen:
        out += ["", *_detector(cls)]
    return "\n".join(out) + "\n"


def _detector(cls: type[Detector]) -> list[str]:
    module = sys.modules[cls.__module__]
    source = DETECTORS.origin(cls.name)
    out = [
        f"## `{cls.name}`",
        "",
        f"**{cls.category.value}** · kinds: {_kinds(cls)} · catches {cls.description}.",
        f"Code: [`{source}`](../{source}), class `{cls.__name__}`.",
    ]
    story = _rst_to_markdown(inspect.cleandoc(module.__doc__ or ""))
    if story:
        out += ["", story]
    prose, example = _split_example(inspect.cleandoc(cls.__doc__ or ""))
    if prose:
        out += ["", f"`{cls.__name__}`: {_rst_to_markdown(prose)}"]
    if example:
        own = f">>> from {cls.__module__} import {cls.__name__}"
        out += ["", "Example (run as a doctest by the tests):", "", "```pycon", own, example, "```"]
    return out


def _kinds(cls: type[Detector]) -> str:
    kinds = [name for name, kind in KINDS.items() if cls.applies_to(kind)]
    text = "all" if len(kinds) == len(KINDS) else ", ".join(kinds)
    named = [name for name in kinds if not cls.runs_by_default(KINDS[name])]
    if named:
        text += f" ({'each' if named == kinds else ', '.join(named)} when named in `CITYPULSE_DETECTORS`)"
    return text


def _split_example(doc: str) -> tuple[str, str]:
    """A docstring's prose, and its doctest from the first ``>>>`` on."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(">>>"):
            return "\n".join(lines[:i]).strip(), textwrap.dedent("\n".join(lines[i:])).strip()
    return doc.strip(), ""


# --- shared -----------------------------------------------------------------------------------


def _title_and_body(cls: type[BaseModel]) -> tuple[str, str]:
    """A group's or section's docstring: its first line titles it, the rest introduces it."""
    doc = inspect.cleandoc(cls.__doc__ or cls.__name__)
    title, _, body = doc.partition("\n")
    return title.strip().rstrip("."), _rst_to_markdown(body.strip())


_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data):`~?([^`]+)`")


def _rst_to_markdown(text: str) -> str:
    """The little reStructuredText docstrings use (``code``, :mod:`x`), as Markdown."""
    return _ROLE.sub(r"`\1`", text.replace("``", "`"))


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """The string literals that follow a class's assignments (``A = 1`` then ``\"\"\"doc\"\"\"``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.Assign)
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.targets[0].id] = inspect.cleandoc(following.value.value)
    return found


def main(argv: list[str] | None = None, write: Callable[[str], object] = sys.stdout.write) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Generate the references in docs/.")
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = parser.parse_args(argv)
    files = generated_files()
    outdated = stale(files)
    if args.check:
        for path in outdated:
            write(f"{path.relative_to(ROOT)} is stale: run `{COMMAND}` and commit the result\n")
        return 1 if outdated else 0
    for path in outdated:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        write(f"wrote {path.relative_to(ROOT)}\n")
    if not outdated:
        write("docs/ is up to date\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
