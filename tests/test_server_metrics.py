"""The server's Prometheus endpoint (--metrics-port), scraped while requests run: counters move by what was
answered and refused, the stage histograms fill, the sequences gauge follows an open stream."""

import threading
import urllib.request

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("torch")
parser = pytest.importorskip("prometheus_client.parser")

import splitcodec as sc  # noqa: E402
from cloud_app.server import create_server, shutdown  # noqa: E402
from cloud_app.specs import ModelSpec, load_tails  # noqa: E402
from edge_app.client import EdgeClient  # noqa: E402
from splitcodec.datasets import shipped_photos  # noqa: E402
from splitcodec.inference import EdgeEncoder  # noqa: E402
from splitcodec.wire import pb  # noqa: E402

from .test_newcomer import one_line, run  # noqa: E402


@pytest.fixture(scope="module")
def served():
    tails = load_tails([ModelSpec("efficientnet_lite0")])
    (tail,) = tails.values()
    handle, port, service = create_server("127.0.0.1:0", tails, metrics_address=("127.0.0.1", 0))
    enc = EdgeEncoder(tail.split, sc.FeatureCodec(sc.UniformQuantizer(0.0, 5.0, 8)))
    frames = [enc.encode(img) for _, img in shipped_photos(("coffee", "chelsea", "astronaut"))]
    yield f"127.0.0.1:{port}", service, frames
    shutdown(handle, grace=1)


def scrape(service) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def _req(frame, rid):
    return pb.InferRequest(bitstream=frame.bitstream, model="efficientnet_lite0", request_id=rid,
                           original_size=pb.ImageSize(width=frame.original_size[0], height=frame.original_size[1]))


def test_counters_histograms_and_gauges_follow_the_requests(served):
    address, service, frames = served
    before = scrape(service)

    def moved(after, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    with EdgeClient(address) as client:
        for i, f in enumerate(frames):
            client.infer(_req(f, f"u{i}"))
        bad = _req(frames[0], "bad")
        bad.bitstream = b"not a stream"
        with pytest.raises(grpc.RpcError):
            client.infer(bad)
        during, answered = {}, threading.Event()

        def requests():
            yield _req(frames[0], "s0")
            assert answered.wait(30)
            during.update(scrape(service))  # a stream holds its sequence slot: scraped while it runs
            yield _req(frames[1], "s1")

        for resp in client.stream(requests(), timeout=60):
            answered.set()
    after = scrape(service)
    assert moved(after, "splitcodec_requests_total", method="Infer", status="OK") == 3
    assert moved(after, "splitcodec_requests_total", method="Infer", status="INVALID_ARGUMENT") == 1
    assert moved(after, "splitcodec_refusals_total", reason="INVALID_ARGUMENT") == 1
    assert moved(after, "splitcodec_requests_total", method="InferStream", status="OK") == 2
    assert during[("splitcodec_sequences_held", ())] == 1 and after[("splitcodec_sequences_held", ())] == 0
    for stage in ("queue", "decode", "tail", "total"):
        assert moved(after, "splitcodec_stage_seconds_count", stage=stage) == 5
    assert moved(after, "splitcodec_stage_seconds_sum", stage="tail") > 0
    assert moved(after, "splitcodec_stage_seconds_sum", stage="total") >= moved(after, "splitcodec_stage_seconds_sum",
                                                                                stage="tail")
    sent = sum(len(f.bitstream) for f in frames) + len(frames[0].bitstream) + len(frames[1].bitstream)
    assert moved(after, "splitcodec_bitstream_bytes_total") == sent
    assert moved(after, "splitcodec_batch_size_count") == 5


def test_the_metrics_port_is_refused_when_it_is_the_grpc_port():
    one_line(run("cloud_app", "--port", "50999", "--metrics-port", "50999"), 2, "is the gRPC --port")
