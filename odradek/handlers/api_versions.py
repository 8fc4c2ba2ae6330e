"""ApiVersions (key 18), v0-v4.

The answer is derived from the handler registry: every API we implement with its version range,
nothing else. A request above v4 gets the v0-layout answer with UNSUPPORTED_VERSION and our list,
so the client retries with a version we serve; its header is v0 even for flexible versions.
v3+ also lists the features (KIP-584): `transaction.version` 2 is finalized, as on a new Kafka
4 cluster, so clients that know it (the Java client 4.x, franz-go) use transaction version 2.
"""

from __future__ import annotations

import io
from datetime import timedelta

from kio.schema.api_versions.v0.response import ApiVersion as ApiVersionV0
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.serial import entity_writer
from kio.static.primitive import i16, i64

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 18
MIN_VERSION = 0
MAX_VERSION = 4

# feature -> (lowest supported, highest supported, finalized level)
FEATURES = {"transaction.version": (0, 2, 2)}
FINALIZED_FEATURES_EPOCH = 1


def _supported() -> list[tuple[int, int, int]]:
    from odradek.handlers.registry import HANDLERS  # the registry imports this module

    return sorted((h.api_key, h.min_version, h.max_version) for h in HANDLERS.values())


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    api_version = sibling(response, "ApiVersion")
    keys = tuple(
        api_version(api_key=i16(key), min_version=i16(low), max_version=i16(high))
        for key, low, high in _supported()
    )
    supported = sibling(response, "SupportedFeatureKey")
    finalized = sibling(response, "FinalizedFeatureKey")
    features = {}
    if supported is not None:
        features = dict(
            supported_features=tuple(
                supported(name=name, min_version=i16(low), max_version=i16(high)) for name, (low, high, _) in FEATURES.items()
            ),
            finalized_features_epoch=i64(FINALIZED_FEATURES_EPOCH),
            finalized_features=tuple(
                finalized(name=name, min_version_level=i16(level), max_version_level=i16(level))
                for name, (_, _, level) in FEATURES.items()
            ),
        )
    return build(response, error_code=ErrorCode.none, api_keys=keys, throttle_time=timedelta(0), **features)


def unsupported_version_body() -> bytes:
    """The v0-layout body sent for an ApiVersions request of a version we do not know."""
    keys = tuple(
        ApiVersionV0(api_key=i16(key), min_version=i16(low), max_version=i16(high))
        for key, low, high in _supported()
    )
    buffer = io.BytesIO()
    entity_writer(ApiVersionsResponseV0)(
        buffer, ApiVersionsResponseV0(error_code=ErrorCode.unsupported_version, api_keys=keys)
    )
    return buffer.getvalue()
