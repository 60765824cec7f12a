"""``citypulse devices``: broker identities for the registry's devices, gateways and services.

``provision`` writes the Mosquitto password file, ACL and configuration;
``certs`` makes a private CA with server and client certificates for TLS.
"""

from __future__ import annotations

import grp
import pwd
import sys
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from ingest.access.broker_config import BrokerConfig, TlsListener
from ingest.access.certs import CA_CERT, DEFAULT_SERVER_NAMES, SERVER_CERT, SERVER_KEY, make_certs
from ingest.access.passwords import ITERATIONS, PasswordFileError
from ingest.access.provision import ProvisionError, provision, render_credentials
from ingest.cli.common import ConfigOption, UserError, err, print_json, settings_from
from ingest.registry_file import load_registry
from ingest.settings import Settings
from processors.access import AccessError, Identity, ServiceAccounts, identities
from processors.registry import Registry, RegistryError

app = typer.Typer(
    help="Broker credentials, ACL and TLS certificates for the registry's devices and gateways.",
    no_args_is_help=True,
)

RegistryOption = Annotated[
    Path | None, typer.Option(help="Device registry file (overrides CITYPULSE_REGISTRY).")
]


@app.command("provision")
def provision_command(
    config: ConfigOption = None,
    registry: RegistryOption = None,
    out: Annotated[
        Path, typer.Option(help="Directory for passwd, acl, mosquitto.conf and credentials.csv.")
    ] = Path("broker"),
    ingest_user: Annotated[
        list[str] | None, typer.Option(help="Broker user of an ingest service (repeatable).")
    ] = None,
    alert_reader: Annotated[
        list[str] | None, typer.Option(help="Broker user that may only read alerts (repeatable).")
    ] = None,
    operator: Annotated[
        list[str] | None,
        typer.Option(help="Broker user that reads alerts, dead letters and status (repeatable)."),
    ] = None,
    rotate: Annotated[
        list[str] | None, typer.Option(help="Give this device, gateway or service a new secret (repeatable).")
    ] = None,
    credentials: Annotated[
        Path | None,
        typer.Option(
            help="Where new secrets are written, owner-only (default OUT/credentials.csv; '-': print)."
        ),
    ] = None,
    iterations: Annotated[int, typer.Option(min=1, help="PBKDF2 iterations per password hash.")] = ITERATIONS,
    broker_dir: Annotated[
        str | None, typer.Option(help="Where the broker sees OUT (e.g. /mosquitto/config); default OUT.")
    ] = None,
    bind: Annotated[str, typer.Option(help="Address the broker listens on ('' = every interface).")] = "",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Plain MQTT port (0: none).")] = 1883,
    tls_dir: Annotated[
        str | None,
        typer.Option(help="Where the broker sees ca.crt, server.crt and server.key; adds a TLS listener."),
    ] = None,
    tls_port: Annotated[int, typer.Option(min=1, max=65535, help="TLS listener port.")] = 8883,
    client_certificates: Annotated[
        bool,
        typer.Option(
            "--client-certificates",
            help="TLS clients must present a certificate of the CA; its CN is the user name.",
        ),
    ] = False,
    broker_data: Annotated[
        str | None, typer.Option(help="Where the broker persists sessions and queued messages.")
    ] = None,
    broker_owner: Annotated[
        str | None, typer.Option(help="USER[:GROUP] that runs the broker: passwd and acl are given to it.")
    ] = None,
    broker_user: Annotated[
        str | None, typer.Option(help="Account Mosquitto switches to when started as root (its 'user').")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary as the last line.")] = False,
) -> None:
    """Write the broker's password file, ACL and configuration from the device registry.

    Also writes OUT/secrets/NAME with each service's own secret (ingest, alert
    readers, operators), for CITYPULSE_MQTT_PASSWORD_FILE.

    Each device may publish only to its own readings topic, each gateway only to its
    own batches topic; ingest reads both; alert readers read only alerts; anonymous
    clients are refused. Re-running after the registry changes keeps every existing
    secret, adds the new devices and removes retired ones: send the broker SIGHUP then.
    """
    settings = settings_from(config, registry=registry)
    defaults = ServiceAccounts()
    services = ServiceAccounts(
        ingest=tuple(ingest_user or defaults.ingest),
        alert_readers=tuple(alert_reader or defaults.alert_readers),
        operators=tuple(operator or defaults.operators),
    )
    found = _identities(_load(settings.registry), settings, services)
    files_dir = PurePosixPath(broker_dir) if broker_dir else PurePosixPath(out.resolve())
    tls = None
    if tls_dir is not None:
        where = PurePosixPath(tls_dir)
        tls = TlsListener(
            tls_port, where / CA_CERT, where / SERVER_CERT, where / SERVER_KEY, client_certificates
        )
    elif client_certificates:
        raise UserError("--client-certificates needs a TLS listener: give --tls-dir too")
    try:
        broker = BrokerConfig(
            files_dir,
            bind=bind,
            port=port or None,
            tls=tls,
            data_dir=PurePosixPath(broker_data) if broker_data else None,
            user=broker_user,
        )
        broker.render()
        report = provision(
            found,
            out,
            source=str(settings.registry),
            broker=broker,
            rotate=rotate or (),
            iterations=iterations,
            credentials=credentials,
            broker_owner=_owner(broker_owner) if broker_owner else None,
        )
    except (ProvisionError, PasswordFileError, ValueError) as bad:
        raise UserError(str(bad)) from None
    except PermissionError as bad:
        raise UserError(f"{bad}; run as the owner of {out} (or root for --broker-owner)") from None
    if credentials is not None and str(credentials) == "-":
        sys.stdout.write(render_credentials(report.new_credentials))
    err.print(
        f"{len(found)} identities: {len(report.added)} new, {len(report.rotated)} rotated, "
        f"{len(report.kept)} kept, {len(report.retired)} retired; files in {out}",
        highlight=False,
    )
    if report.new_credentials and "credentials" in report.files:
        err.print(
            f"new secrets are in {report.files['credentials']} (owner-only): hand them to the devices, "
            "then delete the file",
            highlight=False,
        )
    if report.added or report.retired or report.rotated:
        err.print("reload the broker (SIGHUP) to apply the new files", highlight=False)
    if json_out:
        print_json(
            {
                "identities": len(found),
                "added": report.added,
                "rotated": report.rotated,
                "kept": len(report.kept),
                "retired": report.retired,
                "files": {name: str(path) for name, path in report.files.items()},
            }
        )


@app.command("certs")
def certs_command(
    out: Annotated[Path, typer.Option(help="Directory for the CA, server and client files.")] = Path(
        "broker/tls"
    ),
    server_name: Annotated[
        list[str] | None,
        typer.Option(
            help="Host name or IP address of the broker (repeatable; default localhost, "
            "127.0.0.1, mosquitto)."
        ),
    ] = None,
    client: Annotated[
        list[str] | None, typer.Option(help="Issue a client certificate with this CN (repeatable).")
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Also issue one client certificate per device and gateway listed.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Validity of server and client certificates.")] = 365,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary as the last line.")] = False,
) -> None:
    """Make a private CA and certificates for the broker's TLS listener and its clients.

    Keys are written readable by their owner only. An existing CA is reused and
    existing certificates are kept, so a second run only issues what is missing.
    For production, prefer your organisation's CA; the files' roles are the same.
    """
    names = list(client or ())
    if registry is not None:
        loaded = _load(registry)
        names += [device.device_id for device in loaded]
        names += list(loaded.gateways())
    try:
        report = make_certs(out, clients=names, server_names=server_name or DEFAULT_SERVER_NAMES, days=days)
    except ValueError as bad:
        raise UserError(str(bad)) from None
    err.print(
        f"{len(report.created)} files created, {len(report.kept)} kept in {out}; "
        f"give the broker {CA_CERT}, {SERVER_CERT} and {SERVER_KEY}",
        highlight=False,
    )
    if json_out:
        print_json({"created": [str(p) for p in report.created], "kept": [str(p) for p in report.kept]})


def _load(path: Path) -> Registry:
    try:
        return load_registry(path)
    except RegistryError as bad:
        raise UserError(str(bad)) from None


def _identities(registry: Registry, settings: Settings, services: ServiceAccounts) -> list[Identity]:
    try:
        return identities(registry, settings.topics, services)
    except AccessError as bad:
        raise UserError(str(bad)) from None


def _owner(spec: str) -> tuple[int, int]:
    """``USER[:GROUP]`` (names or numbers) as (uid, gid)."""
    user, _, group = spec.partition(":")
    try:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        else:
            gid = pwd.getpwuid(uid).pw_gid if not user.isdigit() else uid
    except KeyError:
        raise UserError(
            f"--broker-owner {spec}: no such user or group on this machine; give numbers"
        ) from None
    return uid, gid
