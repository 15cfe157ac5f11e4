"""Frames of a sequence (a camera stream): intra frames and frames predicted from the one before.

>>> import numpy as np, splitcodec as sc
>>> rng = np.random.default_rng(0)
>>> frames = [np.maximum(rng.normal(size=(4, 6, 6)), 0).astype(np.float32)]
>>> frames += [frames[0] + 0.01 * i for i in range(1, 4)]          # a slowly changing scene
>>> enc = sc.SequenceEncoder(sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0, 4)), sequence_id=7)
>>> dec = sc.SequenceDecoder()
>>> streams = [enc.encode(f) for f in frames]
>>> [sc.decode_header(s).predicted for s in streams]
[False, True, True, True]
>>> y = dec.decode(streams[1])                 # needs frame 0 first
Traceback (most recent call last):
  ...
splitcodec.errors.ReferenceFrameError: frame 1 of sequence 00000007 needs a reference, and this decoder holds
none (the sequence must restart with an intra frame)
>>> ys = [dec.decode(s) for s in streams]
>>> all(bool((y == enc.codec.quantizer.dequantize(enc.codec.quantizer.quantize(f))).all()) for y, f in zip(ys, frames))
True

A predicted frame (bitstream version 2, docs/bitstream.md §7) codes each index with the ``temporal``
context model: the spatial context times the index's relation to the reference frame's co-located index;
and it carries on the reference's adaptive probability state instead of starting fresh, when the reference
was coded with the same model.  With RDO (``rdo_lambda`` > 0) the encoder prices each candidate index with
those contexts, so it knows what keeping the previous frame's index saves.

Both sides keep exactly one reference frame: its indices, its CRC, its number and the final probability
state.  The header names the sequence, the frame's number and the CRC of the frame it was predicted from, so
a decoder whose reference is missing, of another sequence, or not the same frame raises
:class:`~splitcodec.errors.ReferenceFrameError` and keeps its state; it never decodes against a wrong
reference.  The encoder sends an intra frame first, every ``refresh_period`` frames, after
:meth:`SequenceEncoder.refresh` (a receiver lost a frame), and whenever the shape or the quantizer changes.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

import numpy as np

from . import bitstream
from .bitstream import DEFAULT_MAX_ELEMENTS, MAX_U32, SEQUENCE_VERSION, Header
from .codec import FeatureCodec, encodable, reconstruction_levels
from .entropy import coder
from .entropy.contexts import TEMPORAL
from .errors import QuantizerError, ReferenceFrameError

__all__ = ["SequenceEncoder", "SequenceDecoder", "DEFAULT_REFRESH_PERIOD"]

DEFAULT_REFRESH_PERIOD = 64  # frames; about 2 s of a 30 fps camera between self-contained frames


@dataclass
class _Reference:
    """What each side keeps of the last frame: enough to predict the next one and to check it names this one."""

    header: Header
    indices: np.ndarray  # flat uint8
    state: tuple[np.ndarray, np.ndarray]  # the final adaptive probability state

    def same_quantizer(self, h: Header) -> bool:
        r = self.header
        if (r.quantizer_kind, r.levels, tuple(r.shape)) != (h.quantizer_kind, h.levels, tuple(h.shape)):
            return False
        return bool(np.array_equal(reconstruction_levels(r), reconstruction_levels(h)))


class SequenceEncoder:
    """Stateful encoder of one sequence of tensors with a :class:`~splitcodec.FeatureCodec`.

    ``temporal``: predicted frames use the ``temporal`` context model (else the codec's own model, with only
    the probability state carried); ``carry_state``: a predicted frame starts from the reference's final
    probability state when the reference used the same model; ``refresh_period``: at most this many frames
    from one intra frame to the next (None: only the first, refreshes and shape changes); ``sequence_id``:
    a 32-bit id (random by default), written in every frame.
    """

    def __init__(self, codec: FeatureCodec, *, refresh_period: int | None = DEFAULT_REFRESH_PERIOD,
                 temporal: bool = True, carry_state: bool = True, sequence_id: int | None = None):
        if not isinstance(codec, FeatureCodec):
            raise TypeError(f"codec must be a FeatureCodec, got {type(codec).__name__}")
        if refresh_period is not None and (int(refresh_period) != refresh_period or refresh_period < 1):
            raise QuantizerError(f"refresh_period must be a whole number >= 1 or None, got {refresh_period!r}")
        self.codec = codec
        self.refresh_period = None if refresh_period is None else int(refresh_period)
        self.temporal = bool(temporal)
        self.carry_state = bool(carry_state)
        self.sequence_id = secrets.randbits(32) if sequence_id is None else int(sequence_id)
        if not 0 <= self.sequence_id <= MAX_U32:
            raise QuantizerError(f"sequence_id must be a 32-bit unsigned number, got {sequence_id!r}")
        self.frame_number = 0  # the next frame's
        self._since_intra = 0
        self._ref: _Reference | None = None
        self._refresh = True

    def refresh(self) -> None:
        """Make the next frame intra (a receiver lost a frame, or a new receiver joins)."""
        self._refresh = True

    @property
    def next_is_intra(self) -> bool:
        return self.refresh_due is not None

    @property
    def refresh_due(self) -> str | None:
        """Why the next frame is intra: ``"start"`` (no reference yet), ``"asked"`` (:meth:`refresh`),
        ``"period"`` (``refresh_period`` frames since the last one); None when it may be predicted (a new shape
        still makes it intra)."""
        if self._ref is None:
            return "start"
        if self._refresh:
            return "asked"
        if self.refresh_period is not None and self._since_intra >= self.refresh_period:
            return "period"
        return None

    def defer_refresh(self, frames: int) -> None:
        """The periodic intra frame ``frames`` frames later (a rate controller whose buffer cannot take one now).
        A start or a refresh asked for is never deferred: a receiver needs it."""
        if self.refresh_due == "period":
            self._since_intra = self.refresh_period - int(frames)

    def encode(self, x, *, intra: bool = False, return_indices: bool = False):
        """The next frame's stream (version 2): intra when asked, when due, or when the shape changed; else
        predicted from the previous frame.  ``return_indices`` as for :meth:`FeatureCodec.encode`."""
        data, pending = self.encode_pending(x, intra=intra)
        self.commit(pending)
        return (data, pending.indices.reshape(pending.shape)) if return_indices else data

    def encode_pending(self, x, *, intra: bool = False) -> tuple[bytes, "_Pending"]:
        """The next frame's stream as :meth:`encode` makes it, without moving the sequence on: the frame becomes
        the reference, and the next frame's number taken, only by :meth:`commit` of the returned pending state.
        A frame never committed was never sent: the next frame predicts from the last committed one (a rate
        controller tries a frame at several settings and sends one, or none)."""
        codec, q = self.codec, self.codec.quantizer
        a = encodable(x)
        ref = self._ref
        predicted = not (intra or self.next_is_intra or tuple(ref.header.shape) != a.shape
                         or not ref.same_quantizer(codec._header(a.shape)))  # a new quantizer starts afresh
        model = (TEMPORAL if self.temporal else codec.context_model) if predicted else codec.context_model
        carry = predicted and self.carry_state and ref.header.context_model == model
        options = dict(ref=ref.indices if model == TEMPORAL else None, state=ref.state if carry else None,
                       return_state=True)
        idx = q.quantize(a)
        if codec.config.rdo:
            payload, state = coder.encode_configured(idx, a, q.reconstruction, q.c_min, q.c_max, q.levels,
                                                     codec.config, codec.step, model=model, **options)
        else:
            payload, state = coder.encode_indices(idx, q.levels, model, check=False, **options)
        h = dataclasses.replace(codec._header(a.shape), context_model=model, version=SEQUENCE_VERSION,
                                sequence=self.sequence_id, frame_number=self.frame_number, predicted=predicted,
                                carry_state=carry, reference_crc=ref.header.crc32 if predicted else 0)
        head = bitstream.write_header(h, payload)
        h.crc32 = int.from_bytes(head[-4:], "little")
        return head + payload, _Pending(self, self.frame_number, _Reference(h, idx.reshape(-1), state), a.shape)

    def commit(self, pending: "_Pending") -> None:
        """Make a frame from :meth:`encode_pending` the one sent: the reference of the next frame."""
        if pending.encoder is not self or pending.frame_number != self.frame_number:
            raise QuantizerError("this pending frame is not this encoder's next frame (another frame was committed "
                                 "since it was encoded)")
        self._ref = pending.reference
        self.frame_number = (self.frame_number + 1) & MAX_U32
        self._since_intra = self._since_intra + 1 if pending.reference.header.predicted else 1
        self._refresh = False


@dataclass(frozen=True)
class _Pending:
    """A frame encoded and not yet committed: what :meth:`SequenceEncoder.commit` makes the reference."""

    encoder: SequenceEncoder
    frame_number: int
    reference: _Reference
    shape: tuple

    @property
    def indices(self) -> np.ndarray:
        return self.reference.indices


class SequenceDecoder:
    """Stateful decoder of one sequence: decodes intra frames (v1 or v2) and predicted frames against the one
    reference it keeps.  Raises :class:`~splitcodec.errors.ReferenceFrameError` for a predicted frame whose
    reference is not the frame it holds; every failure leaves the held reference as it was."""

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS):
        self.max_elements = max_elements
        self._ref: _Reference | None = None

    def reset(self) -> None:
        """Drop the reference (the next frame must be intra)."""
        self._ref = None

    @property
    def reference(self) -> Header | None:
        """The header of the frame held as reference (None before the first, or after a reset)."""
        return None if self._ref is None else self._ref.header

    def decode(self, data, *, return_indices: bool = False):
        """The frame's dequantized float32 tensor (``(values, indices)`` with ``return_indices``)."""
        h = bitstream.read_header(data, self.max_elements)
        bitstream.verify_crc(data, h)
        ref = self._check_reference(h) if h.predicted else None
        carry = ref.state if h.carry_state else None
        idx, values, state = coder.decode_indices(data, h.shape, h.levels, h.context_model, start=h.size,
                                                  table=reconstruction_levels(h),
                                                  ref=ref.indices if h.context_model == TEMPORAL else None,
                                                  state=carry, return_state=True)
        # a version-1 stream is a frame on its own, of no sequence: nothing can be predicted from it
        self._ref = _Reference(h, idx.reshape(-1), state) if h.version >= SEQUENCE_VERSION else None
        return (values, idx) if return_indices else values

    def _check_reference(self, h: Header) -> _Reference:
        ref = self._ref
        where = f"frame {h.frame_number} of sequence {h.sequence:08x}"
        if ref is None:
            raise ReferenceFrameError(f"{where} needs a reference, and this decoder holds none (the sequence "
                                      "must restart with an intra frame)")
        r = ref.header
        if r.sequence != h.sequence:
            raise ReferenceFrameError(f"{where} predicts from its own sequence; the reference held is of "
                                      f"sequence {r.sequence:08x}")
        if (r.frame_number + 1) & MAX_U32 != h.frame_number:
            raise ReferenceFrameError(f"{where} predicts from frame {(h.frame_number - 1) & MAX_U32}; the "
                                      f"reference held is frame {r.frame_number} (a frame was lost or reordered)")
        if r.crc32 != h.reference_crc:
            raise ReferenceFrameError(f"{where} was predicted from a frame with CRC {h.reference_crc:08x}; the "
                                      f"reference held has CRC {r.crc32:08x}")
        if not ref.same_quantizer(h):
            raise ReferenceFrameError(f"{where} changes the quantizer or the shape: that needs an intra frame")
        if h.carry_state and r.context_model != h.context_model:
            raise ReferenceFrameError(f"{where} carries on a probability state of context model "
                                      f"{h.context_model}, but the reference was coded with model {r.context_model}")
        return ref
