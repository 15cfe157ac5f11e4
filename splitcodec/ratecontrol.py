"""Rate control of a sequence: hold a target bitrate through a buffer that never overflows.

A camera stream over a link of ``bitrate`` bit/s is modelled as x264's VBV is: a buffer of ``bufsize_ms`` of the
link's bytes that each frame fills by its size and the link drains at ``bitrate`` between frames (by the frames'
capture times, so frames the edge skipped drain it too).  :class:`RateController` encodes each frame of a
:class:`~splitcodec.SequenceEncoder` so that the buffer never overflows: a frame that would overflow it even at
the cheapest setting is *skipped before it is encoded* (``Decision.data is None``), so the sequence's next frame
still predicts from the last frame that was sent.

The levers, per frame (nothing about them reaches the decoder but what every stream carries):

* **RDO λ** (``EncoderConfig.rdo_lambda``), free on every frame: chosen from ``LAMBDA_GRID`` (0 = the file's
  plain quantization, up to ``lambda_max``; past 0.3 the bytes of split tensors stop falling and fidelity keeps
  dropping, measured on EfficientNet-Lite0 ``blocks.13`` over a camera clip: predicted frames 1,420 → 472 B from
  λ 0 → 0.3, 402 B at 0.5, 388 B at 0.7, KL 0.029 → 0.23 → 0.33).
* **N** (uniform quantizers), only at intra frames: one level down when half the frames since the last intra
  frame needed ``lambda_max`` or were skipped, one level up (never above the quantizer's own N) when none did and
  nine in ten needed no RDO with the buffer under a quarter full; never below ``min_levels`` (default ¾ of N:
  the same clip with fewer levels costs fidelity quickly, N 8 → 6 at the same bytes is better than λ 0.2,
  N 8 → 4 is not).  The clip is kept.  Other quantizers keep their N.

The rate model is fitted online from the frames' actual bytes, as x264's ABR does: for each frame type (intra,
predicted) bytes(λ) = c · g(λ), where c (the content's complexity: bytes at λ = 0) follows the frames sent (an
exponential average of bytes / g(λ)), and g (the relative bytes over ``LAMBDA_GRID``, g(0) = 1) is measured by
encoding the first frame of each type after every intra frame at each λ of the grid (one frame in
``refresh_period``: a few extra encodes every couple of seconds).  An intra frame is encoded at each λ anyway, so
its λ is the smallest whose actual size fits; a predicted frame's λ is the model's smallest fitting one, re-encoded
at ``lambda_max`` when the actual size would overflow the buffer.

Each frame aims at the link's share ``bitrate / fps`` plus a correction that steers the buffer back to half full
over about four frames (``STEER``); an intra frame may take the buffer's free half on top, as an I-frame takes the
VBV's slack in x264.

>>> import numpy as np, splitcodec as sc
>>> from splitcodec.ratecontrol import RateController
>>> rng = np.random.default_rng(0)
>>> frames = [np.maximum(rng.normal(size=(16, 12, 12)), 0).astype(np.float32) for _ in range(30)]
>>> rc = RateController(sc.FeatureCodec(sc.UniformQuantizer(0.0, 3.0, 8)), bitrate=30 * 8 * 300, fps=30)
>>> decisions = [rc.encode(f) for f in frames]
>>> max(d.fullness for d in decisions) <= rc.buffer_bytes
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .codec import FeatureCodec
from .errors import QuantizerError
from .quantization import UniformQuantizer
from .sequence import DEFAULT_REFRESH_PERIOD, SequenceEncoder

__all__ = ["RateController", "Decision", "LAMBDA_GRID", "DEFAULT_BUFSIZE_MS"]

LAMBDA_GRID = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3)  # RDO λ the controller chooses from (see the docstring)
DEFAULT_BUFSIZE_MS = 200.0  # the buffer: 200 ms of the link's bytes (x264's live-streaming advice: about one GOP
                            # is far too long for a bounded latency, a few frames is enough to absorb intra frames)
STEER = 0.25  # the share of the buffer's distance from half full that one frame's target corrects
COMPLEXITY_WEIGHT = 0.3  # how much one frame's bytes move the complexity estimate (exponential average)
DEFER_FRAMES = 8  # a periodic intra frame with no room in the buffer is tried again this many frames later
FLOOR_MARGIN = 1.1  # a buffer too small for any frame grows to hold the cheapest one seen, with this margin ...
FLOOR_HALF_LIFE_S = 2.0  # ... and shrinks back towards bufsize with this half-life


@dataclass(frozen=True)
class Decision:
    """What the controller did with one frame: its stream (None: skipped, nothing encoded or committed), the frame
    type, λ and N it was coded with, the bytes it aimed at, the buffer's size and its fullness after the frame
    (bytes); for a skipped frame, ``cheapest``: its size at λ max."""

    data: bytes | None
    intra: bool
    rdo_lambda: float
    levels: int
    target: float
    fullness: float
    buffer: float
    cheapest: int | None = None

    @property
    def skipped(self) -> bool:
        return self.data is None


class RateController:
    """Encodes a sequence at ``bitrate`` bit/s through a ``bufsize_ms`` buffer (see the module docstring).

    ``codec``: the operating point (quantizer, context model, encoder options; its own ``rdo_lambda`` is replaced
    per frame); ``fps``: the frame rate the frames are captured at (the drain per frame when :meth:`encode` is
    given no capture time); the other options are :class:`~splitcodec.SequenceEncoder`'s.
    """

    def __init__(self, codec: FeatureCodec, *, bitrate: float, fps: float, bufsize_ms: float = DEFAULT_BUFSIZE_MS,
                 lambda_max: float = LAMBDA_GRID[-1], min_levels: int | None = None,
                 refresh_period: int | None = DEFAULT_REFRESH_PERIOD, temporal: bool = True, carry_state: bool = True,
                 sequence_id: int | None = None):
        if not isinstance(codec, FeatureCodec):
            raise TypeError(f"codec must be a FeatureCodec, got {type(codec).__name__}")
        self.fps = _positive(fps, "fps")
        self.bufsize_ms = _positive(bufsize_ms, "bufsize_ms")
        if not 0 < lambda_max <= LAMBDA_GRID[-1]:
            raise QuantizerError(f"lambda_max must be in (0, {LAMBDA_GRID[-1]}], got {lambda_max!r}")
        self.lambdas = np.array([lam for lam in LAMBDA_GRID if lam <= lambda_max], dtype=np.float64)
        q = codec.quantizer
        self.max_levels = q.levels
        self.min_levels = (max(2, math.ceil(0.75 * q.levels)) if min_levels is None else int(min_levels))
        if not 2 <= self.min_levels <= q.levels:
            raise QuantizerError(f"min_levels must be in [2, {q.levels}] (the quantizer's N), got {min_levels!r}")
        self.sequence = SequenceEncoder(codec, refresh_period=refresh_period, temporal=temporal,
                                        carry_state=carry_state, sequence_id=sequence_id)
        self._base = codec
        self.bitrate = 0.0
        self.set_bitrate(bitrate)
        self.fullness = 0.0  # bytes in the buffer after the last frame
        self.floor_bytes = 0.0  # the buffer's size while bufsize cannot hold the cheapest frame (see buffer_bytes)
        self._last_time: float | None = None
        self._complexity: dict[bool, float | None] = {True: None, False: None}  # keyed by intra
        self._curve: dict[bool, np.ndarray | None] = {True: None, False: None}
        self._pressure: list[str] = []  # since the last intra frame: "max" (λ max or skipped), "low", "mid"
        self.keep_levels = False  # set while the target is still searching for the link (see _choose_levels)

    # -- the target -------------------------------------------------------------------------------------------

    def set_bitrate(self, bitrate: float) -> None:
        """A new target (bit/s), from the next frame on: a bandwidth estimate, or the user's."""
        self.bitrate = _positive(bitrate, "bitrate")

    @property
    def buffer_bytes(self) -> float:
        """The buffer's size in bytes: ``bufsize_ms`` at the current bitrate, or, when that cannot hold even the
        cheapest frame (a stream far above the link), ``FLOOR_MARGIN`` × that frame, shrinking back with a
        ``FLOOR_HALF_LIFE_S`` half-life: a frame is sent whole or not at all, so a buffer that holds none would
        send nothing, ever.  The latency bound is then that frame's time on the link (``grown`` says so)."""
        return max(self.bitrate / 8 * self.bufsize_ms / 1e3, self.floor_bytes)

    @property
    def grown(self) -> bool:
        """Whether the buffer is larger than ``bufsize_ms`` (it grew to hold the cheapest frame)."""
        return self.floor_bytes > self.bitrate / 8 * self.bufsize_ms / 1e3

    def refresh(self) -> None:
        """Make the next frame intra (a receiver lost a frame, or a new stream starts)."""
        self.sequence.refresh()

    # -- one frame --------------------------------------------------------------------------------------------

    def encode(self, x, *, at: float | None = None) -> Decision:
        """The next frame under the buffer's constraint; ``at``: its capture time in seconds (any clock, rising),
        else one frame interval after the previous frame."""
        dt = 1.0 / self.fps if at is None or self._last_time is None else max(0.0, at - self._last_time)
        if at is not None:
            self._last_time = at
        elif self._last_time is not None:
            self._last_time += dt
        self.fullness = max(0.0, self.fullness - self.bitrate / 8 * dt)
        self.floor_bytes *= 0.5 ** (dt / FLOOR_HALF_LIFE_S)
        free = self.buffer_bytes - self.fullness
        share = self.bitrate / 8 / self.fps
        target = share + STEER * (self.buffer_bytes / 2 - self.fullness)
        seq = self.sequence
        intra, codec = seq.next_is_intra, seq.codec
        if intra:
            self._choose_levels()
        data, lam = self._encode_fitting(x, intra, self._intra_target(target, free) if intra else
                                         max(0.0, min(target, free)), free)
        if isinstance(data, int) and intra and seq.refresh_due == "period":
            seq.defer_refresh(DEFER_FRAMES)  # no room for an intra frame now: keep predicting, try again later
            if seq.codec is not codec:  # and with the reference's quantizer
                seq.codec = codec
                self._complexity, self._curve = {True: None, False: None}, {True: None, False: None}
            intra = False
            data, lam = self._encode_fitting(x, intra, max(0.0, min(target, free)), free)
        if isinstance(data, int):  # skipped: the size it would have had at λ max
            self._pressure.append("max")
            if intra:  # a start or a refresh asked for that does not fit: fewer levels for the next try
                self._step_levels(-1)
            if data > self.buffer_bytes:  # it could never fit: the buffer grows to hold it (buffer_bytes)
                self.floor_bytes = FLOOR_MARGIN * data
            return Decision(None, intra, lam, seq.codec.quantizer.levels, target, self.fullness, self.buffer_bytes,
                            data)
        self.fullness += len(data)
        self._pressure.append("max" if lam >= self.lambdas[-1] else
                              "low" if lam == 0 and self.fullness < self.buffer_bytes / 4 else "mid")
        return Decision(data, intra, lam, seq.codec.quantizer.levels, target, self.fullness, self.buffer_bytes)

    def _intra_target(self, target: float, free: float) -> float:
        """An intra frame may take the buffer's free half on top of a frame's share."""
        return max(0.0, min(target + max(0.0, self.buffer_bytes / 2 - self.fullness), free))

    def _encode_fitting(self, x, intra: bool, target: float, free: float) -> tuple[bytes | int, float]:
        """(stream, λ) of the frame coded at the smallest λ expected to fit ``target``; (its size at λ max, λ max)
        when even that would overflow the buffer (nothing committed)."""
        # calibrate: the frame at every λ of the grid, choosing from the actual sizes
        if self._curve[intra] is None or self._complexity[intra] is None:
            trials = [self._trial(x, lam) for lam in self.lambdas]
            sizes = np.array([len(data) for data, _ in trials], dtype=np.float64)
            self._curve[intra] = np.minimum.accumulate(sizes) / sizes[0]
            self._complexity[intra] = None
            fits = [i for i, n in enumerate(sizes) if n <= target] or [i for i, n in enumerate(sizes) if n <= free]
            if not fits:
                return int(sizes[-1]), float(self.lambdas[-1])
            i = fits[0]
            (data, pending), lam = trials[i], float(self.lambdas[i])
        else:
            lam = self._lambda_for(intra, target)
            data, pending = self._trial(x, lam)
            if len(data) > free and lam < self.lambdas[-1]:
                lam = float(self.lambdas[-1])
                data, pending = self._trial(x, lam)
            if len(data) > free:
                return len(data), lam
        self.sequence.commit(pending)
        g = float(np.interp(lam, self.lambdas, self._curve[intra]))
        old = self._complexity[intra]
        self._complexity[intra] = len(data) / g if old is None else \
            (1 - COMPLEXITY_WEIGHT) * old + COMPLEXITY_WEIGHT * len(data) / g
        if intra:  # each type re-measures its curve on its first frame after an intra frame
            self._curve = {True: None, False: None}
        return data, lam

    def _lambda_for(self, intra: bool, target: float) -> float:
        """The smallest λ (interpolated over the grid) whose modelled bytes are at most ``target``."""
        c, g = self._complexity[intra], self._curve[intra]
        fine = np.linspace(0.0, self.lambdas[-1], 61)
        fits = c * np.interp(fine, self.lambdas, g) <= target
        return float(fine[np.argmax(fits)]) if fits.any() else float(self.lambdas[-1])

    def _trial(self, x, lam: float):
        """The frame coded at ``lam`` without committing it: (stream, the encoder's pending state)."""
        seq = self.sequence
        codec = seq.codec
        if codec.config.rdo_lambda != lam:
            seq.codec = FeatureCodec(codec.quantizer, config=codec.config.merged(rdo_lambda=lam))
        return seq.encode_pending(x)

    def _choose_levels(self) -> None:
        """At an intra frame: N one level down or up from the frames since the last one (see the docstring).  Not
        down while ``keep_levels`` (a bandwidth estimate still growing from its start: the pressure is the start's,
        not the link's)."""
        q, pressure = self.sequence.codec.quantizer, self._pressure
        self._pressure = []
        if not isinstance(q, UniformQuantizer) or not pressure:
            return
        if pressure.count("max") >= len(pressure) / 2 and not self.keep_levels:
            self._step_levels(-1)
        elif "max" not in pressure and pressure.count("low") >= 0.9 * len(pressure):
            self._step_levels(+1)

    def _step_levels(self, step: int) -> None:
        """N one level down or up (uniform quantizers, within [min_levels, the quantizer's N]), from the next
        frame on (which must be intra: the caller's)."""
        q = self.sequence.codec.quantizer
        n = min(max(q.levels + step, self.min_levels), self.max_levels)
        if not isinstance(q, UniformQuantizer) or n == q.levels:
            return
        base = self._base.quantizer
        new = base if n == base.levels else UniformQuantizer(base.c_min, base.c_max, n)
        self.sequence.codec = FeatureCodec(new, config=self.sequence.codec.config)
        self._complexity = {True: None, False: None}
        self._curve = {True: None, False: None}


def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise QuantizerError(f"{name} must be a positive number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise QuantizerError(f"{name} must be a positive number, got {value!r}")
    return v
