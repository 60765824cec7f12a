"""What every sub-command shares: the stderr console, settings loading, errors, output.

Progress and live views go to stderr; results (and the ``--json`` summary, always
the last line) go to stdout, so scripts can pipe one and watch the other.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from typer.core import TyperCommand, TyperGroup

from ingest.settings import Settings, load_settings
from processors.units import parse_duration

err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML settings file.",
        show_default="$CITYPULSE_CONFIG, else ./citypulse.toml if present",
    ),
]
"""Defaults show one way in every --help: ``[default: 200]`` for a value, and
``[default: (what happens)]`` (click's convention) where the default is a behaviour."""


class _FlagsTakeNoValue:
    """A flag (--json, --keep) takes no value, so --help shows no ``<bool>`` placeholder for it."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class Command(_FlagsTakeNoValue, TyperCommand):
    """Every citypulse sub-command."""


class Group(_FlagsTakeNoValue, TyperGroup):
    """The ``citypulse`` command itself."""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def setup_logging(level: str) -> None:
    """Rich output for people at a terminal; plain timestamped lines for journald and files."""
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)
    logging.getLogger("paho").setLevel(logging.WARNING)


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ValidationError as bad:
        problems = "; ".join(
            f"CITYPULSE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in bad.errors()
        )
        raise UserError(f"invalid configuration: {problems}") from None
    except (FileNotFoundError, ValueError) as bad:
        raise UserError(str(bad)) from None


def print_json(summary: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(summary, ensure_ascii=False, sort_keys=True) + "\n")
    sys.stdout.flush()


def duration_option(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as bad:
        raise UserError(f"{option}: {bad}") from None
    if seconds <= 0:
        raise UserError(f"{option} must be positive")
    return seconds


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()) -> str:
    """Plain text columns, two spaces apart: readable at a terminal, easy to cut, grep and sort.

    >>> print(aligned(["name", "n"], [["spike", "3"], ["traffic_consistency", "12"]], right=["n"]), end="")
    name                  n
    spike                 3
    traffic_consistency  12
    """
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if name in right else cell.ljust(width)
            for name, cell, width in zip(header, cells, widths, strict=True)
        ]
        return "  ".join(padded).rstrip() + "\n"

    return line(header) + "".join(line(r) for r in rows)
