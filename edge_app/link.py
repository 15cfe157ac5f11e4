"""Live links: the stream's bitrate held under the link's (``--bitrate``), the link estimated from the answers
(``--bitrate auto``), and frames too old to be worth sending skipped (``--max-latency-ms``).

The pieces are the library's: :class:`splitcodec.ratecontrol.RateController` chooses each frame's λ and N (or
skips the frame before it is encoded) and :class:`splitcodec.bandwidth.BandwidthEstimator` turns the answers'
timing into its target.  The bound on frames in flight is ``StreamSession``'s (``--max-in-flight``).  Every frame
not sent is counted by why (``skipped`` in the ``--json`` summary).
"""

from __future__ import annotations

import math
import sys
import time

AUTO_START_KBPS = 300.0  # --bitrate auto's first target (WebRTC's start): small frames first, so that the path's
                         # empty-queue round trip is measured before the frames grow (docs/live.md)


def parse_bitrate(text: str) -> tuple[float | None, float]:
    """``--bitrate``: 'KBPS' (a fixed target) -> (kbit/s, kbit/s); 'auto' or 'auto:MAX_KBPS' (the estimator's target,
    at most MAX) -> (None, MAX or inf).  ValueError with one line otherwise."""
    auto, _, ceiling = text.partition(":") if text.startswith("auto") else ("", "", text)
    if auto and auto != "auto":
        raise ValueError(f"--bitrate must be KBPS, 'auto' or 'auto:MAX_KBPS', got {text!r}")
    try:
        value = float(ceiling) if ceiling else math.inf
    except ValueError:
        raise ValueError(f"--bitrate must be KBPS, 'auto' or 'auto:MAX_KBPS', got {text!r}") from None
    if not value > 0 or math.isnan(value) or (not auto and math.isinf(value)):
        raise ValueError(f"--bitrate must be a positive number of kbit/s, got {text!r}")
    return (None, value) if auto else (value, value)


class LinkControl:
    """The live-link state of one run: the rate controller (made on the first frame, over the run's codec), the
    estimator, and the frames skipped by why."""

    def __init__(self, args, fps: float | None):
        self.fixed_kbps, self.max_kbps = parse_bitrate(args.bitrate) if args.bitrate else (None, math.inf)
        self.enabled = bool(args.bitrate)
        self.fps = fps
        self.bufsize_ms = args.bufsize
        self.max_latency_s = args.max_latency_ms / 1e3 if args.max_latency_ms else None
        self.refresh_period = args.refresh_period or None
        self.controller = None
        self.estimator = None
        if self.enabled and self.fixed_kbps is None:
            from splitcodec.bandwidth import BandwidthEstimator

            start = min(AUTO_START_KBPS, self.max_kbps) * 1e3
            self.estimator = BandwidthEstimator(start, fps=fps, min_bps=min(16e3, start), max_bps=self.max_kbps * 1e3)
        self.skipped = {"rate": 0, "stale": 0}
        self.round_trip_s = 0.0  # the last answer's, for the staleness test
        self._warned = False
        self.held_for_slot = 0

    def describe(self) -> dict:
        return {"bitrate_kbps": "auto" if self.estimator else self.fixed_kbps,
                "max_bitrate_kbps": None if math.isinf(self.max_kbps) else self.max_kbps,
                "bufsize_ms": self.bufsize_ms if self.enabled else None, "fps": self.fps,
                "max_latency_ms": None if self.max_latency_s is None else 1e3 * self.max_latency_s}

    @property
    def target_bps(self) -> float | None:
        if not self.enabled:
            return None
        return self.estimator.target if self.estimator else self.fixed_kbps * 1e3

    def sequence(self, codec):
        """The stream's encoder: a rate controller over ``codec`` with --bitrate, else a plain sequence."""
        import splitcodec as sc

        if not self.enabled:
            return sc.SequenceEncoder(codec, refresh_period=self.refresh_period)
        from splitcodec.ratecontrol import RateController

        self.controller = RateController(codec, bitrate=self.target_bps, fps=self.fps, bufsize_ms=self.bufsize_ms,
                                         refresh_period=self.refresh_period)
        return self.controller

    def stale(self, captured: float) -> bool:
        """True (and counted) when a frame captured at ``captured`` (``time.monotonic``) could not be answered
        within --max-latency-ms even if sent now (the last round trip is the guess of how long that takes)."""
        if self.max_latency_s is None or time.monotonic() - captured + self.round_trip_s <= self.max_latency_s:
            return False
        self.skipped["stale"] += 1
        return True

    def encode(self, features, captured: float):
        """(stream, {what the controller chose}) of the next frame, or (None, ...) when the rate controller skipped
        it (counted)."""
        self.controller.set_bitrate(self.target_bps)
        # while the estimate still grows from its start and has met no queue, the pressure is the start's
        self.controller.keep_levels = self.estimator is not None and self.estimator.capacity_bps is None
        d = self.controller.encode(features, at=captured)
        if d.skipped:
            self.skipped["rate"] += 1
        if self.controller.grown and not self._warned:
            self._warned = True
            nominal = self.target_bps / 8 * self.bufsize_ms / 1e3
            print(f"# warning: the cheapest frame of this split is larger than the --bufsize {self.bufsize_ms:g} ms "
                  f"buffer ({nominal:.0f} B at {self.target_bps / 1e3:.0f} kbit/s): the buffer grows to hold one "
                  f"({d.buffer:.0f} B), so each frame takes {8e3 * d.buffer / self.target_bps:.0f} ms of the link; "
                  "raise --bitrate, or send a split with fewer bytes per frame", file=sys.stderr, flush=True)
        return d.data, {"target_kbps": round(self.target_bps / 1e3, 1), "rdo_lambda": round(d.rdo_lambda, 4),
                        "levels": d.levels}

    def sent(self, request_id: str, nbytes: int) -> None:
        if self.estimator:
            self.estimator.sent(request_id, nbytes, time.monotonic())

    def blocked(self) -> None:
        """A frame waited for a slot (--max-in-flight): counted (``held_for_slot``), and told to the estimator."""
        self.held_for_slot += 1
        if self.estimator:
            self.estimator.held()

    def answered(self, request_id: str, round_trip_s: float, server_s: float) -> None:
        self.round_trip_s = round_trip_s
        if self.estimator:
            self.estimator.answered(request_id, time.monotonic(), server_s)

    def forget(self, request_id: str) -> None:
        if self.estimator:
            self.estimator.forget(request_id)
