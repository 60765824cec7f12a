"""``citypulse bench``: the end-to-end benchmark (``bench/e2e.py``) of a source checkout.

The benchmark is not part of the installed package: it starts its own Mosquitto and
influxd (and Node-RED, through npm), makes backlogs with the simulator and times every
contender against them, which is a developer's job on a development machine, with
the repository at hand. So this command runs the checkout's ``bench/e2e.py`` (found
next to the ``ingest`` package this command was imported from, as with ``pip install
-e .``, or given with ``--checkout``) with the options given after it, and says what to
do when there is none.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

import ingest
from ingest.cli.common import UserError

SCRIPT = Path("bench") / "e2e.py"


def checkout_of_this_package() -> Path:
    """The directory that holds the ``ingest`` package being run (a checkout, or site-packages)."""
    return Path(ingest.__file__).resolve().parents[1]


def bench(
    ctx: typer.Context,
    checkout: Annotated[
        Path | None,
        typer.Option(
            "--checkout",
            help="Source checkout whose bench/e2e.py to run.",
            show_default="the one this citypulse runs from",
        ),
    ] = None,
) -> None:
    """Run the end-to-end benchmark: MQTT in to InfluxDB out, every contender side by side.

    Options after this command are the benchmark's own (citypulse bench --size small --json;
    citypulse bench --help-bench lists them). Needs mosquitto, mosquitto-clients and influxdb.
    """
    root = checkout if checkout is not None else checkout_of_this_package()
    script = root / SCRIPT
    if not script.is_file():
        raise UserError(
            f"there is no {SCRIPT} in {root}: the benchmark runs from a source checkout, not an installed "
            "package; clone the repository, run pip install -e . there and then citypulse bench again "
            "(or pass --checkout DIR)"
        )
    args = ["--help" if arg == "--help-bench" else arg for arg in ctx.args]
    sys.stdout.flush()
    sys.stderr.flush()
    # The benchmark takes this process's place, so a stop signal reaches it and it stops its servers.
    os.execv(sys.executable, [sys.executable, str(script), *args])
