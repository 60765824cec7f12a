"""The layer contract in pyproject.toml holds, and it would catch an import that runs up a layer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ingest", "processors", "simulators", "dashboards")


def lint_imports(tree: Path, *contract: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("lint-imports")
    assert tool, "import-linter is a test dependency: pip install -e '.[test]'"
    only = [arg for c in contract for arg in ("--contract", c)]
    return subprocess.run(
        [tool, "--no-cache", *only],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tree)},
    )


@pytest.fixture(scope="module")
def copy_of_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_the_layers_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("simulators/sun.py", "import ingest.settings", "simulators-apart-from-service"),
        ("ingest/pipeline.py", "import simulators.fleet", "service-beside-simulators"),
        ("processors/solar.py", "import sqlite3", "processors-pure"),
        ("processors/units.py", "import simulators.sun", "layers"),
    ],
)
def test_an_import_up_a_layer_is_caught(
    copy_of_tree: Path, module: str, bad_import: str, contract: str
) -> None:
    path = copy_of_tree / module
    original = path.read_text()
    try:
        clean = lint_imports(copy_of_tree, contract)
        path.write_text(f"{original}\n{bad_import}  # noqa: E402\n")
        done = lint_imports(copy_of_tree, contract)
    finally:
        path.write_text(original)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert done.returncode != 0, done.stdout
    assert "1 broken" in done.stdout
