"""Kafka's `sasl.jaas.config` values: `<LoginModule class> <flag> key="value" ...;`.

Only what a broker reads from it is kept: the login module's class and its options (for PLAIN,
`user_<name>="<password>"` are the accounts and `username`/`password` what this broker presents to
others). A malformed value is a ConfigError naming the config, never the secret in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from odradek.config import ConfigError

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"

_HEAD = re.compile(r"\s*([A-Za-z_$][\w$.]*)\s+(required|requisite|sufficient|optional)\b", re.I)
_OPTION = re.compile(r'\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)')


@dataclass(frozen=True)
class JaasEntry:
    login_module: str
    options: dict[str, str] = field(default_factory=dict)

    def users(self) -> dict[str, str]:
        """PLAIN accounts: the `user_<name>` options."""
        return {key[5:]: value for key, value in self.options.items() if key.startswith("user_")}


def parse_jaas(text: str, config_name: str = "sasl.jaas.config") -> JaasEntry:
    """The first login module of a JAAS configuration value (Kafka allows exactly one)."""
    match = _HEAD.match(text)
    if match is None:
        raise ConfigError(f"invalid value for config '{config_name}': expected "
                          "'<LoginModule class> required key=\"value\" ...;'")
    options: dict[str, str] = {}
    position = match.end()
    while True:
        option = _OPTION.match(text, position)
        if option is None:
            break
        key, value = option.group(1), option.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        options[key] = value
        position = option.end()
    rest = text[position:].strip()
    if rest != ";":
        raise ConfigError(f"invalid value for config '{config_name}': expected key=\"value\" options ending "
                          f"with ';' after the login module {match.group(1)}")
    return JaasEntry(match.group(1), options)
