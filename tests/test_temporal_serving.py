"""Temporal coding through the server: a frame is answered from its own reference or refused, never from a
wrong one; after a lost or refused frame the edge's refresh brings answers back at the next frame."""

import queue

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
torch = pytest.importorskip("torch")

import splitcodec as sc  # noqa: E402
from cloud_app.admission import Limits  # noqa: E402
from cloud_app.server import create_server, shutdown  # noqa: E402
from cloud_app.specs import ModelSpec, load_tails  # noqa: E402
from splitcodec.datasets import shipped_photos  # noqa: E402
from splitcodec.models import default_operating_point  # noqa: E402
from splitcodec.wire import pb, rpc  # noqa: E402

MODEL = "efficientnet_lite0"


@pytest.fixture(scope="module")
def tail():
    (t,) = load_tails([ModelSpec(MODEL)]).values()
    return t


@pytest.fixture(scope="module")
def video(tail):
    """Split tensors of a slow pan over a photo: 24 frames, the crop moving 3 px a frame."""
    img = np.asarray(shipped_photos(("chelsea",))[0][1])
    crops = [img[20:20 + 260, 3 * i:3 * i + 260] for i in range(24)]
    with torch.no_grad():
        return [tail.split.head(tail.split.preprocess(c)[None])[0].numpy() for c in crops]


@pytest.fixture(scope="module")
def codec():
    n, clip = default_operating_point(MODEL)
    return sc.FeatureCodec(sc.UniformQuantizer(*clip, n))


def _server(tail, **limits):
    srv, port, service = create_server("127.0.0.1:0", {(MODEL, tail.split.split): tail},
                                       limits=Limits(**limits) if limits else None)
    return srv, f"127.0.0.1:{port}", service


@pytest.fixture(scope="module")
def server(tail):
    srv, address, service = _server(tail)
    yield address, service
    shutdown(srv, service, grace=1)


class Lockstep:
    """One InferStream, a frame sent and its answer read before the next (as a camera at its frame rate)."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address)
        self.q = queue.Queue()
        self.call = rpc.SplitInferenceStub(self.channel).InferStream(iter(self.q.get, None), timeout=120)

    def send(self, data, rid):
        self.q.put(pb.InferRequest(bitstream=data, model=MODEL, request_id=rid, top_k=5))
        return next(self.call)

    def close(self):
        self.q.put(None)
        list(self.call)
        self.channel.close()


def _expected(tail, codec, idx):
    """The answer for a frame decoded against the right reference: the tail on the encoder's reconstruction."""
    (pred,) = tail.run([codec.quantizer.dequantize(idx).reshape(tail.feature_shape)], top_k=5)
    return [(c.index, c.score) for c in pred.classes]


def _answer(resp):
    return [(c.index, c.score) for c in resp.classes]


def _same(got, want):
    return [i for i, _ in got] == [i for i, _ in want] and np.allclose([s for _, s in got], [s for _, s in want],
                                                                       atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dropped_and_reordered_frames_never_get_an_answer_from_a_wrong_reference(server, tail, codec, video, seed):
    """The client does not react: frames are dropped, swapped and repeated at random; every answer the server
    gives must be the one the frame's own reference gives, and every other frame is FAILED_PRECONDITION."""
    rng = np.random.default_rng(seed)
    enc = sc.SequenceEncoder(codec, refresh_period=8)
    coded = [enc.encode(f, return_indices=True) for f in video]
    order = []
    for i in range(len(coded)):
        r = rng.random()
        if r < 0.2:
            continue  # lost
        if r < 0.35 and order:
            order.insert(len(order) - 1, i)  # arrives before the one sent last
        else:
            order.append(i)
        if rng.random() < 0.1:
            order.append(i)  # sent twice
    s = Lockstep(server[0])
    answered, refused = 0, 0
    try:
        for i in order:
            data, idx = coded[i]
            resp = s.send(data, f"{i}")
            if resp.error.code:
                assert resp.error.code == "FAILED_PRECONDITION", resp.error.message
                assert "ReferenceFrameError" in resp.error.message
                refused += 1
            else:
                assert _same(_answer(resp), _expected(tail, codec, idx)), f"frame {i} answered from a wrong reference"
                answered += 1
    finally:
        s.close()
    assert answered and refused  # the pattern exercised both outcomes


def test_after_a_loss_answers_resume_at_the_next_frame(server, tail, codec, video):
    """The edge's rule (refresh after any unanswered frame): a lost frame costs the frame after it, and the one
    after that is an intra frame, answered."""
    enc = sc.SequenceEncoder(codec, refresh_period=None)
    lost = {3, 9, 10, 17}
    s = Lockstep(server[0])
    outcome = []
    try:
        for i, f in enumerate(video):
            data, idx = enc.encode(f, return_indices=True)
            if i in lost:
                outcome.append("lost")
                continue
            resp = s.send(data, str(i))
            if resp.error.code:
                assert resp.error.code == "FAILED_PRECONDITION"
                enc.refresh()
                outcome.append("refused")
            else:
                assert _same(_answer(resp), _expected(tail, codec, idx))
                outcome.append("intra" if not sc.decode_header(data).predicted else "predicted")
    finally:
        s.close()
    for i, o in enumerate(outcome):
        if o == "refused":
            assert outcome[i - 1] == "lost" and outcome[i + 1] == "intra", outcome
    assert outcome.count("refused") == 3 and outcome.count("predicted") >= 12, outcome


def test_a_refused_frame_makes_the_next_one_intra_and_streams_free_their_reference(tail, codec, video):
    srv, address, service = _server(tail, max_sequences=1)
    try:
        first, second = Lockstep(address), Lockstep(address)
        a = sc.SequenceEncoder(codec)
        b = sc.SequenceEncoder(codec)
        for f in video[:3]:
            assert not first.send(a.encode(f), "a").error.code
        assert service.sequences == 1
        # the second stream holds no reference (the limit is 1): its intra frames are answered, its predicted
        # frames refused, and with the edge's rule every frame after a refusal is intra again
        outcome = []
        for f in video[:4]:
            resp = second.send(b.encode(f), "b")
            outcome.append(resp.error.code or "OK")
            if resp.error.code:  # the refusal names the limit, not the rule for single calls
                assert "--max-sequences" in resp.error.message and "single calls" not in resp.error.message
                b.refresh()
        assert outcome == ["OK", "FAILED_PRECONDITION", "OK", "FAILED_PRECONDITION"]
        first.close()
        second.close()
        third = Lockstep(address)
        c = sc.SequenceEncoder(codec)
        assert [third.send(c.encode(f), "c").error.code for f in video[:3]] == ["", "", ""]
        third.close()
    finally:
        shutdown(srv, service, grace=1)
    assert service.sequences == 0


def test_unary_infer_takes_intra_frames_only(server, codec, video):
    enc = sc.SequenceEncoder(codec)
    intra, predicted = enc.encode(video[0]), enc.encode(video[1])
    ch = grpc.insecure_channel(server[0])
    stub = rpc.SplitInferenceStub(ch)
    assert stub.Infer(pb.InferRequest(bitstream=intra, model=MODEL), timeout=30).classes
    with pytest.raises(grpc.RpcError) as e:
        stub.Infer(pb.InferRequest(bitstream=predicted, model=MODEL), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "InferStream" in e.value.details()
    ch.close()


def test_shutdown_ends_open_streams_after_their_frame_instead_of_holding_the_grace(tail, codec, video):
    """A stream that is waiting for its next frame when the server stops is told UNAVAILABLE ("shutting down")
    at once, so its client resumes elsewhere; it is not kept open until the grace runs out and then cancelled."""
    import threading

    srv, address, service = _server(tail)
    stream = Lockstep(address)
    enc = sc.SequenceEncoder(codec)
    assert not stream.send(enc.encode(video[0]), "a").error.code  # answered; the stream now waits for a frame
    stopper = threading.Thread(target=shutdown, args=(srv, service, 30.0))
    stopper.start()
    with pytest.raises(grpc.RpcError) as e:
        next(stream.call)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in e.value.details()
    stopper.join(timeout=60)
    assert not stopper.is_alive() and service.sequences == 0
    stream.channel.close()
