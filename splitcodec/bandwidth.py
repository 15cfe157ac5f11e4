"""An uplink's bandwidth, estimated from what a sender already sees: when each frame left, its size, when its
answer came back and how long the server held it.  No probes, no network code: the edge feeds it and gives its
:attr:`BandwidthEstimator.target` to a :class:`~splitcodec.ratecontrol.RateController`.

Only round trips are seen, so each answer is first reduced to the frame's *network time*: the round trip less the
server's own time (queue, decode, tail: ``InferResponse.timings``).  The smallest network time of the last
``BASE_WINDOW_S`` seconds is the path with empty queues (``base``; the estimator starts small, as WebRTC does, so
that ``base`` is measured on small frames), and ``q`` = network time − ``base`` − the frame's own time on a link
at the target rate (bytes / target: a large frame is not a congested link) is the frame's queueing delay.
The **delivery rate** ``r`` is the bytes answered in the last ``WINDOW_S`` over that window: while the link is the
bottleneck, answers come back at its rate, so ``r`` measures it; while it is not, ``r`` is just the rate sent.

* **overuse**: ``q`` above ``max(QUEUE_MS, 1.5 frame intervals)`` — frames waiting behind each other — or, when
  the sender had to hold a frame back for its bound on frames in flight since the last answer (:meth:`held`),
  ``q`` above ``HELD_QUEUE`` of a frame interval: that bound keeps the queue short, so a held sender *and* a
  queue mean the link is the limit (held with no queue means a slow server, which a smaller stream would not
  help).  Then the target becomes ``BACKOFF`` × ``r`` — just under what the link delivered, so that the queue
  drains — at most once per ``HOLD_S``, and ``r`` is remembered as the link's capacity.
* otherwise the target grows: by ``NEAR_GROWTH`` per second while it is above ``NEAR`` × the capacity last seen
  (for ``CAPACITY_TTL_S``) — WebRTC's slow increase near the last congestion point, so that the target spends its
  time just under the link rather than swinging around it — and by ``GROWTH`` per second otherwise (far below it,
  or ``FORGET`` past it with no queue: the link got faster).  Growth is compounded per answer and never above
  ``APP_LIMIT`` × ``r`` (a target far above what is sent measures nothing) nor ``max_bps``.

Constants and why:

=================  =======  ===========================================================================
``WINDOW_S``       1.0      enough answers (up to 30 at 30 fps) to smooth per-frame sizes; one second of lag
``BASE_WINDOW_S``  10.0     a route or a server that changes is picked up within ten seconds
``QUEUE_MS``       30.0     above the jitter of a quiet loopback/LAN path and the server's batching wait
``HELD_QUEUE``     0.5      half a frame interval: more than a jittery path, less than one frame waiting
``BACKOFF``        0.85     WebRTC's multiplicative decrease: the queue drains at 15 % of the rate
``HOLD_S``         0.5      a cut shows in the round trips after the queue (≤ the bottleneck's) drained
``GROWTH``         2.0      ×2 per second far from the link: a step up is found in seconds
``NEAR``           0.8      "near the capacity last seen": from just under the cut's 0.85 on
``NEAR_GROWTH``    1.15     +15 % per second near it: from a cut back to the link in about 1.2 s, so the
                            target's mean is about 0.92 × the link
``CAPACITY_TTL_S`` 10.0     a capacity older than this is forgotten (the link may have changed)
``FORGET``         1.25     ... and one 25 % below a target that met no queue (1.6 s of near growth: time for
                            a queue to show if the link did not change)
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
HELD_QUEUE = 0.5
BACKOFF = 0.85
HOLD_S = 0.5
GROWTH = 2.0
NEAR = 0.8
NEAR_GROWTH = 1.15
CAPACITY_TTL_S = 10.0
FORGET = 1.25
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
        self._held = False  # the sender held a frame back since the last answer
        self.capacity_bps: float | None = None  # the delivery rate at the last overuse
        self._capacity_at = -math.inf
        self.queue_ms = 0.0  # the last answer's queueing delay
        self.delivery_bps = 0.0  # the last delivery-rate measurement

    def sent(self, request_id: str, nbytes: int, t: float) -> None:
        self._sent[request_id] = (t, int(nbytes))

    def held(self) -> None:
        """The sender held a frame back: its frames in flight were at their bound."""
        self._held = True

    def forget(self, request_id: str) -> None:
        """A frame that will not be answered (a stream restarted): it measures nothing."""
        self._sent.pop(request_id, None)

    def answered(self, request_id: str, t: float, server_s: float = 0.0) -> float:
        """An answer came at ``t`` (the server held the frame ``server_s``): the new target."""
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
        # the frame's own time on a link at the target rate is no queue (a large frame is not a congested link)
        own = 8 * nbytes / self.target
        self.queue_ms = 1e3 * max(0.0, network - own - min(n for _, n in self._network))
        span = min(WINDOW_S, t - self._network[0][0]) if len(self._network) > 1 else 0.0
        self.delivery_bps = 8 * sum(b for _, b in self._answers) / span if span > 0.1 else 0.0
        dt = 0.0 if self._last_answer is None else max(0.0, t - self._last_answer)
        self._last_answer = t
        interval_ms = 1e3 / self.fps
        overuse = (self.queue_ms > max(QUEUE_MS, 1.5 * interval_ms)
                   or (self._held and self.queue_ms > HELD_QUEUE * interval_ms))
        self._held = False
        if overuse and self.delivery_bps > 0:
            if t - self._last_cut >= HOLD_S:
                self.target = min(self.target, BACKOFF * self.delivery_bps)
                self.capacity_bps, self._capacity_at = self.delivery_bps, t
                self._last_cut = t
        elif not overuse:
            self._grow(t, dt)
        self.target = min(max(self.target, self.min_bps), self.max_bps)
        return self.target

    def _grow(self, t: float, dt: float) -> None:
        capacity = self.capacity_bps if t - self._capacity_at < CAPACITY_TTL_S else None
        if capacity is not None and self.target > FORGET * capacity:
            capacity = self.capacity_bps = None  # past the old capacity with no queue: the link got faster
        near = capacity is not None and self.target >= NEAR * capacity
        grown = self.target * (NEAR_GROWTH if near else GROWTH) ** dt
        limit = APP_LIMIT * self.delivery_bps if self.delivery_bps > 0 else grown
        self.target = min(grown, max(self.target, limit))
