"""Email against a real local SMTP server (aiosmtpd): plain, and STARTTLS with a login."""

from __future__ import annotations

from pathlib import Path

from processors.alerts import EventType
from tests.ingest.alerts.channels import delivering, owe, settle
from tests.ingest.alerts.helpers import event
from tests.servers import SmtpServer


def test_a_group_of_events_is_one_email_in_both_languages(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_server.port,
        "smtp_starttls": False,
        "smtp_from": "citypulse@hanoi.example",
        "emails": [{"name": "duty", "to": ["duty@hanoi.example", "lead@hanoi.example"]}],
    }
    with delivering(tmp_path, **settings) as service:
        owe(service, event(1), event(2), event(1, EventType.RESOLVED))
        settle(service)
    [message] = smtp_server.messages
    assert message["Subject"] == "[citypulse] CRITICAL bin_fire · Đống Đa (3 events)"
    assert message["To"] == "duty@hanoi.example, lead@hanoi.example"
    assert message["X-Rcpt-To"] == "duty@hanoi.example, lead@hanoi.example"
    assert message["X-Citypulse-Event-Ids"].split() == [
        event(1).event_id,
        event(2).event_id,
        f"{event(1).alert.id}.2",
    ]
    body = message.get_content()
    vi, en = (
        body.index("Nghi cháy thùng rác waste-000001"),
        body.index("Possible fire in waste bin waste-000001"),
    )
    assert vi < en, "Vietnamese first, as the operators read it"
    assert "RESOLVED" in body
    assert f"citypulse alerts ack {event(1).alert.id}" in body


def test_starttls_and_a_login_from_the_environment(
    tmp_path: Path, smtp_tls_server: SmtpServer, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("CITYPULSE_ALERTS_SMTP_PASSWORD", smtp_tls_server.password)
    from ingest.settings import Settings

    assert Settings().alerts.smtp_password.get_secret_value() == smtp_tls_server.password
    settings = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_tls_server.port,
        "smtp_ca_file": smtp_tls_server.ca_file,
        "smtp_username": smtp_tls_server.user,
        "smtp_password": Settings().alerts.smtp_password,
        "language": "en",
        "emails": [{"name": "duty", "to": ["duty@hanoi.example"]}],
    }
    with delivering(tmp_path, **settings) as service:
        owe(service, event(1))
        settle(service)
    [message] = smtp_tls_server.messages
    body = message.get_content()
    assert body.index("Possible fire") < body.index("Nghi cháy"), "English first when asked"


def test_a_wrong_password_is_dead_lettered_without_retrying(
    tmp_path: Path, smtp_tls_server: SmtpServer
) -> None:
    settings = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_tls_server.port,
        "smtp_ca_file": smtp_tls_server.ca_file,
        "smtp_username": smtp_tls_server.user,
        "smtp_password": "wrong",
        "emails": [{"name": "duty", "to": ["duty@hanoi.example"]}],
    }
    with delivering(tmp_path, **settings) as service:
        owe(service, event(1))
        settle(service)
        dead = service.store.dead_letters()
    assert smtp_tls_server.messages == []
    assert [(d["attempts"], "refused the login" in str(d["error"])) for d in dead] == [(1, True)]
