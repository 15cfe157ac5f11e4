"""The codec: clip → quantize → truncated unary → CABAC → self-describing bytes.

>>> import numpy as np, splitcodec as sc
>>> x = np.maximum(np.random.default_rng(0).normal(size=(8, 6, 5)), 0).astype(np.float32)
>>> q = sc.UniformQuantizer(0.0, 2.0, 4)
>>> data = sc.FeatureCodec(q).encode(x)
>>> y = sc.decode(data)
>>> bool((y == q.dequantize(q.quantize(x))).all()), y.shape, y.dtype
(True, (8, 6, 5), dtype('float32'))
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import bitstream
from .bitstream import DEFAULT_MAX_ELEMENTS, Header
from .entropy import coder
from .encoder_config import EncoderConfig
from .errors import InvalidHeaderError, QuantizerError, ReferenceFrameError
from .quantization import Quantizer, ScalarQuantizer, UniformQuantizer, _as_float32, uniform_levels

__all__ = ["FeatureCodec", "decode", "decode_header", "decode_indices", "quantizer_from_header", "reconstruction_levels"]


class FeatureCodec:
    """Encoder for one quantizer and context model.

    ``encode`` accepts a float tensor of rank 1 to 4 — typically (C, H, W) or
    (B, C, H, W) — as a numpy array or torch tensor; the last two axes are
    coded as planes.  The stream is self-describing: :func:`decode` needs
    nothing else.
    """

    def __init__(self, quantizer: Quantizer, context_model: str | int | None = None, *,
                 config: EncoderConfig | None = None, **options):
        """``config`` (an :class:`EncoderConfig`, default the plain encoder) with ``context_model`` and any
        keyword ``options`` (``rdo_lambda=0.2``, ``error_feedback=0.5``, ...: its field names) put over it."""
        if not isinstance(quantizer, Quantizer):
            raise TypeError(f"quantizer must be a splitcodec Quantizer, got {type(quantizer).__name__}")
        if context_model is not None:
            options["context_model"] = context_model
        base = config if config is not None else EncoderConfig()
        if not isinstance(base, EncoderConfig):
            raise TypeError(f"config must be an EncoderConfig, got {type(base).__name__}")
        unknown = set(options) - set(EncoderConfig.option_names())
        if unknown:
            raise TypeError(f"unknown encoder option(s) {sorted(unknown)}; known: {EncoderConfig.option_names()}")
        self.quantizer = quantizer
        self.config = dataclasses.replace(base, **options) if options else base
        self.context_model = self.config.context_model_id

    def __getattr__(self, name):
        """The encoder options read as attributes (``codec.rdo_lambda``; channel weights as float64)."""
        if name in EncoderConfig.option_names():  # "config" is no option: a missing config raises below
            return self.config.weights if name == "channel_weights" else getattr(self.config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_file(cls, path, context_model: str | int | None = None) -> "FeatureCodec":
        """A codec for a quantizer file (``splitcodec.quantizer_file``): its quantizer and encoder
        configuration; ``context_model`` overrides the file's."""
        from .quantizer_file import load_quantizer_file

        f = load_quantizer_file(path)
        return cls(f.quantizer, context_model, config=f.encoder)

    def __repr__(self) -> str:
        opts = "".join(f", {part}" for part in self.config.repr_parts() if not part.startswith("context_model="))
        return f"FeatureCodec({self.quantizer!r}, context_model={self.config.context_model!r}{opts})"

    def _header(self, shape) -> Header:
        q = self.quantizer
        if isinstance(q, UniformQuantizer):
            return Header(self.context_model, bitstream.QUANTIZER_UNIFORM, q.levels, tuple(shape),
                          clip=(q.c_min, q.c_max))
        return Header(self.context_model, bitstream.QUANTIZER_TABLE, q.levels, tuple(shape),
                      levels_table=q.reconstruction)

    @property
    def step(self) -> float:
        """Δ, the unit of distortion of ``rdo_lambda``: the uniform step, or a table's mean level spacing."""
        rec = self.quantizer.reconstruction.astype(np.float64)
        return float((rec[-1] - rec[0]) / (len(rec) - 1))

    def encode(self, x, *, return_indices: bool = False):
        """Compress a float tensor to a self-describing bitstream.

        With ``rdo_lambda`` = λ > 0 each element's index is chosen (among 0 and the quantizer's index ± 1) to
        minimise ``(x - x̂)² / Δ² + λ · bits``, the bits being exactly what the arithmetic coder spends on
        it in its current contexts; the stream stays an ordinary one (any decoder reads it).  With
        ``return_indices=True`` returns ``(bytes, indices)``: what ``decode`` will reconstruct is
        ``quantizer.dequantize(indices)``.  λ = 0 is the plain quantizer, byte for byte.

        With ``channel_weights`` w (one positive number per channel, the axis before the last two) the
        distortion of an element of channel c counts w[c] times: the encoder minimises
        ``w[c] · (x - x̂)² / Δ² + λ · bits``, spending its bits where they matter to the task
        (``splitcodec.sensitivity`` estimates w from the network behind the split).  ``error_feedback`` f adds
        f times each element's error to the next element's target (same plane), keeping channel means
        (``error_diffusion="plane"``: half to the right neighbour's, half to the one below's — the error stays
        at high spatial frequencies in both directions, where the convolutions behind the split average it out);
        ``rdo_lookahead`` prices each candidate together with the right neighbour's best answer to it
        (fewer bits at low rates, slower encoding; docs/codec.md).
        """
        a = encodable(x)
        idx = self.quantizer.quantize(a)  # in range by construction
        if self.config.rdo:
            q = self.quantizer
            payload = coder.encode_configured(idx, a, q.reconstruction, q.c_min, q.c_max, q.levels, self.config,
                                              self.step)  # rewrites idx with its choices
            data = self._stream(idx.shape, payload)
        else:
            data = self._encode_indices(idx, check=False)
        return (data, idx) if return_indices else data

    def encode_indices(self, indices: np.ndarray) -> bytes:
        """Code already-quantized indices (uint8, values < N) with this codec's header."""
        return self._encode_indices(np.asarray(indices), check=True)

    def _encode_indices(self, idx: np.ndarray, check: bool) -> bytes:
        payload = coder.encode_indices(idx, self.quantizer.levels, self.context_model, check=check)
        return self._stream(idx.shape, payload)

    def _stream(self, shape, payload: bytes) -> bytes:
        return bitstream.write_header(self._header(shape), payload) + payload

    def bits_per_element(self, x) -> float:
        """Size of ``encode(x)`` in bits per tensor element (header included)."""
        a = _as_float32(x)
        return 8 * len(self.encode(a)) / a.size


def encodable(x) -> np.ndarray:
    """``x`` as the float32 array an encoder codes: rank 1..4, not empty (else ``QuantizerError``)."""
    a = _as_float32(x)
    if not 1 <= a.ndim <= bitstream.MAX_NDIM:
        raise QuantizerError(f"tensor rank must be 1..{bitstream.MAX_NDIM}, got shape {a.shape}")
    if a.size == 0:
        raise QuantizerError(f"cannot encode an empty tensor (shape {a.shape})")
    return a


def decode_header(data, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Header:
    """Parse and validate a stream's header only (cheap: for routing and shape checks)."""
    return bitstream.read_header(data, max_elements)


def reconstruction_levels(h: Header) -> np.ndarray:
    """The float32 value of each index of a validated header (docs/bitstream.md §1); never raises."""
    if h.quantizer_kind == bitstream.QUANTIZER_UNIFORM:
        return uniform_levels(h.clip[0], h.clip[1], h.levels)
    return np.asarray(h.levels_table, dtype=np.float32)


def quantizer_from_header(h: Header) -> Quantizer:
    """The quantizer a stream was written with (enough to dequantize its indices).

    Raises ``InvalidHeaderError`` for a valid stream whose clip range no encoder here can
    quantize with (its float32 scale overflows); :func:`decode` does not need the quantizer."""
    try:
        if h.quantizer_kind == bitstream.QUANTIZER_UNIFORM:
            return UniformQuantizer(h.clip[0], h.clip[1], h.levels)
        return ScalarQuantizer.from_levels(h.levels_table)
    except QuantizerError as e:
        raise InvalidHeaderError(f"the stream's quantizer cannot be rebuilt: {e}") from None


def _self_contained(h: Header) -> None:
    if h.predicted:
        raise ReferenceFrameError(
            f"frame {h.frame_number} of sequence {h.sequence:08x} is predicted from the frame before it: decode the "
            "sequence with splitcodec.SequenceDecoder")


def decode_indices(data, max_elements: int = DEFAULT_MAX_ELEMENTS) -> tuple[np.ndarray, Header]:
    """Decode a stream to its quantization indices (uint8) and header (an intra frame: a predicted frame of a
    sequence raises ``ReferenceFrameError``; see :class:`splitcodec.SequenceDecoder`)."""
    h = bitstream.read_header(data, max_elements)
    bitstream.verify_crc(data, h)
    _self_contained(h)
    idx = coder.decode_indices(data, h.shape, h.levels, h.context_model, start=h.size)
    return idx, h


def decode(data, max_elements: int = DEFAULT_MAX_ELEMENTS) -> np.ndarray:
    """Decode a stream to its dequantized float32 tensor, in the original shape.

    ``data`` is untrusted: every header field is validated as it is read, the
    declared shape must hold at most ``max_elements`` elements, the CRC-32 must
    match, the payload must be long enough to code that many elements (all
    checked before allocating), and the arithmetic decoder must consume the
    payload exactly.  The work is bounded by the payload: at most
    ``2562 * (payload bytes - 3)`` bins.  Every failure raises a specific
    :class:`~splitcodec.errors.BitstreamError` (docs/bitstream.md §5).  Version-2 intra frames decode
    here too; a predicted frame needs its reference (:class:`splitcodec.SequenceDecoder`) and raises
    ``ReferenceFrameError``.
    """
    h = bitstream.read_header(data, max_elements)
    bitstream.verify_crc(data, h)
    _self_contained(h)
    return coder.decode_indices(data, h.shape, h.levels, h.context_model, start=h.size,
                                table=reconstruction_levels(h), indices=False)
