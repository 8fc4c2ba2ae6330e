"""The SASL mechanisms a listener offers, built from its configs (Kafka's names and rules).

`sasl.enabled.mechanisms` (per listener: listener.name.<l>.sasl.enabled.mechanisms) names them.
OAUTHBEARER checks signed JWTs against the configured JWKS (oauthbearer.py). PLAIN checks the
`user_<name>` accounts of the listener's PlainLoginModule
(listener.name.<l>.plain.sasl.jaas.config, else sasl.jaas.config); SCRAM-SHA-256/512 check the
credentials stored for the user (AlterUserScramCredentials, kafka-configs --alter --add-config
'SCRAM-SHA-512=[...]'), or a delegation token's. A mechanism odradek does not serve is a
ConfigError at start-up, not a listener that refuses everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from odradek.config import ConfigError, Password
from odradek.security.jaas import PLAIN_LOGIN_MODULE, parse_jaas
from odradek.security.oauthbearer import OAuthBearerServer, validator_for
from odradek.security.sasl import SaslServer
from odradek.security.sasl_plain import PlainServer
from odradek.security.scram import MECHANISMS as SCRAM_MECHANISMS
from odradek.security.scram import ScramCredential, ScramServer

log = logging.getLogger(__name__)

SERVED = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


def listener_mechanisms(config, listener: str, stored_credential: Callable[[str, str], str | None],
                        token_login: Callable[[str, str], tuple[str, ScramCredential, int] | None] | None = None,
                        ) -> dict[str, Callable[[], SaslServer]]:
    """Mechanism name -> a factory of its server side, for one SASL listener. `token_login`
    (token id, mechanism) -> (owner, credential, expiry ms) lets SCRAM logins use delegation tokens."""
    enabled = [str(m).strip().upper() for m in config.for_listener(listener, "sasl.enabled.mechanisms") if str(m).strip()]
    if not enabled:
        raise ConfigError(f"listener {listener} is a SASL listener but sasl.enabled.mechanisms is empty")
    factories: dict[str, Callable[[], SaslServer]] = {}
    for mechanism in enabled:
        if mechanism == "PLAIN":
            users = _plain_users(config, listener)
            factories[mechanism] = lambda users=users: PlainServer(users)
        elif mechanism in SCRAM_MECHANISMS:
            factories[mechanism] = _scram_factory(mechanism, stored_credential, token_login)
        elif mechanism == "OAUTHBEARER":
            validator = validator_for(config, listener)
            factories[mechanism] = lambda validator=validator: OAuthBearerServer(validator)
        elif mechanism == "GSSAPI":
            raise ConfigError(
                f"sasl.enabled.mechanisms of listener {listener} includes GSSAPI (Kerberos, Kafka's default), which "
                f"odradek does not serve: set it to some of {', '.join(SERVED)}")
        else:
            raise ConfigError(f"sasl.enabled.mechanisms of listener {listener}: {mechanism} is not served; "
                              f"use some of {', '.join(SERVED)}")
    return factories


def plain_accounts(config) -> dict[str, str]:
    """The PLAIN accounts of every SASL listener that enables PLAIN (HTTP Basic logins accept them)."""
    accounts: dict[str, str] = {}
    for listener in config.listeners:
        if not config.security_protocol_of(listener.name).startswith("SASL_"):
            continue
        enabled = [str(m).strip().upper() for m in config.for_listener(listener.name, "sasl.enabled.mechanisms")]
        if "PLAIN" in enabled:
            accounts.update(_plain_users(config, listener.name))
    return accounts


def _plain_users(config, listener: str) -> dict[str, str]:
    value = config.for_listener(listener, "sasl.jaas.config", "PLAIN")
    prefix = f"listener.name.{listener.lower()}.plain.sasl.jaas.config"
    if value is None:
        raise ConfigError(f"listener {listener} enables PLAIN but has no {prefix} (a PlainLoginModule with "
                          "user_<name>=\"<password>\" accounts)")
    entry = parse_jaas(value.value if isinstance(value, Password) else str(value), prefix)
    if entry.login_module != PLAIN_LOGIN_MODULE:
        raise ConfigError(f"{prefix} must use {PLAIN_LOGIN_MODULE}, not {entry.login_module}")
    users = entry.users()
    if not users:
        log.warning("Listener %s enables PLAIN with no user_<name> accounts: every PLAIN login will fail", listener)
    return users


def _scram_factory(mechanism: str, stored_credential: Callable[[str, str], str | None], token_login=None):
    def credential_of(user: str) -> ScramCredential | None:
        stored = stored_credential(user, mechanism)
        if stored is None:
            return None
        try:
            return ScramCredential.from_kafka(stored)
        except ValueError:
            log.warning("The stored %s credential of a user is unreadable; its logins fail", mechanism)
            return None

    return lambda: ScramServer(mechanism, credential_of, token_login)
