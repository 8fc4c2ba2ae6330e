"""The exceptions the client raises: Kafka's error codes, and the ones that have none.

`KafkaError` (from odradek.protocol.errors) carries a Kafka `ErrorCode` and a message, for any
error a broker answered. The classes here cover what happens before or around an answer.
"""

from __future__ import annotations

from odradek.protocol.errors import ErrorCode, KafkaError

__all__ = ["BrokerUnreachableError", "ClientError", "ErrorCode", "KafkaError", "check_error"]


class ClientError(Exception):
    """A failure with no Kafka error code: a lost connection, an answer that does not decode."""


class AuthenticationError(ClientError):
    """The broker refused this client's credentials or TLS identity (not retried)."""


class BrokerUnreachableError(ClientError):
    """No broker could be reached (connected to and asked ApiVersions) within the timeout."""


def check_error(error_code, message: str | None = None, what: str = "") -> None:
    """Raise KafkaError unless `error_code` is NONE; `what` names the subject (a topic, a group)."""
    code = ErrorCode(int(error_code))
    if code == ErrorCode.none:
        return
    text = message or code.name.upper()
    if what:
        text = f"{what}: {text}"
    raise KafkaError(code, text)
