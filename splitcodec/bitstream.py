"""Bitstream formats v1 and v2: the header syntax (one description for writer and
reader), its validation, and the integrity check.  ``docs/bitstream.md`` is the
prose version of this file.  Version 2 is version 1 plus a frame field after the
shape: a frame of a sequence, intra or predicted from the previous frame.

Layout (little-endian):

==========  =======================  ===============================================
field       size                     meaning
==========  =======================  ===============================================
magic       u8                       0xCF
version     u8                       format version (1); not the package version
flags       u8                       bits 0-1 context model id, bits 2-3 quantizer kind,
                                     bits 4-5 ndim - 1, bit 6 float width (0: half,
                                     1: single), bit 7 reserved (0)
levels_m1   u8                       N - 1  (N in 2..256)
clip        2 floats                 c_min, c_max            (quantizer kind 0, uniform)
levels      N floats                 reconstruction levels   (quantizer kind 1, table)
shape       ndim LEB128 varints      each dimension, >= 1
frame       u8                       v2 only: bit 0 predicted, bit 1 probability state carried
                                     from the reference, bits 2-7 reserved (0)
sequence    u32                      v2 only: the sequence id
frame_no    LEB128 varint            v2 only: the frame's number in its sequence, 0 .. 2^32 - 1
ref_crc     u32                      v2 predicted frames only: the crc32 field of the reference
crc32       u32                      CRC-32 (zlib polynomial) of every byte before it
                                     and of the payload
payload     rest of the stream       arithmetic-coded bins
==========  =======================  ===============================================

The payload length is the stream length minus the header length: the
arithmetic decoder consumes exactly the whole payload (its termination writes a
fixed 4 bytes), so a short or long payload is detected without a length field.
For a uniform quantizer on a (C, H, W) tensor with C < 16384 and H, W < 128 and
a clip range exact in half precision, the header is 16 bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .entropy.contexts import CONTEXT_MODEL_NAMES, INTRA_MODELS, TEMPORAL
from .errors import (
    BadMagicError,
    ChecksumError,
    InvalidHeaderError,
    TensorTooLargeError,
    TruncatedStreamError,
    UnknownIdError,
    UnsupportedVersionError,
)

MAGIC = 0xCF
FORMAT_VERSION = 1  # what a frame coded on its own is written as
SEQUENCE_VERSION = 2  # frames of a sequence (intra or predicted)
VERSIONS = (FORMAT_VERSION, SEQUENCE_VERSION)
FRAME_PREDICTED = 1
FRAME_CARRY_STATE = 2
MAX_U32 = (1 << 32) - 1
DEFAULT_MAX_ELEMENTS = 1 << 26
MAX_NDIM = 4
MAX_DIM = (1 << 32) - 1

QUANTIZER_UNIFORM = 0
QUANTIZER_TABLE = 1
QUANTIZER_KINDS = {"uniform": QUANTIZER_UNIFORM, "table": QUANTIZER_TABLE}
QUANTIZER_KIND_NAMES = {v: k for k, v in QUANTIZER_KINDS.items()}


@dataclass
class Header:
    """Every parameter the decoder needs.  ``clip`` is set for the uniform
    quantizer, ``levels_table`` for a table of reconstruction levels."""

    context_model: int
    quantizer_kind: int
    levels: int
    shape: tuple[int, ...]
    clip: tuple[float, float] | None = None
    levels_table: np.ndarray | None = None
    single_precision: bool = False
    version: int = FORMAT_VERSION
    crc32: int = 0
    size: int = field(default=0, compare=False)  # header length in bytes, set by the reader
    # version 2 (a frame of a sequence): ``sequence`` is None for a version-1 stream
    sequence: int | None = None
    frame_number: int = 0
    predicted: bool = False
    carry_state: bool = False
    reference_crc: int = 0

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def context_model_name(self) -> str:
        return CONTEXT_MODEL_NAMES[self.context_model]

    @property
    def quantizer_kind_name(self) -> str:
        return QUANTIZER_KIND_NAMES[self.quantizer_kind]


# --- field checks, shared by the syntax (reader) and ``validate`` (writer) ----------------------

# the context model ids a stream of each version may name (v1 predates the temporal model)
_MODELS_OF_VERSION = {v: sorted(m for m, name in CONTEXT_MODEL_NAMES.items()
                                if v >= SEQUENCE_VERSION or name in INTRA_MODELS) for v in VERSIONS}


def _known_models(version: int) -> list[int]:
    return _MODELS_OF_VERSION.get(version, [])


def _check_frame(model: int, predicted: bool, carry: bool) -> None:
    if model == TEMPORAL and not predicted:
        raise InvalidHeaderError("the temporal context model codes predicted frames only")
    if carry and not predicted:
        raise InvalidHeaderError("an intra frame cannot carry a reference's probability state")


def _check_levels(levels: int) -> None:
    if not 2 <= levels <= 256:
        raise InvalidHeaderError(f"number of levels N={levels} outside [2, 256]")


def _check_clip(clip) -> None:
    lo, hi = clip
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidHeaderError(f"invalid clip range [{lo}, {hi}]: need finite c_min < c_max")


def _check_table(table) -> None:
    t = np.asarray(table, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(t)):
        raise InvalidHeaderError("reconstruction levels must be finite")
    if not np.all(t[1:] > t[:-1]):  # IEEE comparison: -0.0 and +0.0 are equal, so not increasing
        raise InvalidHeaderError(
            f"reconstruction levels must be strictly increasing, got {np.array2string(t, precision=6)}"
        )


def _check_dim(d: int, axis: int, low: int = 1) -> None:
    if not low <= d <= MAX_DIM:
        what = f"shape dimension {axis}" if low else "frame number"
        raise InvalidHeaderError(f"{what} is {d}, outside [{low}, {MAX_DIM}]")


def _check_elements(shape, max_elements) -> None:
    n = math.prod(shape)
    if n > max_elements:
        raise TensorTooLargeError(f"shape {tuple(shape)} holds {n} elements, more than the allowed {max_elements}")


# --- the syntax, run against a writer or a reader ------------------------------------------------
# Every field is checked as soon as it is read, in stream order; docs/bitstream.md §5 lists the same
# checks in the same order.

def _syntax(io, h: dict, max_elements) -> None:
    io.u8(h, "magic")
    if h["magic"] != MAGIC:
        raise BadMagicError(f"not a splitcodec stream: first byte 0x{h['magic']:02x}, expected 0x{MAGIC:02x}")
    io.u8(h, "version")
    version = h["version"]
    if version not in VERSIONS:
        raise UnsupportedVersionError(
            f"bitstream format version {version} is not supported (this decoder reads {', '.join(map(str, VERSIONS))})"
        )
    io.u8(h, "flags")
    flags = h["flags"]
    if flags & 3 not in _known_models(version):
        raise UnknownIdError(f"unknown context model id {flags & 3} in a version {version} stream; "
                             f"known {_known_models(version)}")
    if (flags >> 2) & 3 not in QUANTIZER_KIND_NAMES:
        raise UnknownIdError(f"unknown quantizer kind {(flags >> 2) & 3}; known {sorted(QUANTIZER_KIND_NAMES)}")
    if flags & 0x80:
        raise InvalidHeaderError("reserved flag bit 7 is set")
    io.u8(h, "levels_m1")
    _check_levels(h["levels_m1"] + 1)
    width = "f" if flags & 0x40 else "e"  # struct codes: single / half
    if (flags >> 2) & 3 == QUANTIZER_UNIFORM:
        io.floats(h, "clip", width, 2)
        _check_clip(h["clip"])
    else:
        io.floats(h, "levels_table", width, h["levels_m1"] + 1)
        _check_table(h["levels_table"])
    io.varints(h, "shape", ((flags >> 4) & 3) + 1)
    _check_elements(h["shape"], max_elements)
    if version >= SEQUENCE_VERSION:
        io.u8(h, "frame")
        if h["frame"] & ~(FRAME_PREDICTED | FRAME_CARRY_STATE):
            raise InvalidHeaderError(f"reserved frame bits set (frame field 0x{h['frame']:02x})")
        predicted = bool(h["frame"] & FRAME_PREDICTED)
        _check_frame(flags & 3, predicted, bool(h["frame"] & FRAME_CARRY_STATE))
        io.u32(h, "sequence")
        io.varints(h, "frame_number", 1, low=0)
        if predicted:
            io.u32(h, "reference_crc")
    io.u32(h, "crc32")


class _Writer:
    def __init__(self):
        self.buf = bytearray()

    def u8(self, h, name):
        self.buf += struct.pack("<B", h[name])

    def u32(self, h, name):
        self.buf += struct.pack("<I", h[name])

    def floats(self, h, name, code, count):
        self.buf += struct.pack(f"<{count}{code}", *h[name])

    def varints(self, h, name, count, low=1):
        for v in h[name]:
            v = int(v)
            while True:
                b = v & 0x7F
                v >>= 7
                self.buf.append(b | (0x80 if v else 0))
                if not v:
                    break


class _Reader:
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n, what):
        if self.pos + n > len(self.data):
            raise TruncatedStreamError(
                f"stream ends inside the header: {len(self.data)} bytes, {what} needs {self.pos + n}"
            )
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self, h, name):
        h[name] = self._take(1, name)[0]

    def u32(self, h, name):
        h[name] = struct.unpack("<I", self._take(4, name))[0]

    def floats(self, h, name, code, count):
        size = struct.calcsize(f"<{count}{code}")
        h[name] = struct.unpack(f"<{count}{code}", self._take(size, name))

    def varints(self, h, name, count, low=1):
        dims = []
        for d in range(count):
            v, shift = 0, 0
            while True:
                b = self._take(1, f"{name}[{d}]")[0]
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
                if shift >= 35:
                    raise InvalidHeaderError(f"{name}[{d}] varint longer than 5 bytes")
            _check_dim(v, d, low)
            dims.append(v)
        h[name] = tuple(dims)


# --- header <-> fields ---------------------------------------------------------------------------

def _half_exact(values) -> bool:
    v = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore"):
        return bool(np.all(v.astype(np.float16).astype(np.float32) == v))


def _fields(h: Header) -> dict:
    if h.quantizer_kind == QUANTIZER_UNIFORM:
        values = h.clip
    else:
        values = h.levels_table
    single = h.single_precision or not _half_exact(values)
    flags = (h.context_model & 3) | ((h.quantizer_kind & 3) << 2) | ((len(h.shape) - 1) << 4) | (0x40 if single else 0)
    f = {"magic": MAGIC, "version": h.version, "flags": flags, "levels_m1": h.levels - 1,
         "shape": h.shape, "crc32": h.crc32}
    if h.version >= SEQUENCE_VERSION:
        f.update(frame=(FRAME_PREDICTED if h.predicted else 0) | (FRAME_CARRY_STATE if h.carry_state else 0),
                 sequence=h.sequence, frame_number=(h.frame_number,), reference_crc=h.reference_crc)
    if h.quantizer_kind == QUANTIZER_UNIFORM:
        f["clip"] = [float(np.float32(c)) for c in h.clip]
    else:
        f["levels_table"] = [float(v) for v in np.asarray(h.levels_table, dtype=np.float32)]
    return f


def validate(h: Header, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
    """The reader's checks, for a ``Header`` built in memory (the writer's side); raises
    ``BitstreamError`` subclasses."""
    if h.version not in VERSIONS:
        raise UnsupportedVersionError(f"bitstream format version {h.version} is not one this writer writes")
    if (h.version >= SEQUENCE_VERSION) != (h.sequence is not None):
        raise InvalidHeaderError("a version-2 header needs a sequence id, a version-1 header none")
    if h.context_model not in _known_models(h.version):
        raise UnknownIdError(f"unknown context model id {h.context_model} in a version {h.version} stream; "
                             f"known {_known_models(h.version)}")
    if h.version >= SEQUENCE_VERSION:
        _check_frame(h.context_model, h.predicted, h.carry_state)
        for name in ("sequence", "frame_number", "reference_crc"):
            if not 0 <= getattr(h, name) <= MAX_U32:
                raise InvalidHeaderError(f"{name} {getattr(h, name)} outside [0, {MAX_U32}]")
    elif h.predicted or h.carry_state:
        raise InvalidHeaderError("only a version-2 stream codes a predicted frame")
    if h.quantizer_kind not in QUANTIZER_KIND_NAMES:
        raise UnknownIdError(f"unknown quantizer kind {h.quantizer_kind}; known {sorted(QUANTIZER_KIND_NAMES)}")
    _check_levels(h.levels)
    if not 1 <= len(h.shape) <= MAX_NDIM:
        raise InvalidHeaderError(f"tensor rank {len(h.shape)} outside [1, {MAX_NDIM}]")
    for axis, d in enumerate(h.shape):
        _check_dim(d, axis)
    _check_elements(h.shape, max_elements)
    if h.quantizer_kind == QUANTIZER_UNIFORM:
        _check_clip(h.clip)
    else:
        if np.size(h.levels_table) != h.levels:
            raise InvalidHeaderError(f"need {h.levels} reconstruction levels, got {np.size(h.levels_table)}")
        _check_table(h.levels_table)


def write_header(h: Header, payload: bytes) -> bytes:
    """Header bytes (CRC over header and payload included) for ``payload``."""
    validate(h, max_elements=math.inf)
    f = _fields(h)
    w = _Writer()
    f["crc32"] = 0
    _syntax(w, f, math.inf)
    head = bytes(w.buf[:-4])
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc)


def read_header(data, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Header:
    """Parse and validate the header of ``data`` (nothing of size N·shape is allocated)."""
    r = _Reader(data)
    f: dict = {}
    _syntax(r, f, max_elements)
    flags = f["flags"]
    h = Header(
        context_model=flags & 3,
        quantizer_kind=(flags >> 2) & 3,
        levels=f["levels_m1"] + 1,
        shape=f["shape"],
        clip=tuple(f["clip"]) if "clip" in f else None,
        levels_table=np.asarray(f["levels_table"], dtype=np.float32) if "levels_table" in f else None,
        single_precision=bool(flags & 0x40),
        version=f["version"],
        crc32=f["crc32"],
        size=r.pos,
    )
    if h.version >= SEQUENCE_VERSION:
        h.sequence = f["sequence"]
        h.frame_number = f["frame_number"][0]
        h.predicted = bool(f["frame"] & FRAME_PREDICTED)
        h.carry_state = bool(f["frame"] & FRAME_CARRY_STATE)
        h.reference_crc = f.get("reference_crc", 0)
    return h


def verify_crc(data, h: Header) -> None:
    """Raise ``ChecksumError`` unless the stored CRC-32 matches header and payload."""
    mv = memoryview(data)
    crc = zlib.crc32(mv[h.size:], zlib.crc32(mv[:h.size - 4]))
    if crc != h.crc32:
        raise ChecksumError(
            f"CRC-32 mismatch (stored {h.crc32:08x}, computed {crc:08x}): the {len(mv)}-byte stream "
            "is corrupted, truncated or extended"
        )
