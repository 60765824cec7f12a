"""docs/development.md's promise: a new sensor kind is one file. Run its example in a copy of the project."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sqlite3, sys
from pathlib import Path
from processors.kinds import KINDS
from processors.topics import TopicScheme
from processors.validate import RawMessage, Validator
from ingest.sinks.sqlite import SqliteSink
from processors.batch import WriteBatch
from simulators.fleet import make_registry
from simulators.plan import FleetChoices, build
from simulators.runner import Simulation
from simulators.outputs import OutputCounts

assert "noise" in KINDS, sorted(KINDS)

class Memory:
    def __init__(self):
        self.messages, self.counts = [], OutputCounts()
    def publish(self, topic, payload):
        self.messages.append((topic, payload))
    def close(self, timeout_s):
        return self.counts

start = 1_795_400_000_000
registry = make_registry(12, ["noise", "air"], seed=1)
choices = FleetChoices(kinds=("noise", "air"), seed=1, start_ms=start)
schedule, encoder = build(registry, TopicScheme(), choices)
out = Memory()
Simulation(schedule, encoder, out, speed=0, end_ms=start + 600_000, wall_clock_ms=lambda: start + 10**8).run()
result = Validator(registry).validate([RawMessage(t, p) for t, p in out.messages], start + 700_000)
assert not result.rejects, result.rejects[:3]
sink = SqliteSink(Path(sys.argv[1]))
sink.write(WriteBatch(readings=tuple(result.batches.values())))
print(sink.count("noise"), sink.count("air"))
"""


def documented_noise_example() -> str:
    text = (ROOT / "docs" / "development.md").read_text()
    match = re.search(r"Create `processors/kinds/noise.py`.*?```python\n(.*?)```", text, flags=re.S)
    assert match, "docs/development.md lost its 'adding a sensor kind' example"
    return match.group(1)


def test_documented_noise_kind_flows_end_to_end(tmp_path: Path) -> None:
    for package in ("processors", "ingest", "simulators", "dashboards"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "processors" / "kinds" / "noise.py").write_text(documented_noise_example())
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store.sqlite")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    noise, air = (int(n) for n in done.stdout.split())
    assert noise == 6 * 10, "six noise monitors reporting every minute for ten minutes"
    assert air == 60
