"""Project-level promises: compose file valid, README's commands true to the scripts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_follows_the_compose_spec() -> None:
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is a test dependency: pip install -e '.[test]'"
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_broker_never_drops_queued_messages() -> None:
    """The broker's configuration is the one the setup service provisions, persistence on."""
    from pathlib import PurePosixPath

    from ingest.access.broker_config import BrokerConfig

    setup = " ".join(yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["setup"]["command"])
    assert "--broker-data /mosquitto/data" in setup
    text = BrokerConfig(PurePosixPath("/mosquitto/data"), data_dir=PurePosixPath("/mosquitto/data")).render()
    for line in ("max_queued_messages 0", "max_inflight_messages 0", "persistence true"):
        assert line in text


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "ruff format --check . && ruff check . && mypy && lint-imports && python3 -m pytest"
    assert f"`{command}`" in readme
    assert ci.rstrip().endswith(command)
    assert "pip install . && citypulse demo" in readme
    assert "bash .ci/run" in readme
