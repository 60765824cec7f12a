"""``citypulse alerts``: acknowledging and silencing from the command line change what subscribers receive."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.alerts.helpers import publish, reading, running_ingest
from tests.alerts.test_delivery import bins, settings_for
from tests.e2e.helpers import last_json_line, run_citypulse, wait_until
from tests.servers import Mosquitto, WebhookReceiver

MIN = 60_000


def cli(tmp_path: Path, *args: str) -> dict[str, Any]:
    """``citypulse alerts ... --json`` in this process (beside the running ingest, as an operator has it)."""
    from ingest.cli import app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYPULSE_ALERTS_STORE", str(tmp_path / "alerts.sqlite"))
        result = CliRunner().invoke(app, ["alerts", *args, "--json"])
    assert result.exit_code == 0, result.output
    return last_json_line(result.stdout)


def test_acknowledging_and_silencing_change_what_subscribers_receive(
    tmp_path: Path, mosquitto: Mosquitto, webhook_receiver: WebhookReceiver
) -> None:
    settings = settings_for(tmp_path, mosquitto, webhook_receiver)
    start = int(time.time() * 1000) - 3 * 60 * MIN
    pair = ("waste-000001", "waste-000003")  # both in Đống Đa
    with running_ingest(settings, bins()) as ingest:  # type: ignore[arg-type]
        publish(
            mosquitto.url,
            [reading("waste", d, start + m * MIN, temperature=80.0) for m in range(10) for d in pair],
        )
        wait_until(lambda: len(webhook_receiver.events()) == 2, 20, "both alerts at the webhook")
        listed = cli(tmp_path, "list")["open"]
        ids = {a["device"]: a["id"] for a in listed}
        assert sorted(ids) == list(pair)

        acked = cli(tmp_path, "ack", ids["waste-000001"], "--by", "lan", "--note", "crew sent")
        assert acked["applied"] is True
        assert acked["outcome"] == "acknowledged"
        silenced = cli(
            tmp_path, "silence", "--district", "Tây Hồ", "--for", "1h", "--by", "lan", "--comment", "works"
        )
        assert json.dumps(silenced, ensure_ascii=False).count("Tây Hồ") == 1

        # Forty more minutes: the unacknowledged alert escalates, the acknowledged one does not,
        # and the silenced district's new alert reaches nobody.
        fleet = (*pair, "waste-000002")
        later = [reading("waste", d, start + m * MIN, temperature=80.0) for m in range(10, 50) for d in fleet]
        publish(mosquitto.url, later)
        wait_until(lambda: ingest.processed() == 20 + len(later), 20, "the later readings")
        ingest.delivered("webhook")
        received = sorted(
            (e["event"], e["alert"]["device"], e["alert"]["acknowledged_by"])
            for e in webhook_receiver.events()
        )
        tail = run_citypulse(  # the real command, once
            "alerts",
            "tail",
            "--no-follow",
            "--json",
            env={"CITYPULSE_ALERTS_STORE": str(tmp_path / "alerts.sqlite")},
        )
        now_open = cli(tmp_path, "list")
    assert received == [
        ("acknowledged", "waste-000001", "lan"),
        ("escalated", "waste-000003", ""),
        ("fired", "waste-000001", ""),
        ("fired", "waste-000003", ""),
    ]
    history = [json.loads(line) for line in tail.stdout.splitlines()]
    quiet = [(e["event"], e["silenced_by"] != "") for e in history if e["alert"]["device"] == "waste-000002"]
    assert quiet == [("fired", True), ("escalated", True)], "raised and stored, told to nobody"
    states = {a["device"]: (a["state"], a["severity"]) for a in now_open["open"]}
    assert states == {
        "waste-000001": ("acknowledged", "warning"),
        "waste-000003": ("firing", "critical"),
        "waste-000002": ("firing", "critical"),
    }
    assert [s["district"] for s in now_open["silences"]] == ["Tây Hồ"]


def in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run ``citypulse alerts ...`` in this process (fast); (exit status, stdout, the user error if any)."""
    from ingest.cli import app
    from ingest.cli.common import UserError

    monkeypatch.setenv("CITYPULSE_ALERTS_STORE", str(tmp_path / "alerts.sqlite"))
    result = CliRunner().invoke(app, ["alerts", *args])
    if isinstance(result.exception, UserError):
        return 2, result.stdout, str(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, ""


def test_the_commands_work_while_ingest_is_stopped_and_refuse_mistakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        return in_process(monkeypatch, tmp_path, *args)

    assert run("list")[2].startswith("no alert store at")
    code, out, _ = run("silence", "--device", "waste-000001", "--for", "2h", "--by", "lan", "--json")
    made = json.loads(out)["silence"]
    assert code == 0
    assert json.loads(run("list", "--json")[1]) == {"open": [], "silences": [made]}
    assert "no open alert 'nope'" in run("ack", "nope", "--by", "lan")[2]
    assert "--for" in run("silence", "--district", "Tây Hồ", "--by", "lan")[2]
    assert "not an alert rule" in run("silence", "--rule", "nope", "--for", "1h", "--by", "lan")[2]
    assert "--kind 'lamp' is not a kind" in run("silence", "--kind", "lamp", "--for", "1h", "--by", "lan")[2]
    assert json.loads(run("silence", "--end", made["id"], "--json")[1])["silences"] == []
    assert "no alert channel is configured" in run("test", "--channel", "email")[2]


def test_alerts_test_sends_a_signed_test_alert_to_every_subscriber(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook_receiver: WebhookReceiver
) -> None:
    config = tmp_path / "citypulse.toml"
    config.write_text(
        f'[alerts]\nmqtt = false\n\n[[alerts.webhooks]]\nname = "ops"\nurl = "{webhook_receiver.url}"\n'
        'secret = "s3cret"\nseverities = ["critical"]\n',
        encoding="utf-8",
    )
    code, out, _ = in_process(monkeypatch, tmp_path, "test", "--config", str(config), "--json")
    assert code == 0
    assert json.loads(out)["results"] == [
        {"channel": "webhook", "subscriber": "ops", "ok": True, "error": ""}
    ]
    [body] = webhook_receiver.bodies()
    assert [(e["event"], e["alert"]["rule"]) for e in body["events"]] == [
        ("fired", "citypulse_test"),
        ("resolved", "citypulse_test"),
    ], "sent although the subscriber only takes critical alerts: a test checks the line, not the filters"
    webhook_receiver.respond(500)
    code, out, _ = in_process(monkeypatch, tmp_path, "test", "--config", str(config), "--json")
    assert code == 1
    assert json.loads(out)["results"][0]["error"] == "webhook ops answered HTTP 500"
