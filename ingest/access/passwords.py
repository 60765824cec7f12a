"""Broker passwords: generated secrets and Mosquitto's PBKDF2-SHA512 password file.

Mosquitto 2.0's ``mosquitto_passwd`` writes one ``user:$7$ITERATIONS$SALT$HASH``
line per user, where 7 names PBKDF2-HMAC-SHA512, SALT is 12 random bytes and
HASH the 64-byte derived key, both in standard base64 (``output_new_password``
in ``apps/mosquitto_passwd/mosquitto_passwd.c``; ``SALT_LEN`` and
``PW_DEFAULT_ITERATIONS`` in ``password_mosq.h``). The tests check this module's
lines against the real ``mosquitto_passwd`` and broker, both ways.

Iterations default to Mosquitto's own 101: the secrets here are 192 random
bits, which no amount of guessing reaches, so key stretching would only slow the
broker down when every device reconnects at once after a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

ITERATIONS = 101
SALT_BYTES = 12
_PBKDF2_SHA512 = "7"


class PasswordFileError(ValueError):
    """A password file line cannot be read; the message names the line."""


def new_secret() -> str:
    """A fresh password: 24 random bytes as 32 URL-safe characters (no ':' or spaces)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The ``$7$...`` hash of ``password`` that Mosquitto checks at CONNECT."""
    if iterations < 1:
        raise ValueError("PBKDF2 needs at least one iteration")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    encode = base64.b64encode
    return f"${_PBKDF2_SHA512}${iterations}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash (other hash types: False)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != _PBKDF2_SHA512 or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def parse_password_file(text: str, where: str) -> dict[str, str]:
    """User name to hash, in file order; ``where`` names the file in errors."""
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, hashed = line.partition(":")
        name, hashed = name.strip(), hashed.strip()
        if not sep or not name or not hashed or ":" in hashed:
            raise PasswordFileError(
                f"{where}:{number}: not a 'user:hash' line; fix or delete the line, then provision again"
            )
        if name in users:
            raise PasswordFileError(f"{where}:{number}: user {name!r} appears twice; delete one line")
        users[name] = hashed
    return users


def render_password_file(users: dict[str, str]) -> str:
    """The password file for ``users`` (name to hash), one line each."""
    return "".join(f"{name}:{hashed}\n" for name, hashed in users.items())
