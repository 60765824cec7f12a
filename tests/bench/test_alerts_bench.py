"""The alerts benchmark runs end to end at a small size (its figures are not judged here)."""

from __future__ import annotations

import re

from tests.bench.test_bench_scripts import run


def test_alerts_bench_compares_the_three_modes() -> None:
    out = run("alerts_bench.py", "--devices", "25", "--hours", "0.5", "--repeat", "1", "--window", "120")
    rows = re.findall(
        r"^  (alerts off|alerts on, no subscriber|alerts on, hanging webhook)\s+([\d,]+)\s", out, re.M
    )
    assert [name for name, _ in rows] == [
        "alerts off",
        "alerts on, no subscriber",
        "alerts on, hanging webhook",
    ]
    assert all(int(rate.replace(",", "")) > 0 for _, rate in rows)
    assert "webhook:" in out
