"""Turning the device registry into broker credentials, an ACL and a broker configuration.

Provisioning is incremental: an identity already in the password file keeps its
hash (its device keeps working, its secret is never regenerated or shown
again); a new identity gets a fresh secret; an identity no longer in the
registry is removed, so a retired device cannot connect after the broker reloads.
Only the secrets made by this run, and those earlier runs left in the
credentials file, are ever written in clear, to a file only its owner can read.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.access.broker_config import BrokerConfig
from ingest.access.passwords import (
    ITERATIONS,
    hash_password,
    new_secret,
    parse_password_file,
    render_password_file,
)
from ingest.private_files import private_directory, write_private
from processors.access import Identity, Role, render_acl

PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
BROKER_CONFIG = "mosquitto.conf"
CREDENTIALS_FILE = "credentials.csv"
CREDENTIALS_COLUMNS = ("user", "role", "password")
SECRETS_DIR = "secrets"
"""Each service's own secret, one owner-only file per service (for its ``*_PASSWORD_FILE``)."""


class ProvisionError(ValueError):
    """Provisioning cannot go ahead; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Credential:
    user: str
    role: str
    password: str


@dataclass
class ProvisionReport:
    """What a provisioning run changed."""

    added: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    new_credentials: list[Credential] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def provision(
    found: Sequence[Identity],
    out_dir: Path,
    *,
    source: str,
    broker: BrokerConfig,
    rotate: Collection[str] = (),
    iterations: int = ITERATIONS,
    credentials: Path | None = None,
    broker_owner: tuple[int, int] | None = None,
) -> ProvisionReport:
    """Write ``passwd``, ``acl``, ``mosquitto.conf`` and ``secrets/<service>`` into ``out_dir``.

    ``credentials`` is where new secrets are kept in clear (default
    ``out_dir/credentials.csv``); pass ``Path("-")`` to leave them only in the
    report, for the caller to print once. ``broker_owner`` (uid, gid) hands the
    password file and the ACL to the broker's account, which must read them.
    """
    names = {identity.name for identity in found}
    unknown = sorted(set(rotate) - names)
    if unknown:
        raise ProvisionError(
            f"cannot rotate {', '.join(unknown)}: not a device, gateway or service of this registry"
        )
    private_directory(out_dir)
    passwd_path = out_dir / PASSWORD_FILE
    existing = (
        parse_password_file(passwd_path.read_text(encoding="utf-8"), str(passwd_path))
        if passwd_path.exists()
        else {}
    )
    to_file = credentials is None or str(credentials) != "-"
    credentials_path = credentials if credentials is not None and to_file else out_dir / CREDENTIALS_FILE
    kept_clear = read_credentials(credentials_path) if to_file else {}

    report = ProvisionReport()
    users: dict[str, str] = {}
    clear: dict[str, Credential] = {}
    for identity in found:
        name = identity.name
        if name in existing and name not in rotate:
            users[name] = existing[name]
            report.kept.append(name)
            if name in kept_clear:
                clear[name] = kept_clear[name]
            continue
        secret = new_secret()
        users[name] = hash_password(secret, iterations=iterations)
        credential = Credential(name, str(identity.role), secret)
        clear[name] = credential
        report.new_credentials.append(credential)
        (report.rotated if name in existing else report.added).append(name)
    report.retired = [name for name in existing if name not in names]

    write_private(passwd_path, render_password_file(users).encode())
    acl_path = out_dir / ACL_FILE
    write_private(acl_path, render_acl(found, source).encode())
    config_path = out_dir / BROKER_CONFIG
    config_path.write_text(broker.render(), encoding="utf-8")
    report.files = {"passwd": passwd_path, "acl": acl_path, "config": config_path}
    if broker_owner is not None:
        for path in (passwd_path, acl_path):
            os.chown(path, *broker_owner)
    if to_file:
        write_private(credentials_path, render_credentials(clear.values()).encode())
        report.files["credentials"] = credentials_path
    _service_secrets(out_dir / SECRETS_DIR, found, clear)
    return report


def _service_secrets(folder: Path, found: Sequence[Identity], clear: dict[str, Credential]) -> None:
    """One file per service (not per device) holding its secret, so a service reads only its own.

    Written when the secret is known in clear (just made, or kept in the credentials
    file); an existing file is kept; a retired service's file is removed.
    """
    services = {i.name for i in found if i.role in (Role.INGEST, Role.ALERTS, Role.OPERATOR)}
    private_directory(folder)
    for name in services:
        path = folder / name
        if name in clear and (not path.exists() or path.read_text().strip() != clear[name].password):
            write_private(path, (clear[name].password + "\n").encode())
    for path in folder.iterdir():
        if path.name not in services:
            path.unlink()


def read_credentials(path: Path) -> dict[str, Credential]:
    """The clear-text credentials an earlier run left in ``path`` (none if it does not exist)."""
    if not path.exists():
        return {}
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    if tuple(reader.fieldnames or ()) != CREDENTIALS_COLUMNS:
        raise ProvisionError(
            f"{path} is not a credentials file (header {','.join(CREDENTIALS_COLUMNS)}); "
            "move it away or pass another --credentials path"
        )
    return {row["user"]: Credential(row["user"], row["role"], row["password"]) for row in reader}


def render_credentials(credentials: Collection[Credential]) -> str:
    """CSV with a header: user, role, password."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CREDENTIALS_COLUMNS)
    writer.writerows((c.user, c.role, c.password) for c in credentials)
    return out.getvalue()
