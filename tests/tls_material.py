"""Certificates for TLS tests: a throwaway certificate authority, a broker certificate for
localhost / 127.0.0.1, and client certificates, written as PEM and PKCS12 the way a Kafka operator
would hand them to a broker and its clients."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

STORE_PASSWORD = "store-secret"


@dataclass(frozen=True)
class Identity:
    """One certificate and its key, as files."""

    certificate_pem: Path  # the certificate, then the CA's
    key_pem: Path  # unencrypted private key
    combined_pem: Path  # key + certificate chain in one file (Kafka's PEM key store)
    pkcs12: Path  # key and chain, protected by STORE_PASSWORD


@dataclass(frozen=True)
class TlsMaterial:
    ca_pem: Path
    broker: Identity

    def client(self, common_name: str, directory: Path) -> Identity:
        return _identity(directory, common_name, self._ca, server=False)

    def server(self, common_name: str, directory: Path) -> Identity:
        """Another server certificate (for localhost / 127.0.0.1) from the same CA: a renewal of
        the broker's when `common_name` is "broker"."""
        directory.mkdir(parents=True, exist_ok=True)
        return _identity(directory, common_name, self._ca, server=True)

    _ca: tuple


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "odradek tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _identity(directory: Path, common_name: str, ca: tuple, *, server: bool) -> Identity:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2)))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    stem = directory / common_name.replace(" ", "-")
    chain = certificate.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    paths = Identity(stem.with_suffix(".crt"), stem.with_suffix(".key"), stem.with_suffix(".pem"), stem.with_suffix(".p12"))
    paths.certificate_pem.write_bytes(chain)
    paths.key_pem.write_bytes(key_pem)
    paths.combined_pem.write_bytes(key_pem + chain)
    paths.pkcs12.write_bytes(pkcs12.serialize_key_and_certificates(
        common_name.encode(), key, certificate, [ca_cert],
        serialization.BestAvailableEncryption(STORE_PASSWORD.encode())))
    return paths


def make_tls_material(directory: Path) -> TlsMaterial:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_cert = (x509.CertificateBuilder().subject_name(_name("odradek test CA")).issuer_name(_name("odradek test CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca_pem = directory / "ca.crt"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    broker = _identity(directory, "broker", (ca_key, ca_cert), server=True)
    return TlsMaterial(ca_pem, broker, (ca_key, ca_cert))
