"""Streams assembled field by field, valid or not: what the conformance corpus, the decode-cost benchmark and
the reliability benchmark send to a decoder (docs/bitstream.md gives the fields)."""

from __future__ import annotations

import struct
import zlib


def _leb128(v: int, min_bytes: int = 1) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        more = v or len(out) + 1 < min_bytes
        out.append(b | (0x80 if more else 0))
        if not more:
            return bytes(out)


def raw(flags: int, levels: int, floats: bytes, shape_bytes: bytes, payload: bytes, *,
        magic: int = 0xCF, version: int = 1, crc: int | None = None) -> bytes:
    """A stream assembled field by field (CRC computed unless given)."""
    head = bytes([magic, version, flags, levels - 1]) + floats + shape_bytes
    if crc is None:
        crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def flags_of(model: int = 1, kind: int = 0, ndim: int = 3, single: bool = False) -> int:
    return model | (kind << 2) | ((ndim - 1) << 4) | (0x40 if single else 0)


def resign(data: bytes, header_size: int) -> bytes:
    """Recompute the CRC-32 so a doctored stream reaches the decoder proper."""
    head, payload = data[: header_size - 4], data[header_size:]
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload
