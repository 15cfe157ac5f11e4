"""The edge and cloud apps over real gRPC on loopback (port 0, in-process server)."""

import concurrent.futures as cf
import json
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
torch = pytest.importorskip("torch")

import splitcodec as sc  # noqa: E402
from cloud_app.server import create_server, shutdown  # noqa: E402
from cloud_app.specs import ModelSpec, load_tails  # noqa: E402
from splitcodec.wire import rpc  # noqa: E402
from edge_app.client import EdgeClient, ServerUnreachable  # noqa: E402
from splitcodec.datasets import shipped_photos  # noqa: E402
from splitcodec.inference import EdgeEncoder  # noqa: E402
from splitcodec.models import default_operating_point  # noqa: E402
from splitcodec.wire import pb  # noqa: E402

from .conftest import slow_tail  # noqa: E402
from .streams import resign  # noqa: E402


@pytest.fixture(scope="module")
def tails():
    return load_tails([ModelSpec("efficientnet_lite0")])


@pytest.fixture(scope="module")
def encoder(tails):
    (tail,) = tails.values()
    n, clip = default_operating_point("efficientnet_lite0")
    return EdgeEncoder(tail.split, sc.FeatureCodec(sc.UniformQuantizer(*clip, n)))


@pytest.fixture(scope="module")
def frames(encoder):
    return {name: encoder.encode(img) for name, img in shipped_photos()}


@pytest.fixture(scope="module")
def server(tails):
    srv, port, service = create_server("127.0.0.1:0", tails, max_message_bytes=1 << 20)
    yield f"127.0.0.1:{port}", service
    shutdown(srv, service, grace=1)


def _req(frame, rid="r", **kw):
    return pb.InferRequest(bitstream=frame.bitstream, model="efficientnet_lite0", request_id=rid,
                           original_size=pb.ImageSize(width=frame.original_size[0], height=frame.original_size[1]), **kw)


def _stub(address):
    ch = grpc.insecure_channel(address)
    return ch, rpc.SplitInferenceStub(ch)


def test_real_round_trip_predicts_the_photo(server, frames):
    ch, stub = _stub(server[0])
    with ch:
        r = stub.Infer(_req(frames["chelsea"], "cat-1"), timeout=30)
        assert r.request_id == "cat-1" and r.classes[0].index == 285 and r.classes[0].name == "Egyptian cat"
        assert r.elements == 672 * 14 * 14 and r.bitstream_bytes == len(frames["chelsea"].bitstream)
        assert r.timings.tail_ms > 0 and r.timings.batch_size >= 1
        assert stub.Infer(_req(frames["coffee"]), timeout=30).classes[0].index == 967


def _code(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code()


def test_bad_streams_are_invalid_argument_and_the_server_keeps_serving(server, frames):
    good = frames["rocket"]
    hs = sc.decode_header(good.bitstream).size
    other_shape = sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4)).encode(np.zeros((10, 14, 14), np.float32))
    bad = {
        "garbage": b"\x13\x37" * 50,
        "truncated": good.bitstream[:-10],
        "resigned truncation": resign(good.bitstream[:-10], hs),
        "bit flip": good.bitstream[:40] + bytes([good.bitstream[40] ^ 4]) + good.bitstream[41:],
        "wrong shape": other_shape,
        "empty": b"",
    }
    ch, stub = _stub(server[0])
    with ch:
        for name, data in bad.items():
            req = _req(good)
            req.bitstream = data
            assert _code(lambda: stub.Infer(req, timeout=30)) == grpc.StatusCode.INVALID_ARGUMENT, name
            assert stub.Infer(_req(good), timeout=30).classes[0].index == 657, f"after {name}"


def test_not_found_and_resource_exhausted(server, frames):
    ch, stub = _stub(server[0])
    with ch:
        req = _req(frames["rocket"])
        req.model = "resnet50"
        assert _code(lambda: stub.Infer(req, timeout=30)) == grpc.StatusCode.NOT_FOUND
        req = _req(frames["rocket"], split="blocks.3.expand")
        assert _code(lambda: stub.Infer(req, timeout=30)) == grpc.StatusCode.NOT_FOUND
        req = _req(frames["rocket"])
        req.bitstream = b"\x00" * (2 << 20)  # over the server's 1 MiB limit
        assert _code(lambda: stub.Infer(req, timeout=30)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        from splitcodec import bitstream as bs
        h = bs.Header(1, bs.QUANTIZER_UNIFORM, 4, (1 << 16, 1 << 16, 1 << 8), clip=(0.0, 1.0))
        req.bitstream = bs.write_header(h, b"\0\0\0\0") + b"\0\0\0\0"  # declares 2^40 elements
        assert _code(lambda: stub.Infer(req, timeout=30)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.Infer(_req(frames["rocket"]), timeout=30).classes


def test_health_reflection_and_list_models(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    ch, stub = _stub(server[0])
    with ch:
        h = health_pb2_grpc.HealthStub(ch)
        for svc in ("", "splitcodec.v1.SplitInference"):
            assert h.Check(health_pb2.HealthCheckRequest(service=svc), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        (resp,) = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        assert "splitcodec.v1.SplitInference" in {s.name for s in resp.list_services_response.service}
        lm = stub.ListModels(pb.ListModelsRequest(), timeout=10)
        assert lm.bitstream_format_version == 1 and lm.models[0].name == "efficientnet_lite0"
        assert list(lm.models[0].splits[0].shape) == [672, 14, 14] and lm.models[0].default_split == "blocks.11.expand"
        from splitcodec.wire import identity_from_message

        served = identity_from_message(lm.models[0].identity)  # what is served, weights fingerprint included
        assert served == server[1].batchers[("efficientnet_lite0", "blocks.11.expand")].tail.identity
        assert served.weights == "DEFAULT" and len(served.weights_fingerprint) == 16


def test_a_frame_from_another_head_is_failed_precondition_never_a_prediction(server, frames):
    """The server compares each request's head identity with its tail's: another split's, other weights' or
    another preprocessing's features are refused naming both; a request without one gets the shape checks."""
    import dataclasses

    from splitcodec.wire import identity_message

    tail = server[1].batchers[("efficientnet_lite0", "blocks.11.expand")].tail.identity
    ch, stub = _stub(server[0])
    with ch:
        assert stub.Infer(_req(frames["coffee"], head=identity_message(tail)), timeout=30).classes[0].index == 967
        for other in (dataclasses.replace(tail, weights="random", weights_fingerprint="0123456789abcdef"),
                      dataclasses.replace(tail, preprocess={"kind": "darknet", "size": 224})):
            with pytest.raises(grpc.RpcError) as e:
                stub.Infer(_req(frames["coffee"], head=identity_message(other)), timeout=30)
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "does not match this server's tail" in e.value.details()
        bad = identity_message(tail)
        bad.preprocess = "{not json"
        with pytest.raises(grpc.RpcError) as e:
            stub.Infer(_req(frames["coffee"], head=bad), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stub.Infer(_req(frames["coffee"]), timeout=30).classes[0].index == 967  # no identity: checks of old


def test_a_streams_head_identity_holds_for_its_frames_that_carry_none(server, frames):
    """On a stream, a frame without a head identity is checked against the last one the stream sent (edge_app
    sends it once per stream): a stream that opened with another deployment's head is refused frame by frame."""
    import dataclasses

    from splitcodec.wire import identity_message

    tail = server[1].batchers[("efficientnet_lite0", "blocks.11.expand")].tail.identity
    other = identity_message(dataclasses.replace(tail, weights="random", weights_fingerprint="0123456789abcdef"))
    with EdgeClient(server[0]) as client:
        good = list(client.stream(iter([_req(frames["coffee"], "a", head=identity_message(tail)),
                                        _req(frames["coffee"], "b")]), timeout=60))
        bad = list(client.stream(iter([_req(frames["coffee"], "c", head=other), _req(frames["coffee"], "d"),
                                       _req(frames["coffee"], "e", head=identity_message(tail))]), timeout=60))
    assert [r.classes[0].index for r in good] == [967, 967]
    assert [r.error.code for r in bad] == ["FAILED_PRECONDITION", "FAILED_PRECONDITION", ""]
    assert bad[2].classes[0].index == 967  # a new head on the stream replaces the old one


def test_stream_keeps_order_and_ids_and_survives_a_bad_frame(server, frames):
    names = list(frames)
    reqs = [_req(frames[n], f"{i}-{n}") for i, n in enumerate(names)]
    reqs[3].bitstream = b"not a stream"
    with EdgeClient(server[0]) as client:
        out = list(client.stream(iter(reqs), timeout=60))
    assert [r.request_id for r in out] == [r.request_id for r in reqs]
    assert out[3].error.code == "INVALID_ARGUMENT" and not out[3].classes
    assert out[0].classes[0].index == 285 and all(r.classes for i, r in enumerate(out) if i != 3)


def test_auth(tails, frames):
    srv, port, service = create_server("127.0.0.1:0", tails, token="s3cret")
    try:
        addr = f"127.0.0.1:{port}"
        for token in (None, "wrong"):
            with EdgeClient(addr, token=token, retries=0) as c:
                with pytest.raises(grpc.RpcError) as e:
                    c.infer(_req(frames["coffee"]))
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with EdgeClient(addr, token="s3cret") as c:
            assert c.infer(_req(frames["coffee"])).classes[0].index == 967
    finally:
        shutdown(srv, service, grace=1)


def test_load_and_faults_eight_clients(server, frames):
    """8 concurrent clients, 240 requests, 10 % corrupted: every valid one answered
    with the same class as the in-process pipeline, every corrupted one INVALID_ARGUMENT."""
    (tail,) = [b.tail for b in server[1].batchers.values()]
    expected = {n: tail.run([tail.decode(f.bitstream)[0]])[0].classes[0].index for n, f in frames.items()}
    names = list(frames)
    rng = np.random.default_rng(0)
    corrupt = set(rng.choice(240, 24, replace=False).tolist())
    requests = []
    for i in range(240):
        req = _req(frames[names[i % len(names)]], f"{i}")
        if i in corrupt:
            b = bytearray(req.bitstream)
            b[rng.integers(4, len(b))] ^= 0xFF
            req.bitstream = bytes(b)
        requests.append(req)
    results = {}

    def work(i):
        name, req = names[i % len(names)], requests[i]
        try:
            r = client.infer(req)
            return i, "OK", r.classes[0].index, name, r.request_id
        except grpc.RpcError as e:
            return i, e.code().name, None, name, None

    with EdgeClient(server[0], timeout=60) as client, cf.ThreadPoolExecutor(8) as pool:
        for i, status, cls, name, rid in pool.map(work, range(240)):
            results[i] = (status, cls, name, rid)
    assert len(results) == 240  # none lost
    for i, (status, cls, name, rid) in results.items():
        if i in corrupt:
            assert status == "INVALID_ARGUMENT", (i, status)
        else:
            assert status == "OK" and cls == expected[name] and rid == str(i), (i, status)
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ch = grpc.insecure_channel(server[0])
    with ch:
        st = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert st == health_pb2.HealthCheckResponse.SERVING


def test_batching_groups_concurrent_requests(tails, frames):
    srv, port, service = create_server("127.0.0.1:0", tails, batching=True, max_batch=8, batch_window_ms=50)
    try:
        with EdgeClient(f"127.0.0.1:{port}", timeout=60) as c, cf.ThreadPoolExecutor(8) as pool:
            sizes = list(pool.map(lambda i: c.infer(_req(frames["coffee"], str(i))).timings.batch_size, range(8)))
        assert max(sizes) > 1
    finally:
        shutdown(srv, service, grace=1)


def test_graceful_shutdown_finishes_in_flight_requests(tails, frames, monkeypatch):
    srv, port, service = create_server("127.0.0.1:0", tails, batching=False)
    slow_tail(monkeypatch, service, 1.0)
    client = EdgeClient(f"127.0.0.1:{port}", timeout=30, retries=0)
    fut = cf.ThreadPoolExecutor(1).submit(client.infer, _req(frames["coffee"]))
    time.sleep(0.3)
    threading.Thread(target=shutdown, args=(srv, service, 5.0)).start()
    assert fut.result(timeout=30).classes[0].index == 967
    client.close()
    time.sleep(0.5)
    with EdgeClient(f"127.0.0.1:{port}", timeout=2, retries=0, retry_for=0) as gone:
        with pytest.raises((grpc.RpcError, ServerUnreachable)):
            gone.infer(_req(frames["coffee"]))


def test_edge_cli_against_the_server(server, capsys):
    from edge_app.cli import main

    assert main(["--server", server[0], "--photos", "--json", "--top-k", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    header, rows, summary = lines[0]["header"], lines[1:-1], lines[-1]["summary"]
    assert (header["model"], header["split"], header["server"]) == ("efficientnet_lite0", "blocks.11.expand", server[0])
    assert header["identity"]["weights"] == "DEFAULT" and len(header["identity"]["weights_fingerprint"]) == 16
    assert [r["frame"] for r in rows][:2] == ["chelsea", "coffee"]
    assert rows[0]["predictions"][0]["name"] == "Egyptian cat" and len(rows[0]["predictions"]) == 2
    assert summary["frames"] == 8 and summary["errors"] == 0
    assert summary["vs_float32"] > 10 and summary["mean_input_jpeg90_bytes"] > 0 and summary["round_trip_ms_p95"] > 0


def test_edge_cli_task_aware_quantizer_file(server, capsys, tmp_path):
    """A quantizer file's RDO λ, look-ahead, error feedback and channel weights reach the edge encoder."""
    import splitcodec as sc
    from edge_app.cli import main
    from splitcodec import models
    from splitcodec.quantizer_file import save_quantizer

    split = models.split_model("efficientnet_lite0", "paper", weights="DEFAULT")
    channels, ident = split.feature_shape[0], split.identity
    q = sc.UniformQuantizer(0.0, 4.0, 8)
    plain = save_quantizer(tmp_path / "plain.json", q, identity=ident)
    task = save_quantizer(tmp_path / "task.json", q, identity=ident, rdo_lambda=0.3, rdo_lookahead=True,
                          error_feedback=0.5, channel_weights=np.linspace(0.5, 1.5, channels).tolist())
    bad = save_quantizer(tmp_path / "bad.json", q, identity=ident, rdo_lambda=0.3, channel_weights=[1.0, 2.0])
    summaries = []
    for path in (plain, task):
        assert main(["--server", server[0], "--photos", "--json", "--quantizer", str(path)]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines[0]["header"]["identity"] == ident.to_dict() and lines[0]["header"]["quantizer_file"] == str(path)
        assert lines[1]["predictions"][0]["name"] == "Egyptian cat" and lines[-1]["summary"]["errors"] == 0
        summaries.append(lines[-1]["summary"])
    assert summaries[1]["mean_bytes_per_frame"] < 0.9 * summaries[0]["mean_bytes_per_frame"]
    assert main(["--server", server[0], "--photos", "--json", "--quantizer", str(bad)]) == 2  # a usage error, up front
    assert "channel_weights has 2 values but the split has" in capsys.readouterr().err


def test_edge_zero_level_flag_shifts_the_quantizer_or_is_a_usage_error(tmp_path, capsys):
    import splitcodec as sc
    from edge_app.cli import build_parser, main
    from edge_app.options import quantizer_factory
    from splitcodec.quantizer_file import save_quantizer

    def quantizer(*argv, first=None):
        return quantizer_factory(build_parser().parse_args(["--photos", *argv]), "efficientnet_lite0", False)(first)

    demo = ("--clip=-22.59375:13.296875", "--levels", "8")
    assert quantizer(*demo) == sc.UniformQuantizer(-22.59375, 13.296875, 8)
    assert quantizer(*demo, "--zero-level") == sc.UniformQuantizer(-20.5, 15.375, 8)
    uniform = save_quantizer(tmp_path / "u.json", sc.UniformQuantizer(-22.59375, 13.296875, 8))
    assert quantizer("--quantizer", str(uniform), "--zero-level") == sc.UniformQuantizer(-20.5, 15.375, 8)
    first = np.random.default_rng(0).normal(size=(16, 4, 4)).astype(np.float32)
    auto = quantizer("--clip", "auto", "--levels", "6", "--zero-level", first=first)
    assert 0.0 in auto.dequantize(np.arange(6, dtype=np.uint8)).tolist()
    from splitcodec import models

    ident = models.split_model("efficientnet_lite0", weights="DEFAULT").identity
    table = save_quantizer(tmp_path / "t.json", sc.ScalarQuantizer.from_levels([-1.0, 0.5, 2.0]), identity=ident)
    with pytest.raises(sc.QuantizerError, match="uniform"):
        quantizer("--quantizer", str(table), "--zero-level")
    assert main(["--server", "127.0.0.1:9", "--photos", "--quantizer", str(table), "--zero-level"]) == 2
    assert "--zero-level needs a uniform quantizer" in capsys.readouterr().err


def test_edge_encoder_config_flags_over_the_quantizer_file(tmp_path):
    import splitcodec as sc
    from edge_app.cli import build_parser
    from edge_app.options import encoder_config
    from splitcodec.quantizer_file import save_quantizer

    q = sc.UniformQuantizer(0.0, 4.0, 8)
    plane = save_quantizer(tmp_path / "p.json", q, context_model="paper", rdo_lambda=0.2, rdo_lookahead=True,
                           channel_weights=[1.0, 2.0], error_feedback=0.75, error_diffusion="plane")

    def config(*argv):
        return encoder_config(build_parser().parse_args(["--photos", *argv]))

    assert config() == sc.EncoderConfig()
    assert config("--error-feedback", "0.5", "--error-diffusion", "plane") == sc.EncoderConfig(
        error_feedback=0.5, error_diffusion="plane")
    from_file = config("--quantizer", str(plane))
    assert from_file == sc.FeatureCodec.from_file(plane).config  # one reader, one rule: same as the library's
    assert from_file.context_model == "paper" and from_file.error_diffusion == "plane"
    assert config("--quantizer", str(plane), "--context-model", "spatial").context_model == "spatial"
    assert config("--quantizer", str(plane), "--error-diffusion", "row").error_diffusion == "row"
    assert not config("--quantizer", str(plane), "--no-rdo-lookahead").rdo_lookahead  # a file's True turned off
    assert config("--quantizer", str(plane), "--rdo-lookahead") == from_file
    # a flag that turns a prerequisite off resets what refines it (EncoderConfig.merged) ...
    assert config("--quantizer", str(plane), "--error-feedback", "0").error_diffusion == "row"
    off = config("--quantizer", str(plane), "--rdo-lambda", "0")
    assert off.channel_weights is None and not off.rdo_lookahead and off.error_feedback == 0.75
    # ... but an explicit contradiction is an error, not a silently dropped flag
    with pytest.raises(sc.QuantizerError, match="rdo_lookahead refines"):
        config("--rdo-lookahead")
    with pytest.raises(sc.QuantizerError, match="error_diffusion refines"):
        config("--error-diffusion", "plane")
    with pytest.raises(ValueError, match="channel_weights has 2 values but the split has 5"):
        encoder_config(build_parser().parse_args(["--photos", "--quantizer", str(plane)]), (5, 7, 7))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--photos", "--error-diffusion", "2d"])


def test_edge_flags_come_from_the_encoder_config():
    import splitcodec as sc
    from edge_app.cli import build_parser

    text = build_parser().format_help()
    flagged = [name for name, _, meta in sc.EncoderConfig.options() if meta["type"] is not None]
    assert flagged and all("--" + name.replace("_", "-") in text for name in flagged)
    assert "--channel-weights" not in text  # a quantizer file's, no flag


def test_edge_cli_onnx_runtime_and_stream(server, capsys):
    from edge_app.cli import main

    assert main(["--server", server[0], "--photos", "--json", "--runtime", "onnx", "--stream"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1:-1]
    assert rows[1]["predictions"][0]["name"] == "espresso"


def test_edge_cli_unreachable_server(capsys):
    from edge_app.cli import main

    assert main(["--server", "127.0.0.1:9", "--photos", "--timeout", "1", "--retries", "1", "--retry-for", "0"]) == 3
    assert "cannot reach" in capsys.readouterr().err


def test_generated_stubs_match_the_proto():
    pytest.importorskip("grpc_tools")
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "proto" / "generate.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls(tails, frames, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "c.pem")], check=True, capture_output=True)
    cert, key = (tmp_path / "c.pem").read_bytes(), (tmp_path / "k.pem").read_bytes()
    srv, port, service = create_server("localhost:0", tails, tls=(cert, key))
    try:
        with EdgeClient(f"localhost:{port}", tls_ca=cert) as c:
            assert c.infer(_req(frames["coffee"])).classes[0].index == 967
    finally:
        shutdown(srv, service, grace=1)


def test_edge_cli_video_file(server, capsys, tmp_path):
    cv2 = pytest.importorskip("cv2")
    from edge_app.cli import main

    path = str(tmp_path / "clip.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    img = np.asarray(shipped_photos(("coffee",))[0][1])
    frame = cv2.resize(img[..., ::-1], (160, 120))
    for _ in range(3):
        w.write(np.ascontiguousarray(frame))
    w.release()
    assert main(["--server", server[0], path, "--json", "--stream"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["header"]["stream"] and lines[0]["header"]["temporal"]
    lines = lines[1:]
    assert [r["frame"] for r in lines[:-1]] == ["clip.avi#0", "clip.avi#1", "clip.avi#2"]
    assert lines[-1]["summary"]["frames"] == 3 and lines[-1]["summary"]["errors"] == 0
    # a stream is coded as a sequence by default: the repeated frames are predicted, at a fraction of the bytes
    assert [r["frame_type"] for r in lines[:-1]] == ["intra", "predicted", "predicted"]
    assert lines[1]["bytes"] < lines[0]["bytes"] / 3
    assert [r["predictions"][0]["class"] for r in lines[:-1]] == [lines[0]["predictions"][0]["class"]] * 3
    assert main(["--server", server[0], path, "--json", "--stream", "--no-temporal"]) == 0
    alone = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1:-1]
    assert [r["frame_type"] for r in alone] == ["intra"] * 3 and alone[0]["bytes"] == lines[0]["bytes"] - 6  # v1: no frame, sequence, frame number


def test_edge_runs_an_exported_head_without_torch(server, tmp_path):
    """The edge loop on a device without torch: ONNX head + NumPy preprocessing + codec + gRPC."""
    import subprocess
    import sys

    from edge_app import export_head

    onnx = tmp_path / "head.onnx"
    assert export_head.main(["--model", "efficientnet_lite0", "--weights", "DEFAULT", "--output", str(onnx)]) == 0
    code = ("import sys, json; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
            "from edge_app.cli import main\n"
            f"rc = main(['--server', '{server[0]}', '--photos', '--json', '--runtime', 'onnx', '--onnx', r'{onnx}'])\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m, v in sys.modules.items() if v is not None)\n"
            "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[0]["header"]["runtime"] == "onnx" and not rows[0]["header"]["torch_loaded"]
    rows = rows[1:]
    assert rows[0]["predictions"][0]["name"] == "Egyptian cat" and rows[1]["predictions"][0]["name"] == "espresso"
    assert rows[-1]["summary"]["frames"] == 8 and rows[-1]["summary"]["errors"] == 0
