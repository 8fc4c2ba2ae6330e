"""Record-batch compression codecs, by Kafka's codec id (attributes & 0x07).

Owns byte-in/byte-out compression only; it knows nothing about batches or records.
Snappy: Java and librdkafka producers send xerial-framed snappy (magic b"\\x82SNAPPY\\x00",
two int32 versions, then int32-length-prefixed raw snappy blocks); a few clients send raw
snappy. Both are accepted; we always write xerial framing, which every client reads.
LZ4 is the lz4 frame format (KIP-57), with independent blocks as Kafka's Java client needs them. All codecs are cramjam's.
"""

from __future__ import annotations

import struct
import threading

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
            return _lz4_decompress(data)
        if codec == ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except cramjam.DecompressionError as exc:
        raise KafkaError(ErrorCode.corrupt_message, f"{CODEC_NAMES[codec]} data does not decode: {exc}") from exc
    raise KafkaError(ErrorCode.unsupported_compression_type, f"compression codec {codec} is not one of 0..4")


# Per thread (the event loop, the cleaner's worker): the buffer LZ4 decompresses into, grown to the
# largest batch seen, up to 8 MiB (a larger one is decompressed the allocating way). cramjam's
# allocating lz4.decompress takes about twice as long as decompress_into a ready buffer plus the
# copy out (47 against 23 us for a 27 KB batch).
_scratch = threading.local()
_SCRATCH_MAX_BYTES = 8 << 20


def _lz4_decompress(data) -> bytes:
    wanted = max(1 << 16, 4 * len(data))
    if wanted > _SCRATCH_MAX_BYTES:
        return bytes(cramjam.lz4.decompress(bytes(data)))
    out = getattr(_scratch, "lz4", None)
    if out is None or len(out) < wanted:
        out = _scratch.lz4 = bytearray(wanted)
    try:
        size = cramjam.lz4.decompress_into(data, out)
    except cramjam.DecompressionError:
        # too small a buffer or corrupt data (cramjam says the same for both): the allocating
        # call tells them apart, and the buffer grows for the next batch as large
        result = bytes(cramjam.lz4.decompress(bytes(data)))
        if len(out) < len(result) <= _SCRATCH_MAX_BYTES:
            _scratch.lz4 = bytearray(len(result))
        return result
    with memoryview(out) as view:
        return bytes(view[:size])


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
