"""How odradek's own client reaches a secured listener: the CLI (from Kafka's client properties in
`--command-config`) and brokers talking to each other (from the broker's inter-broker settings).

Kafka's client property names: security.protocol, sasl.mechanism, sasl.jaas.config (username and
password of a PlainLoginModule or ScramLoginModule), ssl.truststore.* / ssl.keystore.* (PEM or
PKCS12), ssl.key.password, ssl.endpoint.identification.algorithm (https checks the broker's host
name; empty does not). A setting odradek cannot honour is a ConfigError, one line, never a silent
plaintext connection.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from odradek.config import SECURITY_PROTOCOLS, ConfigError
from odradek.security.jaas import parse_jaas
from odradek.security.scram import MECHANISMS as SCRAM_MECHANISMS
from odradek.security.tls import client_context, secret_text, stores

CLIENT_SECURITY_PROPERTIES = frozenset({
    "security.protocol", "sasl.mechanism", "sasl.jaas.config",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.certificates",
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.endpoint.identification.algorithm",
    "ssl.enabled.protocols", "ssl.protocol",
})
CLIENT_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)


@dataclass(frozen=True)
class ClientSecurity:
    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: bool = False  # SCRAM with a delegation token (tokenauth="true" in the JAAS config)

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")


PLAINTEXT = ClientSecurity()


def client_security(protocol: str, get, *, mechanism: str | None, jaas: str | None, jaas_name: str) -> ClientSecurity:
    """Build from a protocol and a getter of ssl.* settings (client properties or broker config)."""
    protocol = protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"invalid value '{protocol}' for security.protocol: expected one of {', '.join(SECURITY_PROTOCOLS)}")
    context = None
    if protocol.endswith("SSL"):
        keystore, truststore = stores(get)
        identification = get("ssl.endpoint.identification.algorithm")
        enabled = get("ssl.enabled.protocols")
        if isinstance(enabled, str):
            enabled = [p.strip() for p in enabled.split(",") if p.strip()]
        context = client_context(truststore=truststore, keystore=keystore,
                                 check_hostname=(identification if identification is not None else "https") != "",
                                 enabled_protocols=enabled or None)
    if not protocol.startswith("SASL"):
        return ClientSecurity(protocol, context)
    mechanism = (mechanism or "GSSAPI").upper()
    if mechanism not in CLIENT_MECHANISMS:
        raise ConfigError(f"sasl.mechanism={mechanism} is not one odradek's client speaks ({', '.join(CLIENT_MECHANISMS)})")
    if not jaas:
        raise ConfigError(f"{jaas_name} is needed for SASL: a PlainLoginModule or ScramLoginModule with username and password")
    options = parse_jaas(jaas, jaas_name).options
    if "username" not in options or "password" not in options:
        raise ConfigError(f"{jaas_name} must set username=\"...\" and password=\"...\"")
    token = str(options.get("tokenauth", "")).lower() == "true"
    return ClientSecurity(protocol, context, mechanism, options["username"], options["password"], token)


def from_client_properties(properties: Mapping[str, str]) -> ClientSecurity:
    """A client properties file's security settings (Kafka's client config names)."""
    return client_security(properties.get("security.protocol", "PLAINTEXT"), properties.get,
                           mechanism=properties.get("sasl.mechanism"), jaas=properties.get("sasl.jaas.config"),
                           jaas_name="sasl.jaas.config")


def inter_broker_security(config) -> ClientSecurity:
    """How this broker connects to the others: over the inter-broker listener's protocol, with
    sasl.mechanism.inter.broker.protocol and the username/password of that listener's JAAS entry,
    and the broker's own key and trust stores."""
    listener = config.inter_broker_listener_name
    protocol = config.security_protocol_of(listener)
    mechanism = str(config["sasl.mechanism.inter.broker.protocol"])
    jaas = secret_text(config.for_listener(listener, "sasl.jaas.config", mechanism)) if protocol.startswith("SASL") else None
    return client_security(protocol, lambda name: config.for_listener(listener, name), mechanism=mechanism, jaas=jaas,
                           jaas_name=f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config")
