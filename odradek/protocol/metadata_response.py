"""A Metadata response (v0-v12) encoded with each topic's entry taken from a cache of its bytes.

A Metadata of every topic is the broker's largest answer after Fetch, and while the metadata image
stands, every client gets the same topic entries: the handler keeps the built entries of the
current image (handlers/metadata.py), and here each built entry is encoded once. The top-level
fields are written here for every version; brokers and topic entries are encoded by kio. The bytes
are those kio writes for the whole response (a unit test checks every version).
"""

from __future__ import annotations

import struct

from odradek.protocol.frames import array_length, unsigned_varint
from odradek.protocol.schemas import encoded

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_EMPTY_TAGS = b"\x00"
_MAX_CACHED = 20_000  # a backstop: the handler forgets them at each new image


class EncodedEntries:
    """Bytes of entity objects, by identity (the object is kept so its id is not reused)."""

    def __init__(self) -> None:
        self._bytes: dict[int, tuple[object, bytes]] = {}

    def of(self, entity) -> bytes:
        cached = self._bytes.get(id(entity))
        if cached is not None and cached[0] is entity:
            return cached[1]
        if len(self._bytes) >= _MAX_CACHED:
            self._bytes.clear()
        data = encoded(entity)
        self._bytes[id(entity)] = (entity, data)
        return data

    def forget(self) -> None:
        self._bytes.clear()


_ENTRIES = EncodedEntries()


def forget_encoded_entries() -> None:
    """The metadata image changed: its old entries are not asked for again (the handler calls this)."""
    _ENTRIES.forget()


def _nullable_string(text: str | None, flexible: bool) -> bytes:
    if text is None:
        return b"\x00" if flexible else _INT16.pack(-1)
    data = text.encode()
    return (unsigned_varint(len(data) + 1) if flexible else _INT16.pack(len(data))) + data


def metadata_response_body(response, version: int) -> bytes:
    """The response body (without header), byte for byte what kio writes."""
    flexible = version >= 9
    parts = []
    if version >= 3:
        parts.append(_INT32.pack(round(response.throttle_time.total_seconds() * 1000)))
    parts.append(array_length(len(response.brokers), flexible))
    parts.extend(encoded(broker) for broker in response.brokers)
    if version >= 2:
        parts.append(_nullable_string(response.cluster_id, flexible))
    if version >= 1:
        parts.append(_INT32.pack(response.controller_id))
    parts.append(array_length(len(response.topics), flexible))
    parts.extend(_ENTRIES.of(topic) for topic in response.topics)
    if 8 <= version <= 10:
        parts.append(_INT32.pack(response.cluster_authorized_operations))
    if flexible:
        parts.append(_EMPTY_TAGS)
    return b"".join(parts)
