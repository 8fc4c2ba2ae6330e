"""Throughput over TLS and SASL_SSL next to PLAINTEXT (issue 13), for the `security` session of run.py.

Both brokers get the same three listeners, PLAINTEXT, SSL and SASL_SSL, and the same configs under
Kafka's names: one PKCS12 key store (a throwaway CA and a certificate for 127.0.0.1 / localhost,
made here with `cryptography`), `sasl.enabled.mechanisms=PLAIN` with the accounts in the SASL_SSL
listener's PlainLoginModule JAAS config, no client certificates. Inter-broker traffic (Kafka's, on
one node) stays on PLAINTEXT. The librdkafka clients verify the broker's certificate against the CA.

This module holds the material, the configs and the table; the session itself is in run.py.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

LISTENERS = ("PLAINTEXT", "SSL", "SASL_SSL")
STORE_PASSWORD = "bench-store-secret"
USER, PASSWORD = "bench", "bench-secret"
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              f'password="admin-secret" user_admin="admin-secret" user_{USER}="{PASSWORD}";')


@dataclass(frozen=True)
class Stores:
    ca_pem: Path  # what the clients trust
    keystore: Path  # the broker's key and certificate chain, PKCS12 under STORE_PASSWORD


def make_stores(directory: Path) -> Stores:
    """A CA and a broker certificate for 127.0.0.1 / localhost, valid for two days.

    P-256 keys: the handshake is a few connections per run, so the key type hardly shows in
    throughput; the bulk cipher (what the client and the broker negotiate) is what the rows measure."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "odradek bench"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject: str, issuer: str, key) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2)))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (builder("odradek bench CA", "odradek bench CA", ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (builder("broker", "odradek bench CA", key)
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    stores = Stores(directory / "ca.crt", directory / "broker.p12")
    stores.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    stores.keystore.write_bytes(pkcs12.serialize_key_and_certificates(
        b"broker", key, certificate, [ca], serialization.BestAvailableEncryption(STORE_PASSWORD.encode())))
    return stores


def broker_config(stores: Stores) -> dict[str, str]:
    """The same configs for Kafka and odradek (Kafka's names)."""
    return {
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(stores.keystore),
        "ssl.keystore.password": STORE_PASSWORD,
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
    }


def client_config(listener: str, stores: Stores) -> dict[str, str]:
    """librdkafka settings for `listener` (RDKAFKA_CLIENT_CONFIG of bench/rdkafka_client.py)."""
    if listener == "PLAINTEXT":
        return {}
    config = {"security.protocol": listener, "ssl.ca.location": str(stores.ca_pem)}
    if listener == "SASL_SSL":
        config.update({"sasl.mechanism": "PLAIN", "sasl.username": USER, "sasl.password": PASSWORD})
    return config


def negotiated(address: str, stores: Stores) -> str:
    """The TLS version and cipher the broker picks for an OpenSSL client (Python's, not librdkafka's
    own build, whose defaults are OpenSSL's too): shown with the table, because the cipher decides
    much of the cost of TLS."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(stores.ca_pem))
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return f"{tls.version()} {tls.cipher()[0]}"


def table(results: dict[str, dict], count: int, size: int, parts: int) -> str:
    """Rows: listener x (produce, consume). MB/s for each broker (the median run, ± half the runs'
    range), odradek against Kafka, and each broker against its own PLAINTEXT row (what TLS costs it);
    broker CPU per GB moved (the median over the runs)."""
    names = ("kafka", "odradek")

    def get(name, listener, op):
        r = results.get(name, {}).get(("security", listener, op))
        return r if r and "mb_per_s" in r else None

    def mbs(name, listener, op):
        r = results.get(name, {}).get(("security", listener, op))
        if r is None:
            return "—"
        if "mb_per_s" not in r:
            return "failed"
        pct = r.get("spread_pct")
        return f"{r['mb_per_s']:,.0f} MB/s" + (f" ±{pct:.0f}%" if pct is not None and pct >= 10 else
                                               f" ±{pct:.1f}%" if pct is not None else "")

    def div(a, b):
        return f"{a / b:.2f}" if a is not None and b else "—"

    def cpu(name, listener, op):
        r = get(name, listener, op)
        if r is None or "cpu_s_per_gb" not in r:
            return "—"
        return f"{r['cpu_s_per_gb']:.1f} s"

    out = [f"| at least {count:,} records of {size} B, {parts} partitions, librdkafka | Apache Kafka | odradek | odradek/Kafka"
           " | Kafka vs its PLAINTEXT | odradek vs its PLAINTEXT | broker CPU per GB, Kafka / odradek |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for listener in LISTENERS:
        for op, label in (("produce", "produce, acks=1"), ("consume", "consume, assign()")):
            k, o = get("kafka", listener, op), get("odradek", listener, op)
            vk, vo = (k or {}).get("mb_per_s"), (o or {}).get("mb_per_s")
            own = [div((get(n, listener, op) or {}).get("mb_per_s"), (get(n, "PLAINTEXT", op) or {}).get("mb_per_s"))
                   for n in names]
            out.append(f"| {listener}, {label} | {mbs('kafka', listener, op)} | {mbs('odradek', listener, op)} | "
                       f"{div(vo, vk)} | {own[0]} | {own[1]} | {cpu('kafka', listener, op)} / "
                       f"{cpu('odradek', listener, op)} |")
    return "\n".join(out)
