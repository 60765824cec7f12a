from __future__ import annotations

import sqlite3
from pathlib import Path

from processors.kinds import KINDS
from tests.e2e.helpers import last_json_line, run_citypulse


def test_demo_runs_the_whole_pipeline_with_nothing_installed(tmp_path: Path) -> None:
    done = run_citypulse("demo", "--duration", "10", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    kinds = summary["kinds"]
    simulator = summary["simulator"]
    for kind in KINDS:
        assert kinds[kind]["stored"] > 0, f"no {kind} readings stored"
        assert kinds[kind]["stored"] == simulator["valid_by_kind"][kind]
    assert summary["received"] == summary["stored"] + summary["rejected"]
    assert summary["rejected_by_reason"] == simulator["expected_rejects"]
    store = tmp_path / summary["store"]
    db = sqlite3.connect(store)
    assert sum(db.execute(f'SELECT count(*) FROM "{k}"').fetchone()[0] for k in KINDS) == summary["stored"]
