"""TLS for SSL and SASL_SSL listeners: key and trust stores in Kafka's formats, the server's and a
client's SSLContext, and the principal a client certificate maps to.

Stores are read as Kafka reads them: PEM (files, or inline in `ssl.keystore.certificate.chain` /
`ssl.keystore.key` / `ssl.truststore.certificates`) and PKCS12. A JKS-typed store that is really
PKCS12 (what keytool writes since Java 9) is read; a true JKS file is refused with the command that
converts it. A client certificate's subject becomes `User:<name>` through
`ssl.principal.mapping.rules` (Kafka's rule language); without one the principal is ANONYMOUS.
Secrets never appear in errors.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from odradek.config import ConfigError, Password

ANONYMOUS = "User:ANONYMOUS"
_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def secret_text(value: object) -> str | None:
    """A config value as text, the secret itself for a Password."""
    if value is None:
        return None
    return value.value if isinstance(value, Password) else str(value)


@dataclass(frozen=True)
class StoreSettings:
    """One key store or trust store as configured (`kind` is "keystore" or "truststore")."""

    kind: str
    type: str
    location: str | None
    password: str | None
    key_password: str | None = None
    inline_certificates: str | None = None
    inline_key: str | None = None


def _read(location: str, kind: str) -> bytes:
    try:
        return Path(location).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read ssl.{kind}.location '{location}': {error.strerror or error}") from None


def _pkcs12(data: bytes, settings: StoreSettings) -> tuple[bytes, bytes | None]:
    """(certificates in PEM, private key in PEM or None) of a PKCS12 store."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs12

    password = settings.password.encode() if settings.password else None
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise ConfigError(f"cannot open ssl.{settings.kind}.location '{settings.location}' as PKCS12: wrong "
                          f"ssl.{settings.kind}.password, or not a PKCS12 file") from None
    certificates = ([certificate] if certificate is not None else []) + list(extra or [])
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in certificates)
    key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()) if key is not None else None
    return pem, key_pem


def load_store(settings: StoreSettings) -> tuple[bytes, bytes | None]:
    """(certificates, private key) in PEM; ConfigError, one line, when the store cannot be used."""
    store_type = settings.type.upper()
    if settings.inline_certificates:
        key = settings.inline_key.encode() if settings.inline_key else None
        return settings.inline_certificates.encode(), key
    if settings.location is None:
        raise ConfigError(f"ssl.{settings.kind}.location is not set")
    data = _read(settings.location, settings.kind)
    if store_type == "PEM" or data.lstrip().startswith(b"-----BEGIN"):
        key = None
        if b"PRIVATE KEY-----" in data:
            key = b"".join(re.findall(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----\s*",
                                      data, re.S))
        certificates = b"".join(re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\s*", data, re.S))
        return certificates, key
    if data.startswith(_JKS_MAGIC):
        raise ConfigError(
            f"ssl.{settings.kind}.location '{settings.location}' is a JKS store, which odradek cannot read; convert it "
            f"with: keytool -importkeystore -srckeystore {settings.location} -destkeystore "
            f"{Path(settings.location).with_suffix('.p12')} -deststoretype PKCS12, and set ssl.{settings.kind}.type=PKCS12"
        )
    if store_type in ("PKCS12", "JKS"):
        return _pkcs12(data, settings)
    raise ConfigError(f"invalid value '{settings.type}' for config 'ssl.{settings.kind}.type': expected PEM, PKCS12 or JKS")


def _load_chain(context: ssl.SSLContext, certificates: bytes, key: bytes | None, key_password: str | None,
                kind: str) -> None:
    """ssl only loads a chain from files: write it to a private temporary file, load, delete."""
    if not certificates or key is None:
        raise ConfigError(f"the {kind} holds no certificate with its private key")
    with tempfile.TemporaryDirectory(prefix="odradek-tls-") as directory:
        path = os.path.join(directory, "chain.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key + b"\n" + certificates)
        try:
            context.load_cert_chain(path, password=key_password)
        except ssl.SSLError as error:
            raise ConfigError(f"cannot use the {kind}'s certificate and key: {error.reason or 'they do not match'}"
                              " (or ssl.key.password is wrong)") from None


def _protocols(context: ssl.SSLContext, enabled: list[str]) -> None:
    versions = sorted(_TLS_VERSIONS[v] for v in enabled if v in _TLS_VERSIONS)
    if not versions:
        raise ConfigError("ssl.enabled.protocols names no TLS version odradek serves (TLSv1.2, TLSv1.3)")
    context.minimum_version, context.maximum_version = versions[0], versions[-1]


def stores(get) -> tuple[StoreSettings, StoreSettings | None]:
    """The key store and (if configured) trust store named by ssl.* settings, read through `get`
    (a listener's broker configs, or a client's properties; an unset type is Kafka's JKS)."""
    keystore = StoreSettings(
        "keystore", str(get("ssl.keystore.type") or "JKS"), secret_text(get("ssl.keystore.location")),
        secret_text(get("ssl.keystore.password")), secret_text(get("ssl.key.password")),
        secret_text(get("ssl.keystore.certificate.chain")), secret_text(get("ssl.keystore.key")),
    )
    truststore = None
    if get("ssl.truststore.location") or get("ssl.truststore.certificates"):
        truststore = StoreSettings(
            "truststore", str(get("ssl.truststore.type") or "JKS"), secret_text(get("ssl.truststore.location")),
            secret_text(get("ssl.truststore.password")), None, secret_text(get("ssl.truststore.certificates")),
        )
    return keystore, truststore


def server_context(config, listener: str, protocol: str) -> ssl.SSLContext:
    """The SSLContext of an SSL or SASL_SSL listener; ConfigError, one line, when it cannot be made."""
    value = lambda name: config.for_listener(listener, name)  # noqa: E731
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _protocols(context, list(value("ssl.enabled.protocols")))
    if value("ssl.cipher.suites"):
        try:
            context.set_ciphers(":".join(value("ssl.cipher.suites")))
        except ssl.SSLError:
            raise ConfigError("ssl.cipher.suites names no cipher suite this machine's OpenSSL knows") from None
    keystore, truststore = stores(value)
    certificates, key = load_store(keystore)
    _load_chain(context, certificates, key, keystore.key_password, f"key store of listener {listener}")
    client_auth = str(value("ssl.client.auth")).lower()
    if protocol == "SASL_SSL" and "ssl.client.auth" not in config.listener_settings.get(listener.lower(), {}):
        client_auth = "none"  # Kafka: SASL_SSL listeners take ssl.client.auth only from the listener prefix
    if client_auth != "none":
        if truststore is None:
            raise ConfigError(f"ssl.client.auth={client_auth} on listener {listener} needs ssl.truststore.location "
                              "(the authorities whose client certificates are trusted)")
        trusted, _ = load_store(truststore)
        try:
            context.load_verify_locations(cadata=trusted.decode())
        except ssl.SSLError:
            raise ConfigError(f"the trust store of listener {listener} holds no usable certificate") from None
        context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
    return context


STORE_SETTINGS = ("ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
                  "ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.truststore.type",
                  "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.certificates")


def store_fingerprint(config, listener: str) -> tuple:
    """What a listener's key and trust stores are: their settings, and the size and modification
    time of their files, so that a store replaced on disk under the same name counts as changed
    (Kafka re-reads it when the same location is set again)."""
    values = tuple(secret_text(config.for_listener(listener, name)) for name in STORE_SETTINGS)
    files = []
    for name in ("ssl.keystore.location", "ssl.truststore.location"):
        location = secret_text(config.for_listener(listener, name))
        try:
            stat = os.stat(location) if location else None
        except OSError:
            stat = None
        files.append((stat.st_size, stat.st_mtime_ns) if stat is not None else None)
    return values + tuple(files)


def listener_identity(config, listener: str) -> tuple[str, tuple[str, ...]]:
    """The subject and subject alternative names of a listener's certificate (the first of its
    key store's chain); ConfigError when the store cannot be read."""
    from cryptography import x509

    keystore, _ = stores(lambda name: config.for_listener(listener, name))
    certificates, _ = load_store(keystore)
    try:
        certificate = x509.load_pem_x509_certificate(certificates)
    except ValueError:
        raise ConfigError(f"the key store of listener {listener} holds no readable certificate") from None
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alternatives = tuple(sorted(str(getattr(name, "value", name)) for name in names))
    except x509.ExtensionNotFound:
        alternatives = ()
    return certificate.subject.rfc4514_string(), alternatives


def client_context(*, truststore: StoreSettings | None, keystore: StoreSettings | None = None,
                   check_hostname: bool = True, enabled_protocols: list[str] | None = None) -> ssl.SSLContext:
    """An SSLContext for odradek's own client (CLI, broker to broker)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _protocols(context, enabled_protocols or ["TLSv1.2", "TLSv1.3"])
    if truststore is not None:
        trusted, _ = load_store(truststore)
        context.load_verify_locations(cadata=trusted.decode())
    else:
        context.load_default_certs()
    context.check_hostname = check_hostname
    if keystore is not None and (keystore.location or keystore.inline_certificates):
        certificates, key = load_store(keystore)
        _load_chain(context, certificates, key, keystore.key_password, "client key store")
    return context


# -- principals from certificates -----------------------------------------------------------------

_RULE = re.compile(r"\s*(?:(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?))\s*(?:,|$)")


@dataclass(frozen=True)
class MappingRule:
    pattern: re.Pattern | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        match = self.pattern.fullmatch(name)
        if match is None:
            return None
        mapped = re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "", self.replacement)
        return mapped.lower() if self.case == "L" else mapped.upper() if self.case == "U" else mapped


def parse_mapping_rules(text: str) -> list[MappingRule]:
    """ConfigError, one line, for rules Kafka would refuse."""
    rules, position, text = [], 0, text.strip()
    while position < len(text):
        match = _RULE.match(text, position)
        if match is None or match.end() == position:
            raise ConfigError(f"invalid value for config 'ssl.principal.mapping.rules' near '{text[position:position + 30]}': "
                              "expected RULE:pattern/replacement/[LU] or DEFAULT, separated by commas")
        if match.group(1):
            rules.append(MappingRule(None))
        else:
            try:
                pattern = re.compile(match.group(2).replace("\\/", "/"))
            except re.error as error:
                raise ConfigError(f"invalid pattern in ssl.principal.mapping.rules: {error}") from None
            rules.append(MappingRule(pattern, match.group(3).replace("\\/", "/"), match.group(4)))
        position = match.end()
    return rules or [MappingRule(None)]


def distinguished_name(certificate_der: bytes) -> str:
    """The subject as Java's X500Principal.getName() writes it (RFC 2253: most specific first)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(certificate_der).subject.rfc4514_string()


def principal_of(ssl_object: ssl.SSLObject | None, rules: list[MappingRule]) -> str:
    """`User:<mapped subject>` of the client's certificate, ANONYMOUS without one."""
    certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not certificate:
        return ANONYMOUS
    name = distinguished_name(certificate)
    for rule in rules:
        mapped = rule.apply(name)
        if mapped is not None:
            return f"User:{mapped}"
    return f"User:{name}"
