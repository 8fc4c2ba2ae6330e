"""What the transactional handlers share: the error older clients expect for a fenced producer."""

from __future__ import annotations

from odradek.protocol.errors import ErrorCode


def fenced_for_version(code: ErrorCode, version: int, first_version_with_fenced: int) -> ErrorCode:
    """PRODUCER_FENCED arrived with KIP-588; clients of older request versions know the same
    condition as INVALID_PRODUCER_EPOCH (Kafka maps it the same way)."""
    if code == ErrorCode.producer_fenced and version < first_version_with_fenced:
        return ErrorCode.invalid_producer_epoch
    return code
