"""No secret in the repository: the tree is scanned, and the scanner is shown to find planted ones."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from ingest.access.certs import make_certs
from ingest.access.passwords import hash_password, new_secret
from ingest.access.provision import Credential, render_credentials
from tests.secret_scan import repository_files, scan_files, scan_text

ROOT = Path(__file__).resolve().parent.parent


def test_the_repository_holds_no_secrets() -> None:
    findings = scan_files(repository_files(ROOT), ROOT)
    assert findings == [], (
        "secrets in the repository (move them to the environment or a *_FILE):\n"
        + "\n".join(map(str, findings))
    )


def test_what_provisioning_writes_is_ignored_by_git(tmp_path: Path) -> None:
    for name in ("broker/passwd", "broker/credentials.csv", "broker/tls/ca.key", ".env"):
        done = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False)
        assert done.returncode == 0, f"{name} is not ignored by .gitignore"


def planted(tmp_path: Path) -> dict[str, str]:
    make_certs(tmp_path / "tls", clients=["air-1"], server_names=["localhost"])
    token = base64.urlsafe_b64encode(os.urandom(64)).decode()
    return {
        "key.pem": (tmp_path / "tls" / "ca.key").read_text(),
        "passwd": f"air-1:{hash_password(new_secret())}\n",
        "settings.toml": f'mqtt_url = "mqtts://air-1:{new_secret()}@broker:8883"\n',
        "config.py": f'INFLUX_TOKEN = "{token}"\n',
        "conf.yaml": f"influx_token: '{new_secret()}'\n",
        "credentials.csv": render_credentials([Credential("air-1", "device", new_secret())]),
        ".env": f"GRAFANA_ADMIN_PASSWORD={new_secret()}\n",
        "notes.md": f"use the token {token} for setup\n",
        "aws.txt": "key AKIA" + "ABCDEFGHIJKLMNOP\n",
    }


@pytest.mark.parametrize(
    "name",
    [
        "key.pem",
        "passwd",
        "settings.toml",
        "config.py",
        "conf.yaml",
        "credentials.csv",
        ".env",
        "notes.md",
        "aws.txt",
    ],
)
def test_the_scanner_finds_each_kind_of_planted_secret(tmp_path: Path, name: str) -> None:
    text = planted(tmp_path)[name]
    assert list(scan_text(text, name)), f"the scanner missed the secret in {name}: {text!r}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (".env.example", "INFLUX_TOKEN=change-me\nGRAFANA_ADMIN_PASSWORD=\nMQTT_PASSWORD=${MQTT_PASSWORD}\n"),
        ("compose.yaml", "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN: ${INFLUX_TOKEN:?set INFLUX_TOKEN}\n"),
        ("README.md", "CITYPULSE_MQTT_URL=mqtt://ops:<password>@broker.local\n"),
        ("settings.py", 'token = "citypulse-ingest"  # a user name, not a secret\n'),
    ],
)
def test_placeholders_are_not_secrets(name: str, text: str) -> None:
    assert list(scan_text(text, name)) == []
