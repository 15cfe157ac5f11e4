"""Batching one model's tail across concurrent requests (the server's only batching policy).

``TailBatcher`` owns a thread for the tail's forward passes and, with batching on, an asyncio task that
forms batches: at most ``max_batch`` requests, cheapest connection first, waiting up to ``window_ms``
only while other requests are still being decoded (``announce``).  Tested with a fake tail in
``tests/test_batcher.py`` and mutation-tested (``make mutation``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from concurrent import futures

import grpc

from splitcodec.inference import CloudTail, Prediction

from .admission import Abort


class _Job:
    __slots__ = ("features", "size", "top_k", "future", "t_submit", "priority")

    def __init__(self, features, size, top_k, future, priority=0.0):
        self.features, self.size, self.top_k, self.future = features, size, top_k, future
        self.t_submit, self.priority = time.perf_counter(), priority


class TailBatcher:
    """Runs one model's ``CloudTail`` for concurrent requests, on a thread of its own.

    With batching on, a task gathers queued requests into one forward pass of at most ``max_batch``;
    it waits (up to ``window_ms`` after the first) only while other requests are still being decoded
    and about to join, so a lone client pays no batching delay.  With batching off, requests take
    turns.  Queued requests join batches cheapest connection first (``priority``: the expected decode
    time of their connection).  Requests whose caller went away (cancelled, past the deadline) are
    dropped unrun.
    """

    def __init__(self, tail: CloudTail, *, batching: bool = True, max_batch: int = 8, window_ms: float = 2.0):
        self.tail, self.batching = tail, batching
        self.max_batch, self.window = max(1, max_batch), window_ms / 1e3
        self.arriving = 0  # requests being decoded that will be submitted here
        self._executor = futures.ThreadPoolExecutor(1, thread_name_prefix=f"tail-{tail.split.name}")
        self._heap: list = []  # (priority, seq, job)
        self._seq = 0
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closed = False

    def start(self) -> None:
        """Start the batching task (on the running event loop)."""
        if self.batching and self._task is None:
            self._ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def _push(self, job: _Job) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (job.priority, self._seq, job))
        self._ready.set()

    def _pop(self) -> _Job:
        job = heapq.heappop(self._heap)[2]
        if not self._heap:
            self._ready.clear()
        return job

    @contextlib.contextmanager
    def announce(self):
        """Wrap the decoding of a request: while it runs, the batcher may wait for it to join."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    async def submit(self, features, size, top_k, priority: float = 0.0) -> tuple[Prediction, float]:
        """Prediction for one request, and the ms it waited for its batch."""
        if self._closed:
            raise Abort(grpc.StatusCode.UNAVAILABLE, "server shutting down")
        loop = asyncio.get_running_loop()
        job = _Job(features, size, top_k, loop.create_future(), priority)
        if not self.batching:
            preds = await loop.run_in_executor(self._executor, self.tail.run, [features], [size], top_k)
            return preds[0], 1e3 * (time.perf_counter() - job.t_submit) - preds[0].tail_ms
        self._push(job)
        return await job.future

    async def _loop(self):
        while True:
            await self._ready.wait()
            batch = [self._pop()]
            deadline = time.perf_counter() + self.window
            while len(batch) < self.max_batch:
                if self._heap:
                    batch.append(self._pop())
                    continue
                if self.arriving == 0 or time.perf_counter() >= deadline:
                    break
                await asyncio.sleep(0.0005)  # a request is still decoding: give it a moment to join
            batch = [j for j in batch if not j.future.done()]  # callers that went away
            if not batch:
                continue
            start = time.perf_counter()
            try:
                preds = await self._run(batch)
            except Exception:  # noqa: BLE001 - one request's failure must not be its batch-mates'
                await self._run_alone(batch, start)
                continue
            for j, p in zip(batch, preds):
                self._answer(j, p, start)

    async def _run(self, batch: list[_Job]) -> list[Prediction]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.tail.run, [j.features for j in batch],
                                          [j.size for j in batch], max(j.top_k for j in batch))

    async def _run_alone(self, batch: list[_Job], start: float) -> None:
        """After a failed batch: each request on its own, so the error reaches only the requests causing it."""
        for j in batch:
            if j.future.done():
                continue
            try:
                (p,) = await self._run([j])
            except Exception as e:  # noqa: BLE001 - this request's own error
                if not j.future.done():
                    j.future.set_exception(e)
                continue
            self._answer(j, p, start)

    @staticmethod
    def _answer(j: _Job, p: Prediction, start: float) -> None:
        p.classes = p.classes[: j.top_k]
        if not j.future.done():
            j.future.set_result((p, 1e3 * (start - j.t_submit)))

    async def close(self) -> None:
        """Fail whatever is queued (UNAVAILABLE) and stop; nothing waits forever."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            while self._heap:
                j = self._pop()
                if not j.future.done():
                    j.future.set_exception(Abort(grpc.StatusCode.UNAVAILABLE, "server shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)
