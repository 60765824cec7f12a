"""The password file format, checked both ways against the real ``mosquitto_passwd``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench._servers import require_binary
from ingest.access.passwords import (
    PasswordFileError,
    hash_password,
    new_secret,
    parse_password_file,
    render_password_file,
    verify_password,
)
from tests.ingest.access.helpers import ACCEPTED, NOT_AUTHORIZED, Client, connected, secured_broker


@pytest.mark.parametrize("iterations", [None, 1000])
def test_hashes_made_by_mosquitto_passwd_verify_here(tmp_path: Path, iterations: int | None) -> None:
    tool = require_binary("mosquitto_passwd", "mosquitto")
    path = tmp_path / "passwd"
    extra = ["-I", str(iterations)] if iterations else []
    subprocess.run([tool, "-c", *extra, "-b", str(path), "air-1", "s3cret:with colon"], check=True)
    users = parse_password_file(path.read_text(), str(path))
    assert list(users) == ["air-1"]
    assert users["air-1"].startswith(f"$7${iterations or 101}$")
    assert verify_password("s3cret:with colon", users["air-1"])
    assert not verify_password("s3cret", users["air-1"])


def test_hashes_made_here_have_mosquitto_passwd_s_shape() -> None:
    hashed = hash_password("pw", salt=b"0123456789ab", iterations=101)
    _, kind, iterations, salt, digest = hashed.split("$")
    assert (kind, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # 64 bytes in base64
    assert verify_password("pw", hashed)
    assert hash_password("pw") != hash_password("pw"), "every hash has its own salt"


def test_the_broker_accepts_hashes_made_here_with_more_iterations(tmp_path: Path) -> None:
    with secured_broker(tmp_path, "--iterations", "5000") as broker:
        passwd = (tmp_path / "broker" / "passwd").read_text()
        assert "air-000001:$7$5000$" in passwd
        secret = broker.credentials["air-000001"]
        with connected(broker.port, "air-000001", secret) as device:
            assert device.publish("citypulse/v1/readings/air/air-000001", b"x") in ACCEPTED
        assert Client("wrong").connect(broker.port, "air-000001", secret[:-1]) in (134, NOT_AUTHORIZED)


def test_secrets_are_long_random_and_safe_in_files() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(s) == 32 and ":" not in s and "," not in s for s in secrets)


def test_a_damaged_password_file_is_named_by_line() -> None:
    text = render_password_file({"a": hash_password("x"), "b": hash_password("y")})
    assert list(parse_password_file(text + "\n", "passwd")) == ["a", "b"]
    with pytest.raises(PasswordFileError, match=r"passwd:3: not a 'user:hash' line"):
        parse_password_file(text + "broken\n", "passwd")
    with pytest.raises(PasswordFileError, match=r"passwd:2: user 'a' appears twice"):
        parse_password_file("a:$7$1$x$y\na:$7$1$x$z\n", "passwd")
