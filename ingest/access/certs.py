"""A private certificate authority for the broker's TLS listener and its clients.

For a test or a first deployment without a corporate CA: one CA, one server
certificate naming the broker's host names and addresses, and one client
certificate per device, gateway or service whose common name is its broker user
name (``use_identity_as_username``). Keys are ECDSA P-256 and written readable by
their owner only; certificates are public and readable by all.

Existing files are kept: a second run issues only what is missing, signed by the
same CA, so certificates already on devices stay valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ingest.private_files import private_directory, write_private

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CLIENTS_DIR = "clients"
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1", "mosquitto")


@dataclass
class CertsReport:
    """Which files this run created (existing ones are listed as kept)."""

    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Pair:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def make_certs(
    out_dir: Path,
    *,
    clients: Iterable[str] = (),
    server_names: Iterable[str] = DEFAULT_SERVER_NAMES,
    days: int = 365,
    ca_name: str = "citypulse test CA",
) -> CertsReport:
    """Create (or complete) the CA, the server certificate and the named clients' certificates."""
    report = CertsReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    ca = _load(out_dir / CA_KEY, out_dir / CA_CERT)
    if ca is None:
        ca = _self_signed(ca_name, days * 5)
        _save(ca, out_dir / CA_KEY, out_dir / CA_CERT, report)
    else:
        report.kept += [out_dir / CA_KEY, out_dir / CA_CERT]
    names = list(dict.fromkeys(server_names))
    if not names:
        raise ValueError("the server certificate needs at least one host name or address")
    _issue_if_missing(ca, names[0], out_dir / SERVER_KEY, out_dir / SERVER_CERT, report, days, names)
    wanted = list(dict.fromkeys(clients))
    if wanted:
        folder = private_directory(out_dir / CLIENTS_DIR)
        for name in wanted:
            _issue_if_missing(ca, name, folder / f"{name}.key", folder / f"{name}.crt", report, days)
    return report


def _issue_if_missing(
    ca: Pair,
    common_name: str,
    key_path: Path,
    cert_path: Path,
    report: CertsReport,
    days: int,
    server_names: list[str] | None = None,
) -> None:
    if key_path.exists() and cert_path.exists():
        report.kept += [key_path, cert_path]
        return
    _save(_issue(ca, common_name, days, server_names), key_path, cert_path, report)


def _self_signed(common_name: str, days: int) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pair(key, cert)


def _issue(ca: Pair, common_name: str, days: int, server_names: list[str] | None) -> Pair:
    """A leaf certificate: for a server (its names as subject alternative names) or a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server_names is not None:
        alternatives: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return Pair(key, builder.sign(ca.key, hashes.SHA256()))


def _save(pair: Pair, key_path: Path, cert_path: Path, report: CertsReport) -> None:
    key_pem = pair.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(key_path, key_pem)
    cert_path.write_bytes(pair.cert.public_bytes(serialization.Encoding.PEM))
    report.created += [key_path, cert_path]


def _load(key_path: Path, cert_path: Path) -> Pair | None:
    if not (key_path.exists() and cert_path.exists()):
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC private key; move the old CA away to make a new one")
    return Pair(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
