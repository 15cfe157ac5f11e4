"""The batcher's properties, with a fake tail (no model, no network): cloud_app/batcher.py."""

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

grpc = pytest.importorskip("grpc")

from cloud_app.admission import Abort  # noqa: E402
from cloud_app.batcher import TailBatcher  # noqa: E402
from splitcodec.inference import ClassScore, Prediction  # noqa: E402

BOUND_S = 10.0  # every wait in these tests is bounded: a broken batcher fails, it does not hang


class FakeTail:
    """Records every forward pass; answers ``top_k`` classes per request.  ``gate``: forward passes
    wait for it (to hold the tail busy while requests queue); ``fail``: features that raise."""

    def __init__(self, delay=0.0, gate: threading.Event | None = None, fail=()):
        self.split = SimpleNamespace(name="fake")
        self.batches, self.top_ks, self.delay, self.gate, self.fail = [], [], delay, gate, set(fail)
        self.started = threading.Event()
        self.sizes, self.threads, self.running, self.most_running = [], set(), 0, 0
        self._lock = threading.Lock()

    def run(self, features, sizes=None, top_k=5):
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.set()
        self.threads.add(threading.current_thread().name)
        try:
            if self.gate is not None:
                assert self.gate.wait(BOUND_S)
            time.sleep(self.delay)
            self.batches.append(list(features))
            self.sizes.append(list(sizes))
            self.top_ks.append(top_k)
            if self.fail & set(features):
                raise RuntimeError("tail failed")
            return [Prediction([ClassScore(i, str(i), 1.0) for i in range(top_k)], batch_size=len(features),
                               tail_ms=1e3 * self.delay) for _ in features]
        finally:
            with self._lock:
                self.running -= 1


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, BOUND_S))


async def _until(cond):
    while not cond():
        await asyncio.sleep(0.001)


async def _busy(tail: FakeTail, **kw):
    """A started batcher whose tail is busy with a first request, "busy" (held there by ``tail.gate``)."""
    b = TailBatcher(tail, **kw)
    b.start()
    first = asyncio.ensure_future(b.submit("busy", None, 1))
    await _until(tail.started.is_set)
    return b, first


async def _busy_with_one_queued(tail: FakeTail, name: str, **kw):
    """``_busy`` plus one more request, ``name``, queued behind "busy" (its future is returned too)."""
    b, first = await _busy(tail, **kw)
    queued = asyncio.ensure_future(b.submit(name, None, 1))
    await asyncio.sleep(0.01)
    return b, first, queued


def test_batches_hold_at_most_max_batch_and_each_request_gets_its_own_top_k():
    tail = FakeTail(delay=0.02)

    async def scenario():
        b = TailBatcher(tail, max_batch=3, window_ms=50)
        b.start()
        with b.announce(), b.announce(), b.announce(), b.announce():  # four requests still decoding
            out = await asyncio.gather(*[b.submit(i, None, top_k=k) for i, k in enumerate([1, 2, 3, 4, 5, 6, 7])])
        await b.close()
        return out

    out = run(scenario())
    assert max(len(batch) for batch in tail.batches) == 3 and sorted(sum(tail.batches, [])) == list(range(7))
    assert [len(p.classes) for p, _ in out] == [1, 2, 3, 4, 5, 6, 7]  # each request gets its own top_k
    for batch, k in zip(tail.batches, tail.top_ks):
        assert k == max(batch) + 1  # the pass ran for the largest top_k of its batch


def test_max_batch_below_one_means_one():
    tail = FakeTail()

    async def scenario():
        b = TailBatcher(tail, max_batch=0, window_ms=50)
        b.start()
        with b.announce():
            await asyncio.gather(*[b.submit(i, None, 1) for i in range(3)])
        await b.close()

    run(scenario())
    assert tail.batches == [[0], [1], [2]]


def test_a_lone_request_does_not_wait_for_the_window():
    tail = FakeTail()

    async def scenario():
        b = TailBatcher(tail, max_batch=8, window_ms=60_000)  # waiting for the window would time out
        b.start()
        pred, waited_ms = await b.submit("lone", None, 1)
        await b.close()
        return pred, waited_ms

    pred, waited_ms = run(scenario())
    assert tail.batches == [["lone"]] and waited_ms >= 0 and len(pred.classes) == 1


def test_a_request_still_decoding_joins_the_batch_within_the_window():
    tail = FakeTail()

    async def scenario():
        b = TailBatcher(tail, max_batch=8, window_ms=60_000)
        b.start()
        with b.announce():  # another request is decoding: the batch waits for it
            first = asyncio.ensure_future(b.submit("a", None, 1))
            await asyncio.sleep(0.05)
            assert not first.done()  # still waiting for the one being decoded
            second = asyncio.ensure_future(b.submit("b", None, 1))
            await asyncio.sleep(0)
        await asyncio.gather(first, second)
        await b.close()

    run(scenario())
    assert tail.batches == [["a", "b"]]


def test_the_window_bounds_the_wait_for_a_request_that_never_arrives():
    tail = FakeTail()

    async def scenario():
        b = TailBatcher(tail, max_batch=8, window_ms=30)
        b.start()
        with b.announce():  # announced, never submitted
            await b.submit("a", None, 1)
        await b.close()

    run(scenario())
    assert tail.batches == [["a"]]


def test_announce_counts_arrivals_and_a_failed_decode_leaves_the_count_balanced():
    b = TailBatcher(FakeTail(), batching=False)
    with b.announce():
        with b.announce():
            assert b.arriving == 2
        assert b.arriving == 1
    with pytest.raises(ValueError):
        with b.announce():
            raise ValueError("decoding failed")
    assert b.arriving == 0


def test_queued_requests_join_cheapest_connection_first():
    gate = threading.Event()
    tail = FakeTail(gate=gate)

    async def scenario():
        b, first = await _busy(tail, max_batch=1, window_ms=1)
        rest = [asyncio.ensure_future(b.submit(name, None, 1, priority=p))
                for name, p in [("slow", 30.0), ("fast", 1.0), ("mid", 5.0), ("fast2", 1.0)]]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *rest)
        await b.close()

    run(scenario())
    assert tail.batches == [["busy"], ["fast"], ["fast2"], ["mid"], ["slow"]]  # ties in arrival order


def test_callers_that_went_away_are_not_run():
    gate = threading.Event()
    tail = FakeTail(gate=gate)

    async def scenario():
        b, first = await _busy(tail, max_batch=8, window_ms=1)
        gone = asyncio.ensure_future(b.submit("gone", None, 1))
        kept = asyncio.ensure_future(b.submit("kept", None, 1))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, kept)
        await b.close()
        return gone

    gone = run(scenario())
    assert gone.cancelled() and tail.batches == [["busy"], ["kept"]]


def test_a_failing_pass_fails_only_the_request_causing_it_and_the_batcher_goes_on():
    tail = FakeTail(fail={"bad"})

    async def scenario():
        b = TailBatcher(tail, max_batch=8, window_ms=30)
        b.start()
        with b.announce():
            res = await asyncio.gather(b.submit("bad", None, 1), b.submit("ok", None, 3), b.submit("fine", None, 1),
                                       return_exceptions=True)
        after = await b.submit("later", None, 2)
        await b.close()
        return res, after

    res, after = run(scenario())
    assert tail.batches[0] == ["bad", "ok", "fine"]  # the batch failed as a whole ...
    assert tail.batches[1:4] == [["bad"], ["ok"], ["fine"]]  # ... so each request ran alone
    assert isinstance(res[0], RuntimeError)  # the bad request gets its own error
    assert len(res[1][0].classes) == 3 and len(res[2][0].classes) == 1  # its batch-mates their answers
    assert len(after[0].classes) == 2 and tail.batches[-1] == ["later"]


def test_close_fails_what_is_queued_and_refuses_new_requests():
    gate = threading.Event()
    tail = FakeTail(gate=gate)

    async def scenario():
        b, first, queued = await _busy_with_one_queued(tail, "queued", max_batch=1, window_ms=1)
        await b.close()
        gate.set()
        with pytest.raises(Abort) as late:
            await b.submit("late", None, 1)
        res = await asyncio.gather(queued, return_exceptions=True)
        first.cancel()
        return res[0], late.value

    queued_err, late = run(scenario())
    assert isinstance(queued_err, Abort) and queued_err.code == grpc.StatusCode.UNAVAILABLE
    assert late.code == grpc.StatusCode.UNAVAILABLE
    assert queued_err.message == late.message == "server shutting down"
    assert ["queued"] not in tail.batches


def test_without_batching_requests_take_turns_one_per_pass():
    tail = FakeTail()

    async def scenario():
        b = TailBatcher(tail, batching=False)
        b.start()  # no task without batching
        assert b._task is None
        with b.announce():
            out = await asyncio.gather(*[b.submit(i, None, top_k=i + 1) for i in range(4)])
        await b.close()
        return out

    out = run(scenario())
    assert sorted(map(tuple, tail.batches)) == [(0,), (1,), (2,), (3,)]
    assert [len(p.classes) for p, _ in out] == [1, 2, 3, 4]


def test_the_tail_runs_on_one_thread_of_its_own_with_each_requests_size():
    for batching in (True, False):
        tail = FakeTail(delay=0.005)

        async def scenario():
            b = TailBatcher(tail, batching=batching, max_batch=2, window_ms=1)
            b.start()
            await asyncio.gather(*[b.submit(i, (10 + i, 20 + i), 1) for i in range(5)])
            await b.close()

        run(scenario())
        assert tail.most_running == 1 and len(tail.threads) == 1
        assert next(iter(tail.threads)).startswith("tail-fake")
        pairs = [(f, s) for batch, sizes in zip(tail.batches, tail.sizes) for f, s in zip(batch, sizes)]
        assert sorted(pairs) == [(i, (10 + i, 20 + i)) for i in range(5)]


def test_reported_waits_are_the_time_before_the_pass():
    gate = threading.Event()
    tail = FakeTail(gate=gate, delay=0.05)

    async def scenario():
        b, first = await _busy(tail, max_batch=1, window_ms=1)
        t0 = time.perf_counter()
        queued = asyncio.ensure_future(b.submit("queued", None, 1))
        await asyncio.sleep(0.1)
        gate.set()
        (_, waited_first), (_, waited) = await asyncio.gather(first, queued)
        elapsed = 1e3 * (time.perf_counter() - t0)
        await b.close()
        return waited_first, waited, elapsed

    waited_first, waited, elapsed = run(scenario())
    assert 0 <= waited_first < waited  # the queued request waited for the busy pass (>= 100 ms + 50 ms)
    assert 140 <= waited <= elapsed

    tail = FakeTail(delay=0.1)

    async def unbatched():
        b = TailBatcher(tail, batching=False)
        t0 = time.perf_counter()
        _, queue_ms = await b.submit("x", None, 1)
        total = 1e3 * (time.perf_counter() - t0)
        await b.close()
        return queue_ms, total

    queue_ms, total = run(unbatched())
    assert -1 <= queue_ms <= total - 100 + 1  # the time around the pass, not the pass itself


def test_a_batch_whose_callers_all_went_away_does_not_stop_the_batcher():
    gate = threading.Event()
    tail = FakeTail(gate=gate)

    async def scenario():
        b, first, gone = await _busy_with_one_queued(tail, "gone", max_batch=8, window_ms=1)
        gone.cancel()
        await asyncio.sleep(0.01)
        gate.set()
        await first
        await asyncio.sleep(0.01)
        later = await b.submit("later", None, 1)
        await b.close()
        return later

    later = run(scenario())
    assert tail.batches == [["busy"], ["later"]] and len(later[0].classes) == 1


def test_requests_without_a_priority_go_first():
    gate = threading.Event()
    tail = FakeTail(gate=gate)

    async def scenario():
        b, first = await _busy(tail, max_batch=1, window_ms=1)
        rest = [asyncio.ensure_future(b.submit("half", None, 1, priority=0.5)),
                asyncio.ensure_future(b.submit("default", None, 1))]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *rest)
        await b.close()

    run(scenario())
    assert tail.batches == [["busy"], ["default"], ["half"]]


def test_batcher_defaults():
    b = TailBatcher(FakeTail())
    assert (b.max_batch, b.window, b.batching, b.arriving) == (8, 0.002, True, 0)
    assert str(Abort(grpc.StatusCode.UNAVAILABLE, "why")) == "why"


def test_after_a_failed_pass_a_request_whose_caller_left_is_skipped_and_the_rest_still_run():
    gate = threading.Event()
    tail = FakeTail(gate=gate, fail={"bad"})

    async def scenario():
        b = TailBatcher(tail, max_batch=8, window_ms=30)
        b.start()
        with b.announce():
            gone, bad, ok = (asyncio.ensure_future(b.submit(n, None, 1)) for n in ("gone", "bad", "ok"))
            await _until(tail.started.is_set)
        gone.cancel()  # its caller went away while the pass that will fail was running
        gate.set()
        res = await asyncio.wait_for(asyncio.gather(bad, ok, return_exceptions=True), BOUND_S)
        await b.close()
        return res

    res = run(scenario())
    assert tail.batches == [["gone", "bad", "ok"], ["bad"], ["ok"]]
    assert isinstance(res[0], RuntimeError) and len(res[1][0].classes) == 1
