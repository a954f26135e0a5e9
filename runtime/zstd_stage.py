"""The Zstandard stage of the ``packed-zstd`` and ``sparse-zstd`` codecs: bytes in one bounded Zstandard frame.

A frame (RFC 8878) holds the bytes Huffman-coded, four streams per block, which zstd decodes several times faster
than zlib decodes a DEFLATE stream of the same Huffman code. The writer asks for the strongest parsing (level 19)
with the longest minimum match (7 bytes), so that noise-like weight bytes stay literals instead of paying for short
matches that do not save bits.

No bytes are coded as no bytes (not an empty frame). Reading is bounded like the zlib streams: the frame header must
declare exactly the expected content size (the output buffer is that size and decoding cannot write past it), the
data must be exactly one frame with nothing after it, and no dictionary may be named. Decompression contexts are per
thread (they are not thread-safe); the library releases the GIL while it decodes.
"""

from __future__ import annotations

import threading

import zstandard

from .levels import CodecError, Coded

__all__ = ["decode", "encode"]

_PARAMS = zstandard.ZstdCompressionParameters.from_level(19, min_match=7, write_content_size=True)
_local = threading.local()


def encode(data: bytes) -> bytes:
    """One frame, or no bytes at all for no bytes (zstd skips validating a frame that declares 0 bytes)."""
    return zstandard.ZstdCompressor(compression_params=_PARAMS).compress(data) if data else b""


def decode(data: Coded, size: int, codec: str) -> bytes:
    """Exactly ``size`` bytes from one Zstandard frame that declares them, or :class:`CodecError`."""
    if size == 0 or not data:
        if size or len(data):
            raise CodecError(f"{codec} codec: {len(data)} bytes for {size} bytes")
        return b""
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as e:
        raise CodecError(f"{codec} codec: not a Zstandard frame ({e})") from None
    if params.content_size != size or params.dict_id:
        raise CodecError(f"{codec} codec: the frame declares {params.content_size} bytes, expected {size}")
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    try:
        out = dctx.decompress(data, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as e:
        raise CodecError(f"{codec} codec: corrupt stream ({e})") from None
    if len(out) != size:
        raise CodecError(f"{codec} codec: stream does not hold exactly {size} bytes")
    return out
