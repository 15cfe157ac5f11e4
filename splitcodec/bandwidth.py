"""An uplink's bandwidth, estimated from what a sender already sees: when each frame left, its size, when its
answer came back and how long the server spent on it.  No probes, no network code: the edge feeds it and gives
its :attr:`BandwidthEstimator.target` to a :class:`~splitcodec.ratecontrol.RateController`.

The estimator combines a delivery-rate measurement (as BBR does) with a delay signal (as WebRTC's
delay-based congestion control does), adapted to a request/answer stream where only round trips are seen:

* **delivery rate** ``r``: the bytes of the frames answered in the last ``WINDOW_S`` seconds over that window.
  While the link is the bottleneck, answers come back at the link's rate, so ``r`` measures it; while it is not,
  ``r`` is just the rate sent (the sender is *app-limited*), and says nothing about the link.
* **queueing delay** ``q``: each answer's round trip less the server's own time, less the smallest such network
  time of the last ``BASE_WINDOW_S`` seconds (the path with empty queues).  A queue that builds up (in the
  shaper, the TCP send buffer) shows here first.
* **overuse**: ``q`` above ``max(QUEUE_MS, 1.5 frame intervals)`` (one frame's own serialisation at the target
  rate takes up to one interval and is no queue), or the sender had to hold a frame back because its frames in
  flight were at their bound (:meth:`blocked`).  Then the target becomes ``BACKOFF`` × ``r`` — the rate the link
  actually delivered, just under it so that the queue drains — at most once per ``HOLD_S`` seconds (the queue
  needs a round trip or two to show the cut).
* otherwise the target grows by ``GROWTH`` per second (compounded per answer: a 0.25 → 2 Mbit/s step up is found
  in about 3 s, a step down at the next answer), never above ``APP_LIMIT`` × ``r`` (a target far above what is
  sent measures nothing) nor ``max_bps``.

Constants and why:

=================  =======  ===========================================================================
``WINDOW_S``       1.0      enough answers (30 at 30 fps) to smooth per-frame sizes; one second of lag
``BASE_WINDOW_S``  10.0     a route or a server that changes is picked up within ten seconds
``QUEUE_MS``       30.0     above the jitter of a quiet loopback/LAN path and the server's batching wait
``BACKOFF``        0.85     WebRTC's multiplicative decrease: the queue drains at 15 % of the rate
``HOLD_S``         0.5      a cut shows in the round trips after the queue (≤ bufsize) has drained
``GROWTH``         2.0      ×2 per second: fast enough to recover a step up in seconds, slow enough that
                            an overshoot is at most one frame interval's worth of queue
``APP_LIMIT``      1.5      WebRTC's rule: the estimate may not exceed 1.5 × the rate received
=================  =======  ===========================================================================
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["BandwidthEstimator"]

WINDOW_S = 1.0
BASE_WINDOW_S = 10.0
QUEUE_MS = 30.0
BACKOFF = 0.85
HOLD_S = 0.5
GROWTH = 2.0
APP_LIMIT = 1.5


class BandwidthEstimator:
    """The target bitrate (bit/s) for a stream of frames at ``fps``, starting at ``start_bps``, within
    [``min_bps``, ``max_bps``] (see the module docstring).  Times are seconds of one rising clock."""

    def __init__(self, start_bps: float, *, fps: float, min_bps: float = 16e3, max_bps: float = math.inf):
        if not (0 < min_bps <= start_bps <= max_bps):
            raise ValueError(f"need 0 < min_bps <= start_bps <= max_bps, got {min_bps}, {start_bps}, {max_bps}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.target, self.min_bps, self.max_bps, self.fps = float(start_bps), float(min_bps), float(max_bps), fps
        self._sent: dict[str, tuple[float, int]] = {}  # request id -> (send time, bytes)
        self._answers: deque[tuple[float, int]] = deque()  # (answer time, bytes) within WINDOW_S
        self._network: deque[tuple[float, float]] = deque()  # (answer time, network seconds) within BASE_WINDOW_S
        self._last_cut = -math.inf
        self._last_answer: float | None = None
        self._blocked_at = -math.inf
        self.queue_ms = 0.0  # the last answer's queueing delay
        self.delivery_bps = 0.0  # the last delivery-rate measurement

    def sent(self, request_id: str, nbytes: int, t: float) -> None:
        self._sent[request_id] = (t, int(nbytes))

    def blocked(self, t: float) -> None:
        """The sender held a frame back: its frames in flight were at their bound (the link is the bottleneck)."""
        self._blocked_at = t

    def forget(self, request_id: str) -> None:
        """A frame that will not be answered (a stream restarted): it measures nothing."""
        self._sent.pop(request_id, None)

    def answered(self, request_id: str, t: float, server_s: float = 0.0) -> float:
        """An answer came at ``t`` (the server spent ``server_s`` on it): the new target."""
        if request_id not in self._sent:
            return self.target
        t_sent, nbytes = self._sent.pop(request_id)
        network = max(0.0, t - t_sent - server_s)
        self._answers.append((t, nbytes))
        self._network.append((t, network))
        while self._answers and self._answers[0][0] < t - WINDOW_S:
            self._answers.popleft()
        while self._network and self._network[0][0] < t - BASE_WINDOW_S:
            self._network.popleft()
        base = min(n for _, n in self._network)
        self.queue_ms = 1e3 * (network - base)
        span = min(WINDOW_S, t - self._network[0][0]) if len(self._network) > 1 else 0.0
        self.delivery_bps = 8 * sum(b for _, b in self._answers) / span if span > 0.1 else 0.0
        dt = 0.0 if self._last_answer is None else max(0.0, t - self._last_answer)
        self._last_answer = t
        overuse = (self.queue_ms > max(QUEUE_MS, 1.5e3 / self.fps) or t - self._blocked_at < 1.0 / self.fps)
        if overuse and self.delivery_bps > 0:
            if t - self._last_cut >= HOLD_S:
                self.target = BACKOFF * self.delivery_bps
                self._last_cut = t
        elif not overuse:
            grown = self.target * GROWTH ** dt
            limit = APP_LIMIT * self.delivery_bps if self.delivery_bps > 0 else grown
            self.target = min(grown, max(self.target, limit))
        self.target = min(max(self.target, self.min_bps), self.max_bps)
        return self.target
