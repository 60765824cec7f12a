"""What the tests take from docs/alerts.md, so the page's examples are the ones that run."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = DOCS / "alerts.md"
SCHEMA = DOCS / "alerts-webhook.schema.json"


def block(after_heading: str, language: str) -> str:
    """The first ``language`` code block after the heading that starts with ``after_heading``."""
    text = PAGE.read_text(encoding="utf-8")
    start = re.search(rf"^#+ {re.escape(after_heading)}.*$", text, flags=re.M)
    assert start is not None, f"docs/alerts.md has no heading {after_heading!r}"
    found = re.search(rf"```{language}\n(.*?)```", text[start.end() :], flags=re.S)
    assert found is not None, f"no {language} block after {after_heading!r}"
    return found.group(1)


def verify_function() -> Callable[[bytes, str, str], bool]:
    """The signature check exactly as docs/alerts.md shows it."""
    scope: dict[str, Any] = {}
    exec(compile(block("Checking the signature", "python"), str(PAGE), "exec"), scope)
    verify = scope["verify"]
    assert callable(verify)
    return verify  # type: ignore[no-any-return]


def webhook_schema() -> dict[str, Any]:
    loaded = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded
