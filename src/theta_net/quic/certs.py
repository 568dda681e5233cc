"""The server's TLS identity: a self-signed certificate made at start-up (``cryptography``),
kept in a directory so that its fingerprint, which clients pin, survives restarts."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..errors import CertificateError

__all__ = ["ServerIdentity", "fingerprint_hex", "make_self_signed"]


def fingerprint_hex(der: bytes) -> str:
    """SHA-256 of a DER certificate, lowercase hex: what ``theta serve`` prints and tokens pin."""
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class ServerIdentity:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cert.pem").write_bytes(
            self.certificate.public_bytes(serialization.Encoding.PEM)
        )
        key = directory / "key.pem"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ))

    @classmethod
    def load(cls, directory: Path) -> ServerIdentity:
        try:
            cert = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
            key = serialization.load_pem_private_key(
                (directory / "key.pem").read_bytes(), password=None
            )
        except (OSError, ValueError) as exc:
            raise CertificateError(f"cannot read the certificate in {directory}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{directory}/key.pem is not an EC private key")
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, directory: Path | None, host: str = "localhost") -> ServerIdentity:
        """The identity kept in ``directory`` (made there when absent); a fresh one when None."""
        if directory is not None and (directory / "cert.pem").exists():
            return cls.load(directory)
        identity = make_self_signed(host)
        if directory is not None:
            identity.save(directory)
        return identity


def make_self_signed(host: str = "localhost", days: int = 365) -> ServerIdentity:
    """A P-256 key and a self-signed certificate naming ``host`` (and 127.0.0.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt: list[x509.GeneralName] = [x509.DNSName(host), x509.DNSName("localhost"),
                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ServerIdentity(cert, key)
