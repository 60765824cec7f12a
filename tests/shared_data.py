"""Where the project's shared real data is: ``shared/data/<name>`` beside the checkout, as CI lays it out."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def shared_data(name: str) -> Path:
    """``shared/data/<name>`` in the project root's parent (a git worktree nested deeper: the nearest
    ancestor that holds it); the first place is returned, to name in a skip reason, when none has it."""
    for parent in PROJECT.parents:
        if (parent / "shared" / "data" / name).is_dir():
            return parent / "shared" / "data" / name
    return PROJECT.parent / "shared" / "data" / name
