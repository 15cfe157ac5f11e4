"""The conformance corpus of docs/bitstream.md: streams with their expected outcome.

``python -m eval.tools.conformance`` (re)writes ``streams/*.bin`` and ``manifest.json``
beside this file; ``tests/test_conformance.py`` checks the files are what this script makes
and that ``splitcodec.decode`` gives every expected outcome.  Another implementation claims
conformance by decoding every file with the default element limit (2^26) and matching the
manifest: the SHA-256 of the decoded float32 values (little-endian, C order) and the shape,
or a failure of the named class.  A case with ``after`` is a frame of a sequence: the decoder first
decodes the streams listed there, in order, with the same state (one among them that fails, as its own
case says, leaves the state as it was).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np

import splitcodec as sc
from eval.core.streams import _leb128, flags_of, raw  # noqa: F401 (the corpus and the benchmarks build streams alike)
from splitcodec import bitstream
from splitcodec.errors import BitstreamError
from splitcodec.entropy import encode_indices

HERE = Path(__file__).resolve().parents[2] / "tests" / "data" / "conformance"


def _field_input(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    x = (x + np.roll(x, 1, -1) + np.roll(x, 1, 0)) / 1.7  # some spatial correlation
    return x.astype(np.float32)


def _valid_cases():
    cases = []

    def add(name, data, reason):
        cases.append((name, data, reason))

    x = _field_input((3, 7, 9), 1)
    for n in (2, 3, 4, 16, 255, 256):
        for model in ("paper", "spatial"):
            q = sc.UniformQuantizer(-1.5, 2.0, n)
            add(f"uniform_n{n}_{model}", sc.FeatureCodec(q, model).encode(x), f"N = {n}, {model} contexts")
    for rank, shape in ((1, (37,)), (2, (5, 11)), (3, (2, 6, 7)), (4, (2, 2, 5, 6))):
        q = sc.UniformQuantizer(0.0, 2.0, 5)
        add(f"rank{rank}", sc.FeatureCodec(q).encode(np.abs(_field_input(shape, rank))), f"rank {rank}, shape {shape}")
    add("single_element", sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4)).encode(np.array([0.7], np.float32)),
        "one element: shape (1,)")
    add("width1", sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4)).encode(np.abs(_field_input((3, 9, 1), 3))),
        "planes one column wide (right neighbour outside the plane)")
    add("height1", sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4)).encode(np.abs(_field_input((3, 1, 9), 4))),
        "planes one row high (no row above)")
    add("clip_single", sc.FeatureCodec(sc.UniformQuantizer(0.1, 2.3, 8)).encode(x),
        "clip not exact in half precision: single-precision floats")
    add("clip_uniform_formula", sc.FeatureCodec(sc.UniformQuantizer(6.737916e-08, 6.478021, 256)).encode(x * 3),
        "reconstruction c_min + k * step, step = (c_max - c_min) / (N - 1), in double, then float32")
    add("clip_half_subnormal", sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0 ** -20, 4)).encode(x * 2.0 ** -21),
        "c_max a subnormal half float")
    add("clip_negative_zero", sc.FeatureCodec(sc.UniformQuantizer(-0.0, 1.0, 4)).encode(np.abs(x)),
        "c_min = -0.0: index 0 reconstructs to -0.0")
    add("table_n4", sc.FeatureCodec(sc.ScalarQuantizer.from_levels([-1.0, 0.0, 0.37, 2.5])).encode(x),
        "table of 4 strictly increasing levels, single floats")
    levels = np.sort(np.unique(np.float16(np.linspace(-3, 3, 300))))[:256].astype(np.float32)
    add("table_n256_half", sc.FeatureCodec(sc.ScalarQuantizer.from_levels(levels), "paper").encode(x),
        "table of 256 levels exact in half precision")
    # fields no encoder here writes but the format allows
    idx = sc.UniformQuantizer(0.0, 1.0, 4).quantize(np.abs(x))
    payload = encode_indices(idx, 4, "spatial")
    add("varint_overlong", raw(flags_of(), 4, struct.pack("<2e", 0.0, 1.0),
                               _leb128(3, 2) + _leb128(7, 5) + _leb128(9, 3), payload),
        "non-minimal LEB128 shape varints (2, 5 and 3 bytes) are accepted")
    add("clip_huge_range", raw(flags_of(single=True), 4, struct.pack("<2f", -3e38, 3e38),
                               bytes([3, 7, 9]), payload),
        "any finite c_min < c_max is decodable (reconstruction in double)")
    add("carry_run", sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 2), "paper").encode(
        (np.arange(4000) % 97 == 0).astype(np.float32)), "long runs of one bin: carries into 0xFF bytes")
    return cases


HALF_0_2 = struct.pack("<2e", 0.0, 2.0)  # the clip range [0, 2] in half precision
SHAPE_4_8_8 = bytes([4, 8, 8])


def _rejected_cases():
    """(name, stream, error class, reason) of each stream a decoder must refuse, in corpus order."""
    base = sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0, 4)).encode(np.abs(_field_input((4, 8, 8), 5)))
    header_size = sc.decode_header(base).size
    return _rejected_header_fields(base, base[header_size:]) + _rejected_sizes_and_payloads(base, header_size)


def _rejected_header_fields(base: bytes, payload: bytes) -> list:
    """Magic, version, ids, flags, N, clip ranges and level tables."""
    cases = []
    half01, shape = HALF_0_2, SHAPE_4_8_8

    def add(name, data, error, reason):
        cases.append((name, data, error, reason))

    add("empty", b"", "TruncatedStreamError", "no bytes")
    add("bad_magic", b"\x00" + base[1:], "BadMagicError", "first byte not 0xCF")
    add("bad_magic_and_version", b"\x00\x07" + base[2:], "BadMagicError", "magic is checked before the version")
    for v in (0, 3):
        add(f"version_{v}", base[:1] + bytes([v]) + base[2:], "UnsupportedVersionError", f"format version {v}")
    for m in (2, 3):
        add(f"context_id_{m}", raw(flags_of(model=m), 4, half01, shape, payload), "UnknownIdError",
            f"context model id {m} is unknown to version 1 (2 is the temporal model of version 2, 3 is reserved)")
    for k in (2, 3):
        add(f"quantizer_kind_{k}", raw(flags_of(kind=k), 4, half01, shape, payload), "UnknownIdError",
            f"quantizer kind {k} is reserved")
    add("context_before_kind", raw(flags_of(model=3, kind=3) | 0x80, 4, half01, shape, payload), "UnknownIdError",
        "flags: context id, then quantizer kind, then the reserved bit")
    add("reserved_bit", raw(flags_of() | 0x80, 4, half01, shape, payload), "InvalidHeaderError", "flags bit 7 set")
    add("levels_1", raw(flags_of(), 1, half01, shape, payload), "InvalidHeaderError", "N = 1")
    for name, lo, hi in (("clip_equal", 1.0, 1.0), ("clip_reversed", 2.0, 1.0), ("clip_nan", float("nan"), 1.0),
                         ("clip_inf", 0.0, float("inf")), ("clip_zeros", -0.0, 0.0)):
        add(name + "_half", raw(flags_of(), 4, struct.pack("<2e", lo, hi), shape, payload), "InvalidHeaderError",
            f"clip [{lo}, {hi}] (half): need finite c_min < c_max")
        add(name + "_single", raw(flags_of(single=True), 4, struct.pack("<2f", lo, hi), shape, payload),
            "InvalidHeaderError", f"clip [{lo}, {hi}] (single)")
    for name, lv in (("table_equal", [1.0, 1.0, 2.0, 3.0]), ("table_signed_zeros", [-1.0, -0.0, 0.0, 1.0]),
                     ("table_decreasing", [0.0, 2.0, 1.0, 3.0]), ("table_nan", [0.0, float("nan"), 1.0, 2.0]),
                     ("table_inf", [0.0, 1.0, 2.0, float("inf")])):
        add(name, raw(flags_of(kind=1, single=True), 4, struct.pack("<4f", *lv), shape, payload),
            "InvalidHeaderError", f"table {lv}: levels must be finite and strictly increasing")
    add("table_all_equal", raw(flags_of(kind=1), 2, struct.pack("<2e", 1.0, 1.0), shape, payload),
        "InvalidHeaderError", "table [1, 1]: every level equal")
    return cases


def _rejected_sizes_and_payloads(base: bytes, header_size: int) -> list:
    """Dimensions and element limits, check order, truncation, the CRC and the payload."""
    cases = []
    half01, payload = HALF_0_2, base[header_size:]

    def add(name, data, error, reason):
        cases.append((name, data, error, reason))

    def resign(data: bytes) -> bytes:
        head, pl = data[: header_size - 4], data[header_size:]
        return head + struct.pack("<I", zlib.crc32(pl, zlib.crc32(head))) + pl

    add("dimension_zero", raw(flags_of(), 4, half01, bytes([4, 0, 8]), payload), "InvalidHeaderError",
        "a dimension of 0")
    add("dimension_over_32_bits", raw(flags_of(ndim=1), 4, half01, _leb128(1 << 32), payload),
        "InvalidHeaderError", "a dimension of 2^32 (5-byte varint)")
    add("varint_6_bytes", raw(flags_of(ndim=1), 4, half01, b"\x81\x80\x80\x80\x80\x00", payload),
        "InvalidHeaderError", "a varint longer than 5 bytes")
    add("too_many_elements", raw(flags_of(ndim=2), 4, half01, _leb128(1 << 13) + _leb128((1 << 13) + 1), payload),
        "TensorTooLargeError", "2^26 + 2^13 elements, over the default limit of 2^26")
    add("clip_before_elements", raw(flags_of(ndim=2), 4, struct.pack("<2e", 1.0, 1.0),
                                    _leb128(1 << 14) + _leb128(1 << 14), payload),
        "InvalidHeaderError", "the clip range is checked when read, before the shape")
    add("elements_before_crc_field", raw(flags_of(ndim=1), 4, half01, _leb128(1 << 27), b"")[:-4],
        "TensorTooLargeError", "the element count is checked before the CRC field is read")
    for cut, what in ((2, "flags"), (4, "clip"), (7, "shape"), (header_size - 1, "crc32")):
        add(f"truncated_in_{what}", base[:cut], "TruncatedStreamError", f"stream ends inside the header ({what})")
    add("crc_mismatch", base[:-1] + bytes([base[-1] ^ 1]), "ChecksumError", "one payload bit flipped")
    add("crc_before_payload_checks", base[:header_size], "ChecksumError",
        "no payload, CRC not re-signed: the CRC is checked before the payload")
    add("payload_3_bytes", resign(base[:header_size] + payload[:3]), "TruncatedPayloadError",
        "a payload under 4 bytes")
    add("payload_cannot_hold_elements", raw(flags_of(ndim=1), 4, half01, _leb128(1 << 26), b"\x00" * 8),
        "TruncatedPayloadError", "8 payload bytes cannot code 2^26 elements (at most 2562 * (8 - 3) bins)")
    add("payload_truncated", resign(base[:-2]), "TruncatedPayloadError", "the last 2 payload bytes cut")
    add("payload_trailing", resign(base + b"\x00"), "TrailingBytesError", "one byte after the payload")
    add("payload_bad_start", resign(base[:header_size] + b"\xff\xff\xff\xff" + payload[4:]),
        "CorruptPayloadError", "first 4 payload bytes 0xFFFFFFFF")
    return cases


def _sequence_cases():
    """(name, stream, expected error or None, reason, names decoded before it by the same decoder): frames of
    version-2 sequences, each decoded by a decoder that first decoded the ``after`` streams, in order."""
    q = sc.UniformQuantizer(-1.0, 2.0, 6)
    rng = np.random.default_rng(11)
    frames = [_field_input((3, 6, 7), 20)]
    for _ in range(4):
        frames.append((frames[-1] + 0.15 * rng.normal(size=frames[-1].shape)).astype(np.float32))
    enc = sc.SequenceEncoder(sc.FeatureCodec(q), sequence_id=0x5EC0_0001, refresh_period=None)
    s = [enc.encode(x) for x in frames]
    paper = sc.SequenceEncoder(sc.FeatureCodec(q, "paper"), sequence_id=2, temporal=False)
    p = [paper.encode(x) for x in frames[:2]]
    wrap = sc.SequenceEncoder(sc.FeatureCodec(q), sequence_id=3)
    wrap.frame_number = bitstream.MAX_U32
    w = [wrap.encode(x) for x in frames[:2]]
    other = sc.SequenceEncoder(sc.FeatureCodec(q), sequence_id=0x5EC0_0001)
    o = [other.encode(x) for x in frames[2:4]]  # the same sequence id and numbers 0, 1: other content
    h = sc.decode_header(s[0])
    frame_at = h.size - 4 - 4 - 1 - 1  # crc32, sequence (u32), frame number (1 byte), frame
    patch = lambda data, at, value: data[:at] + bytes([value]) + data[at + 1:]  # noqa: E731
    seq = ["seq_f0_intra", "seq_f1_temporal", "seq_f2_temporal_carry", "seq_f3_temporal_carry"]
    cases = [
        (seq[0], s[0], None, "version 2 intra frame (spatial model); any decoder decodes it alone", []),
        (seq[1], s[1], None, "predicted frame, temporal model, fresh probability state", seq[:1]),
        (seq[2], s[2], None, "predicted frame carrying the state of frame 1", seq[:2]),
        (seq[3], s[3], None, "predicted frame carrying the state of frame 2", seq[:3]),
        ("seq_paper_f0", p[0], None, "paper-model sequence, intra", []),
        ("seq_paper_f1_carry", p[1], None, "paper model with the reference's state carried (no temporal contexts)",
         ["seq_paper_f0"]),
        ("seq_wrap_f4294967295", w[0], None, "frame number 2^32 - 1 (a 5-byte varint)", []),
        ("seq_wrap_f0", w[1], None, "frame numbers wrap: 0 follows 2^32 - 1", ["seq_wrap_f4294967295"]),
        ("seq_predicted_alone", s[1], "ReferenceFrameError", "a predicted frame with no reference decoded", []),
        ("seq_frame_lost", s[2], "ReferenceFrameError", "frame 2 after frame 0: frame 1 was lost", seq[:1]),
        ("seq_other_content", o[1], "ReferenceFrameError",
         "same sequence id and frame number, but predicted from another frame (reference CRC differs)", seq[:1]),
        ("seq_other_sequence", p[1], "ReferenceFrameError", "the reference held is of another sequence", seq[:1]),
        ("seq_frame_reserved_bits", patch(s[0], frame_at, 4), "InvalidHeaderError", "frame field bit 2 set", []),
        ("seq_intra_carries_state", patch(s[0], frame_at, 2), "InvalidHeaderError",
         "an intra frame with the carried-state bit", []),
        ("seq_intra_temporal_model", patch(s[0], 2, (s[0][2] & ~3) | 2), "InvalidHeaderError",
         "the temporal model in an intra frame", []),
        ("seq_truncated_frame_fields", s[0][:frame_at + 3], "TruncatedStreamError",
         "the stream ends inside the sequence id", []),
    ]
    return cases + _reading_cases(q, frames, s, seq)


def _rewrite(data: bytes, **fields) -> bytes:
    """``data`` with header fields replaced (``dataclasses.replace`` on its header) and its CRC recomputed."""
    import dataclasses

    h = sc.decode_header(data)
    return bitstream.write_header(dataclasses.replace(h, **fields), data[h.size:]) + data[h.size:]


def _reading_cases(q, frames, s, seq):
    """Cases that tell apart readings of §7 an independent decoder might take: one reference per decoder (not per
    sequence id), a version-1 stream drops it, a frame that fails leaves it, the quantizer compared by its float32
    values with IEEE equality (−0.0 = +0.0; half or single floats alike), the frame reconstructed with its own."""
    v1 = sc.FeatureCodec(q).encode(frames[1])
    corrupt = s[1][:-1] + bytes([s[1][-1] ^ 0x01])  # the payload's last byte: the CRC no longer matches
    zero = sc.SequenceEncoder(sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0, 6)), sequence_id=4, refresh_period=None)
    z = [zero.encode(np.abs(x)) for x in frames[:2]]
    negative_zero = _rewrite(z[1], clip=(-0.0, 2.0))  # value[0] = -0.0: IEEE-equal to the reference's +0.0
    single = _rewrite(z[1], single_precision=True)  # the same values stored as single floats
    return [
        ("seq_v1_between", v1, None, "a version-1 stream of the same shape (decodes alone)", []),
        ("seq_after_other_sequences_intra", s[1], "ReferenceFrameError",
         "one reference per decoder: an intra frame of another sequence replaced sequence 5ec00001's frame 0",
         [seq[0], "seq_paper_f0"]),
        ("seq_after_v1_stream", s[1], "ReferenceFrameError", "decoding a version-1 stream dropped the reference",
         [seq[0], "seq_v1_between"]),
        ("seq_f1_corrupt", corrupt, "ChecksumError", "frame 1 with a flipped payload bit", [seq[0]]),
        ("seq_after_failed_frame", s[1], None, "a frame that failed (its CRC) left the reference as it was",
         [seq[0], "seq_f1_corrupt"]),
        ("seq_zero_f0", z[0], None, "intra frame, clip [+0.0, 2.0] (half floats)", []),
        ("seq_zero_f1_negative_zero", negative_zero, None,
         "clip [-0.0, 2.0] against a [+0.0, 2.0] reference: IEEE-equal values, decoded with the frame's own "
         "(-0.0 where index 0)", ["seq_zero_f0"]),
        ("seq_zero_f1_single_floats", single, None,
         "the reference's clip stored as single floats: the float width does not matter", ["seq_zero_f0"]),
    ]


def _sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<f4").tobytes()).hexdigest()


def build() -> tuple[dict[str, bytes], list[dict]]:
    """Every stream (by file name) and the manifest entries, in order."""
    files, manifest = {}, []
    for name, data, reason in _valid_cases():
        values = sc.decode(data)  # the generator checks its own valid cases decode
        files[f"{name}.bin"] = data
        manifest.append({"file": f"streams/{name}.bin", "expect": "values", "shape": list(values.shape),
                         "sha256": _sha256(values), "reason": reason})
    for name, data, error, reason in _rejected_cases():
        files[f"{name}.bin"] = data
        manifest.append({"file": f"streams/{name}.bin", "expect": "error", "error": error, "reason": reason})
    for name, data, error, reason, after in _sequence_cases():
        files[f"{name}.bin"] = data
        entry = {"file": f"streams/{name}.bin", "after": [f"streams/{a}.bin" for a in after]}
        if error is None:
            values = decode_after(data, [files[f"{a}.bin"] for a in after])
            entry.update(expect="values", shape=list(values.shape), sha256=_sha256(values))
        else:
            entry.update(expect="error", error=error)
        manifest.append({**entry, "reason": reason})
    return files, manifest


def decode_after(data: bytes, before: list[bytes]) -> np.ndarray:
    """Decode ``data`` with a sequence decoder that first decoded ``before`` (in order; a stream among them that
    fails is one whose own case expects that failure, and the decoder goes on)."""
    dec = sc.SequenceDecoder()
    for b in before:
        try:
            dec.decode(b)
        except BitstreamError:
            pass
    return dec.decode(data)


def write(root: Path = HERE) -> None:
    files, manifest = build()
    streams = root / "streams"
    streams.mkdir(parents=True, exist_ok=True)
    for old in streams.glob("*.bin"):
        if old.name not in files:
            old.unlink()
    for name, data in files.items():
        (streams / name).write_bytes(data)
    doc = {"format_versions": list(bitstream.VERSIONS), "max_elements": bitstream.DEFAULT_MAX_ELEMENTS,
           "values_hash": "SHA-256 of the decoded float32 values, little-endian, C order", "cases": manifest}
    (root / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m eval.tools.conformance",
                                 description="(re)write the conformance corpus: streams/*.bin and manifest.json")
    ap.add_argument("folder", nargs="?", type=Path, default=HERE, help=f"where to write it (default {HERE})")
    write(ap.parse_args(argv).folder)


if __name__ == "__main__":
    main()
