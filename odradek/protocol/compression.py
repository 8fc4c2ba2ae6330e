"""Record-batch compression codecs, by Kafka's codec id (attributes & 0x07).

Owns byte-in/byte-out compression only; it knows nothing about batches or records.
Snappy: Java and librdkafka producers send xerial-framed snappy (magic b"\\x82SNAPPY\\x00",
two int32 versions, then int32-length-prefixed raw snappy blocks); a few clients send raw
snappy. Both are accepted; we always write xerial framing, which every client reads.
LZ4 is the lz4 frame format (KIP-57), with independent blocks as Kafka's Java client needs them. All codecs are cramjam's.
"""

from __future__ import annotations

import struct

import cramjam

from odradek.protocol.errors import ErrorCode, KafkaError

NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4
CODECS = (NONE, GZIP, SNAPPY, LZ4, ZSTD)
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_XERIAL_BLOCK = 32 * 1024
_INT32 = struct.Struct(">i")


def decompress(codec: int, data) -> bytes:
    """The uncompressed bytes of `data`; CORRUPT_MESSAGE if they do not decode."""
    try:
        if codec == NONE:
            return bytes(data)
        if codec == GZIP:
            return bytes(cramjam.gzip.decompress(bytes(data)))
        if codec == SNAPPY:
            return _snappy_decompress(bytes(data))
        if codec == LZ4:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        if codec == ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except cramjam.DecompressionError as exc:
        raise KafkaError(ErrorCode.corrupt_message, f"{CODEC_NAMES[codec]} data does not decode: {exc}") from exc
    raise KafkaError(ErrorCode.unsupported_compression_type, f"compression codec {codec} is not one of 0..4")


def compress(codec: int, data) -> bytes:
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        return bytes(cramjam.gzip.compress(bytes(data)))
    if codec == SNAPPY:
        return _snappy_compress_xerial(bytes(data))
    if codec == LZ4:
        # independent blocks and no content checksum, as Kafka's writer makes them: the Java
        # client refuses linked blocks, cramjam's default ("Dependent block stream is unsupported")
        compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
        compressor.compress(bytes(data))
        return bytes(compressor.finish())
    if codec == ZSTD:
        return bytes(cramjam.zstd.compress(bytes(data)))
    raise KafkaError(ErrorCode.unsupported_compression_type, f"compression codec {codec} is not one of 0..4")


def _snappy_decompress(data: bytes) -> bytes:
    if not data.startswith(XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    out = bytearray()
    position = _XERIAL_HEADER.size
    end = len(data)
    while position < end:
        if end - position < 4:
            raise KafkaError(ErrorCode.corrupt_message, f"xerial snappy block length cut short at byte {position}")
        (length,) = _INT32.unpack_from(data, position)
        position += 4
        if length < 0 or position + length > end:
            raise KafkaError(
                ErrorCode.corrupt_message,
                f"xerial snappy block of {length} bytes at byte {position} exceeds the {end}-byte input",
            )
        out += cramjam.snappy.decompress_raw(data[position : position + length])
        position += length
    return bytes(out)


def _snappy_compress_xerial(data: bytes) -> bytes:
    out = bytearray(_XERIAL_HEADER.pack(XERIAL_MAGIC, 1, 1))
    for start in range(0, max(len(data), 1), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
        out += _INT32.pack(len(block))
        out += block
    return bytes(out)
