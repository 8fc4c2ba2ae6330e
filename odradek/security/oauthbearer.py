"""SASL/OAUTHBEARER (RFC 7628, KIP-255/KIP-768) on the broker: signed JWTs checked against a JWKS.

The client sends `n,,<SOH>auth=Bearer <JWT><SOH><SOH>`. The token is accepted when, as Kafka's
OAuthBearerValidatorCallbackHandler checks: its signature verifies with a key of the configured
JWKS (`sasl.oauthbearer.jwks.endpoint.url`: a file: URL or an http(s) URL; RS256/384/512 and
ES256/384/512, never `none` or a shared secret), it has not expired and is already valid (with
`sasl.oauthbearer.clock.skew.seconds`), its issuer and audience are the expected ones when
configured, and it names a subject (`sasl.oauthbearer.sub.claim.name`), which becomes the principal
`User:<subject>`. A refused token is answered, as Kafka does, with an error challenge
(`{"status":"invalid_token"}`); the client's acknowledgement then ends the exchange with
SASL_AUTHENTICATION_FAILED. The JWKS is read at start-up and again, at most once a minute, when a
token names a key it does not hold.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from odradek.config import ConfigError
from odradek.security.sasl import SaslAuthenticationFailed

log = logging.getLogger(__name__)

CONTROL_A = b"\x01"
_ALGORITHMS = {"RS256": "SHA256", "RS384": "SHA384", "RS512": "SHA512",
               "ES256": "SHA256", "ES384": "SHA384", "ES512": "SHA512"}
_CURVES = {"P-256": "SECP256R1", "P-384": "SECP384R1", "P-521": "SECP521R1"}
REFRESH_AFTER_UNKNOWN_KID_S = 60.0


class TokenRejected(Exception):
    """Why a token is not accepted (said to the client in the failure, never the token)."""


def _b64url(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def _public_key(jwk: dict):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if jwk.get("kty") == "RSA":
        return rsa.RSAPublicNumbers(int.from_bytes(_b64url(jwk["e"]), "big"),
                                    int.from_bytes(_b64url(jwk["n"]), "big")).public_key()
    if jwk.get("kty") == "EC" and jwk.get("crv") in _CURVES:
        curve = getattr(ec, _CURVES[jwk["crv"]])()
        return ec.EllipticCurvePublicNumbers(int.from_bytes(_b64url(jwk["x"]), "big"),
                                             int.from_bytes(_b64url(jwk["y"]), "big"), curve).public_key()
    raise ValueError(f"unsupported key type {jwk.get('kty')!r}")


def read_jwks(url: str) -> dict[str | None, object]:
    """kid -> public key of a JWKS document at `url` (file: or http(s):); ValueError if unusable."""
    parsed = urllib.parse.urlparse(url)
    try:
        if parsed.scheme == "file":
            with open(urllib.parse.unquote(parsed.path), "rb") as file:
                data = file.read()
        elif parsed.scheme in ("http", "https"):
            from urllib.request import urlopen  # here: it costs every start-up 15 ms, and few brokers fetch a JWKS

            with urlopen(url, timeout=10) as answer:  # noqa: S310 - an operator-configured URL
                data = answer.read(1 << 20)
        else:
            raise ValueError("expected a file:, http: or https: URL")
        document = json.loads(data)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the JWKS at {url}: {error}") from None
    keys: dict[str | None, object] = {}
    for jwk in document.get("keys", []):
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[jwk.get("kid")] = _public_key(jwk)
        except (KeyError, ValueError) as error:
            log.warning("Skipping a key of the JWKS at %s: %s", url, error)
    if not keys:
        raise ValueError(f"the JWKS at {url} holds no usable signing key")
    return keys


@dataclass(frozen=True)
class ValidatorSettings:
    jwks_url: str
    expected_issuer: str | None = None
    expected_audiences: tuple[str, ...] = ()
    subject_claim: str = "sub"
    clock_skew_s: int = 30


class JwtValidator:
    def __init__(self, settings: ValidatorSettings, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._now = now
        self._keys = read_jwks(settings.jwks_url)
        self._refreshed_at = time.monotonic()
        self._refreshing = threading.Lock()

    def _key(self, kid: str | None):
        key = self._keys.get(kid) if kid is not None else (next(iter(self._keys.values())) if len(self._keys) == 1 else None)
        if key is None and time.monotonic() - self._refreshed_at > REFRESH_AFTER_UNKNOWN_KID_S:
            self._refresh_in_background()
        return key

    def _refresh_in_background(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return
        self._refreshed_at = time.monotonic()

        def refresh() -> None:
            try:
                self._keys = read_jwks(self.settings.jwks_url)
            except ValueError as error:
                log.warning("%s; keeping the keys read before", error)
            finally:
                self._refreshing.release()

        threading.Thread(target=refresh, name="odradek-jwks-refresh", daemon=True).start()

    def validate(self, token: str) -> str:
        """The subject of a valid token; TokenRejected otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("the token is not a signed JWT (header.payload.signature)")
        try:
            header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, UnicodeDecodeError):
            raise TokenRejected("the token's header or payload is not base64url JSON") from None
        algorithm = header.get("alg")
        if algorithm not in _ALGORITHMS:
            raise TokenRejected(f"the token's algorithm {algorithm!r} is not accepted (RS256..ES512 only)")
        key = self._key(header.get("kid"))
        if key is None:
            raise TokenRejected(f"no key with id {header.get('kid')!r} in the JWKS")
        digest = getattr(hashes, _ALGORITHMS[algorithm])()
        signed = f"{parts[0]}.{parts[1]}".encode()
        try:
            if algorithm.startswith("RS"):
                key.verify(signature, signed, padding.PKCS1v15(), digest)
            else:
                half = len(signature) // 2
                der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                                 int.from_bytes(signature[half:], "big"))
                key.verify(der, signed, ec.ECDSA(digest))
        except (InvalidSignature, TypeError, ValueError):
            raise TokenRejected("the token's signature does not verify with the JWKS key") from None
        now, skew = self._now(), self.settings.clock_skew_s
        expires = claims.get("exp")
        if not isinstance(expires, (int, float)):
            raise TokenRejected("the token has no expiry (exp)")
        if expires + skew < now:
            raise TokenRejected("the token has expired")
        for claim in ("nbf", "iat"):
            value = claims.get(claim)
            if isinstance(value, (int, float)) and value - skew > now:
                raise TokenRejected(f"the token is not valid yet ({claim} is in the future)")
        if self.settings.expected_issuer is not None and claims.get("iss") != self.settings.expected_issuer:
            raise TokenRejected("the token's issuer is not the expected one")
        if self.settings.expected_audiences:
            audience = claims.get("aud")
            audiences = set(audience if isinstance(audience, list) else [audience])
            if not audiences & set(self.settings.expected_audiences):
                raise TokenRejected("the token's audience is not an expected one")
        subject = claims.get(self.settings.subject_claim)
        if not isinstance(subject, str) or not subject.strip():
            raise TokenRejected(f"the token has no {self.settings.subject_claim} claim")
        return subject


class OAuthBearerServer:
    def __init__(self, validator: JwtValidator) -> None:
        self._validator = validator
        self.complete = False
        self.principal: str | None = None
        self._rejected: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self._rejected is not None:
            if token == CONTROL_A:
                raise SaslAuthenticationFailed(f"Authentication failed: {self._rejected}")
            raise SaslAuthenticationFailed("Authentication failed: unexpected message after an error challenge")
        if self.complete:
            raise SaslAuthenticationFailed("Authentication failed: the OAUTHBEARER exchange is already complete")
        bearer = _bearer(token)
        try:
            subject = self._validator.validate(bearer)
        except TokenRejected as reason:
            self._rejected = str(reason)
            return json.dumps({"status": "invalid_token"}).encode()
        self.complete = True
        self.principal = f"User:{subject}"
        return b""


def _bearer(message: bytes) -> str:
    """The token of an OAUTHBEARER client message; SaslAuthenticationFailed if malformed."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslAuthenticationFailed("Authentication failed: invalid OAUTHBEARER message (not UTF-8)") from None
    gs2, separator, rest = text.partition("\x01")
    if not separator or not gs2.startswith(("n,", "y,")):
        raise SaslAuthenticationFailed("Authentication failed: invalid OAUTHBEARER client message")
    for pair in rest.split("\x01"):
        key, _, value = pair.partition("=")
        if key == "auth" and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    raise SaslAuthenticationFailed("Authentication failed: the OAUTHBEARER message carries no Bearer token")


def validator_for(config, listener: str) -> JwtValidator:
    """The JWT validator of a listener's OAUTHBEARER; ConfigError when it cannot be built."""
    value = lambda name: config.for_listener(listener, name, "OAUTHBEARER")  # noqa: E731
    url = value("sasl.oauthbearer.jwks.endpoint.url")
    if not url:
        raise ConfigError(f"listener {listener} enables OAUTHBEARER but sasl.oauthbearer.jwks.endpoint.url is not set "
                          "(odradek accepts only signed tokens, checked against that JWKS)")
    audiences: Iterable[str] = value("sasl.oauthbearer.expected.audience") or ()
    settings = ValidatorSettings(str(url), value("sasl.oauthbearer.expected.issuer") or None,
                                 tuple(a for a in audiences if a), str(value("sasl.oauthbearer.sub.claim.name")),
                                 int(value("sasl.oauthbearer.clock.skew.seconds")))
    try:
        return JwtValidator(settings)
    except ValueError as error:
        raise ConfigError(str(error)) from None
