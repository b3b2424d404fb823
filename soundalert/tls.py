"""A private certificate authority for the home broker: its CA, the broker's certificate and
client certificates (``cryptography``; ECDSA P-256, SHA-256).

``soundalert node init`` keeps the CA (its key never leaves the host) and issues the broker a
certificate whose subject alternative names cover how clients reach it: ``mosquitto`` (the
compose service), ``localhost``, ``127.0.0.1``, ``::1``, the host's own name and any extra
names or addresses given. Clients trust that one CA (``?ca=`` in the broker URL) and check the
broker's name against those SANs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_DAYS",
    "LEAF_DAYS",
    "BrokerTls",
    "Issued",
    "default_broker_names",
    "issue_certificate",
    "load_issued",
    "names_of",
    "new_ca",
    "write_issued",
]

CA_DAYS: Final = 3650
LEAF_DAYS: Final = 825  # the longest that Apple devices accept from a user-installed CA
_BACKDATE: Final = dt.timedelta(minutes=5)  # clocks of small devices lag a little


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_usage(*, sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(common_name: str = "soundalert home CA", *, days: int = CA_DAYS) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue_certificate(
    ca: Issued,
    common_name: str,
    *,
    names: Sequence[str] = (),
    server: bool = True,
    days: int = LEAF_DAYS,
) -> Issued:
    """A leaf certificate signed by ``ca``: a server's (``names`` as its SANs) or a client's
    (``server=False``; ``common_name`` is the client's identity)."""
    if server and not names:
        raise ValueError("a server certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + dt.timedelta(days=days), ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in _unique(names)]),
            critical=False,
        )
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def _unique(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name and name not in out:
            out.append(name)
    return out


def _primary_address() -> str | None:
    """The address this host reaches other hosts from (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


def default_broker_names(extra: Iterable[str] = ()) -> list[str]:
    """The names a broker certificate should cover: the compose service, loopback, this
    host's name (short and fully qualified) and its address on the network, then ``extra``."""
    host = socket.gethostname()
    return _unique(["mosquitto", "localhost", "127.0.0.1", "::1", host, socket.getfqdn(host),
                    _primary_address() or "", *extra])  # fmt: skip


def names_of(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses in a certificate's SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return {*dns, *ips}


def write_issued(issued: Issued, cert_path: Path, key_path: Path, *, key_mode: int) -> None:
    """Write the certificate (0644) and the key (``key_mode``), each atomically."""
    for path, data, mode in ((key_path, issued.key_pem(), key_mode),
                             (cert_path, issued.cert_pem(), 0o644)):  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=mode)
        tmp.chmod(mode)
        tmp.write_bytes(data)
        tmp.replace(path)


def load_issued(cert_path: Path, key_path: Path) -> Issued:
    """A key and certificate written by :func:`write_issued`."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{key_path} does not hold an EC private key")
    return Issued(key, cert)


RENEW_BEFORE: Final = dt.timedelta(days=30)
BROKER_UID: Final = 1883  # the eclipse-mosquitto image's user


@dataclass(frozen=True)
class BrokerTls:
    """Where ``soundalert node init`` keeps the CA (``ca_dir``, never mounted anywhere), the
    broker's certificate and key (``broker_dir``) and the CA certificate clients trust
    (``clients_dir``: nothing secret, mounted into the soundalert services)."""

    ca_dir: Path
    broker_dir: Path
    clients_dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "ca.key"

    @property
    def broker_cert(self) -> Path:
        return self.broker_dir / "broker.crt"

    @property
    def broker_key(self) -> Path:
        return self.broker_dir / "broker.key"

    def ensure(self, names: Sequence[str]) -> list[str]:
        """Create what is missing: the CA (kept if present), a broker certificate covering
        ``names`` (re-issued when it lacks one, has another issuer or expires within 30
        days), and copies of the CA certificate for the broker and the clients. Returns
        what was done, one line each."""
        done: list[str] = []
        ca = self._ca(done)
        broker = self._broker_certificate(ca, names)
        if broker is not None:
            private = os.geteuid() == 0
            write_issued(broker, self.broker_cert, self.broker_key,
                         key_mode=0o600 if private else 0o644)  # fmt: skip
            if private:
                os.chown(self.broker_key, BROKER_UID, BROKER_UID)
            done.append(f"broker certificate for {', '.join(names)}: {self.broker_cert}")
        for directory in (self.broker_dir, self.clients_dir):
            directory.mkdir(parents=True, exist_ok=True)
            copy = directory / "ca.crt"
            if not copy.exists() or copy.read_bytes() != ca.cert_pem():
                copy.write_bytes(ca.cert_pem())
                done.append(f"CA certificate copied to {copy}")
        return done

    def _ca(self, done: list[str]) -> Issued:
        if self.ca_cert.exists() and self.ca_key.exists():
            return load_issued(self.ca_cert, self.ca_key)
        if self.ca_cert.exists() or self.ca_key.exists():
            raise FileExistsError(
                f"only one of {self.ca_cert} and {self.ca_key} exists: restore the other, or "
                "move both away to create a new CA (every client then needs the new ca.crt)"
            )
        ca = new_ca()
        write_issued(ca, self.ca_cert, self.ca_key, key_mode=0o600)
        done.append(f"new CA: {self.ca_cert} (its key {self.ca_key}: keep it private)")
        return ca

    def _broker_certificate(self, ca: Issued, names: Sequence[str]) -> Issued | None:
        """A new broker certificate, or None when the present one is still right."""
        if self.broker_cert.exists() and self.broker_key.exists():
            current = x509.load_pem_x509_certificate(self.broker_cert.read_bytes())
            if (
                current.issuer == ca.cert.subject
                and _signed_by(current, ca)
                and set(names) <= names_of(current)
                and current.not_valid_after_utc - _now() > RENEW_BEFORE
            ):
                return None
        return issue_certificate(ca, "mosquitto", names=names)


def _signed_by(cert: x509.Certificate, ca: Issued) -> bool:
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
