"""What a new user runs first, as a new user runs it: each app in its own process, each bad input or mismatched
deployment answered with one line on stderr and the documented exit code — never a traceback, never an answer
from untrained weights, another split's quantizer or another head's features."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("grpc")
pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
Q99 = ROOT / "docs" / "results" / "quantizer-explore-99.json"  # blocks.13
QN8 = ROOT / "docs" / "results" / "quantizer-efficientnet_lite0-n8.json"  # blocks.11.expand
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def run(module, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=ROOT)


def one_line(r, code, *needles, progress=False):
    """Exit ``code``, one line on stderr (after any '#' notes) containing every needle, no traceback.  With
    ``progress`` (the studies log their progress on stderr) one ``error:`` line among the progress lines."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("#")]
    if progress:
        lines = [ln for ln in lines if "error" in ln.lower()]
    assert r.returncode == code, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cloud(port, *args, log=None):
    """A cloud_app process on 127.0.0.1:``port``; returns it once it serves."""
    port_file = Path(f"/tmp/splitcodec-newcomer-{os.getpid()}-{port}")
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "cloud_app", "--port", str(port), "--port-file", str(port_file),
                             "--device", "cpu", *map(str, args)], stderr=log or subprocess.DEVNULL, env=ENV, cwd=ROOT)
    deadline = time.time() + 120
    while not (port_file.exists() and port_file.read_text().strip()):
        assert proc.poll() is None and time.time() < deadline, "the server did not start"
        time.sleep(0.1)
    port_file.unlink()
    return proc


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cloud():
    """The demo's deployment: the ≥ 99 % file's tail (blocks.13, trained weights)."""
    port = free_port()
    proc = start_cloud(port, "--calibration", Q99)
    yield f"127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder of small images, with a text file named .jpg, a truncated JPEG and a huge PNG among them."""
    from PIL import Image

    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "c.png", "e.jpg"):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(d / name)
    (d / "b_text.jpg").write_text("not an image")
    good = (d / "a.jpg").read_bytes()
    (d / "d_truncated.jpg").write_bytes(good[: len(good) // 2])
    Image.new("L", (9000, 9000)).save(d / "f_huge.png")  # 81 MP: past what the edge reads, under PIL's own limit
    return d


# -- edge: options and inputs, before any model loads ----------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["--levels", "1", "--photos"], "--levels must be 2..256"),
    (["--levels", "300", "--photos"], "--levels must be 2..256"),
    (["--refresh-period", "-5", "--photos"], "--refresh-period must be >= 0"),
    (["--retries", "-1", "--photos"], "--retries must be >= 0"),
    (["--retry-for", "-1", "--photos"], "--retry-for must be >= 0"),
    (["--timeout", "0", "--photos"], "--timeout must be > 0"),
    (["--tls-ca", "/nonexistent/ca.pem", "--photos"], "--tls-ca /nonexistent/ca.pem: no such file"),
    (["--tls-ca", __file__, "--photos"], "is not a PEM certificate"),
    (["/nonexistent/photo.jpg"], "input not found: /nonexistent/photo.jpg"),
    (["--server", "no-such-host.invalid:1,127.0.0.1:2", "--photos"], "cannot resolve 'no-such-host.invalid'"),
    (["--server", "127.0.0.1,127.0.0.2:5", "--photos"], "is not host:port"),
    (["--quantizer", "/nonexistent/q.json", "--photos"], "quantizer file not found"),
    ([], "give image/video inputs or --photos"),
    (["--bitrate", "200", "--fps", "30", "--photos"], "--bitrate needs --stream with temporal coding"),
    (["--bitrate", "200", "--fps", "30", "--stream", "--no-temporal", "--photos"], "--bitrate needs --stream"),
    (["--bitrate", "200", "--stream", "--photos"], "--bitrate needs the frame rate"),
    (["--bitrate", "fast", "--stream", "--fps", "30", "--photos"], "--bitrate must be KBPS, 'auto'"),
    (["--bitrate", "-5", "--stream", "--fps", "30", "--photos"], "--bitrate must be a positive number"),
    (["--bitrate", "auto:x", "--stream", "--fps", "30", "--photos"], "--bitrate must be KBPS"),
    (["--bitrate", "200", "--bufsize", "0", "--stream", "--fps", "30", "--photos"], "--bufsize must be > 0"),
    (["--max-in-flight", "2", "--photos"], "--max-in-flight goes with --stream"),
    (["--max-in-flight", "-1", "--stream", "--photos"], "--max-in-flight must be >= 0"),
    (["--max-latency-ms", "0", "--photos"], "--max-latency-ms must be > 0"),
])
def test_edge_usage_errors_are_one_line_exit_2(args, needle):
    one_line(run("edge_app", *args), 2, needle)


def test_edge_empty_folder_and_unopenable_video_in_both_modes(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line(run("edge_app", tmp_path / "empty"), 2, "no images in folder")
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a video" * 100)
    for mode in ([], ["--stream"]):
        one_line(run("edge_app", bad, *mode), 2, "cannot open video")


# -- edge: a quantizer file, an ONNX head or weights for another deployment ------------------------------------
def test_edge_refuses_a_quantizer_file_for_another_split():
    one_line(run("edge_app", "--quantizer", Q99, "--split", "blocks.11.expand", "--photos"), 2,
             "does not match this head", "split blocks.11.expand vs blocks.13", "--split")


def test_edge_refuses_an_onnx_head_of_another_split(tmp_path):
    from splitcodec import models
    from splitcodec.models.export import export_head_onnx

    onnx = export_head_onnx(models.split_model("efficientnet_lite0", "blocks.11.expand"), tmp_path / "head.onnx")
    one_line(run("edge_app", "--runtime", "onnx", "--onnx", onnx, "--quantizer", Q99, "--photos"), 2,
             "does not match the ONNX head", "split blocks.11.expand vs blocks.13")
    desc = json.loads(Path(str(onnx) + ".json").read_text())
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # a head file that is not the one described
    one_line(run("edge_app", "--runtime", "onnx", "--onnx", onnx, "--photos"), 2, "SHA-256 differs")
    assert desc["identity"]["split"] == "blocks.11.expand"


def test_edge_refuses_a_file_for_other_weights():
    one_line(run("edge_app", "--quantizer", Q99, "--weights", "random", "--photos"), 2,
             "weights random@", "vs DEFAULT@")


def test_untrained_weights_only_by_name():
    one_line(run("edge_app", "--model", "vgg16", "--photos"), 2, "no weights DEFAULT for vgg16",
             "--weights PATH", "--weights random")
    one_line(run("edge_app.export_head", "--model", "resnet50", "--output", "/tmp/never.onnx"), 2,
             "no weights DEFAULT for resnet50")


# -- edge against a server ---------------------------------------------------------------------------------------
def test_the_server_refuses_another_heads_features(cloud):
    """A head on random weights (no quantizer file to catch it) against the trained tail: FAILED_PRECONDITION
    naming both identities, exit 4, never a prediction."""
    r = run("edge_app", "--server", cloud, "--split", "blocks.13", "--weights", "random", "--levels", "8",
            "--clip=-1:1", "--photos", "--json")
    one_line(r, 4, "FAILED_PRECONDITION", "weights DEFAULT@", "random@")
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert "header" in rows[0] and rows[1]["code"] == "FAILED_PRECONDITION" and "predictions" not in rows[1]
    assert rows[-1]["summary"]["answered"] == 0


def test_bad_images_in_a_folder_are_rows_and_the_run_goes_on(cloud, images):
    r = run("edge_app", "--server", cloud, "--quantizer", Q99, images, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    header, frames, summary = rows[0]["header"], rows[1:-1], rows[-1]["summary"]
    assert header["split"] == "blocks.13" and header["quantizer_file"].endswith("quantizer-explore-99.json")
    by_name = {Path(f["frame"]).name: f for f in frames}
    assert sorted(by_name) == ["a.jpg", "b_text.jpg", "c.png", "d_truncated.jpg", "e.jpg", "f_huge.png"]
    for bad in ("b_text.jpg", "d_truncated.jpg", "f_huge.png"):
        assert by_name[bad]["code"] == "UNREADABLE"
    assert all("predictions" in by_name[g] for g in ("a.jpg", "c.png", "e.jpg"))  # the files after the bad ones too
    assert (summary["frames"], summary["answered"], summary["unreadable"]) == (6, 3, 3)


def test_sigint_finishes_the_frame_in_flight_prints_the_summary_and_exits_130(cloud, tmp_path):
    from PIL import Image

    d = tmp_path / "many"
    d.mkdir()
    for i in range(200):
        Image.fromarray(np.full((32, 32, 3), i, np.uint8)).save(d / f"{i:03d}.png")
    for mode in ([], ["--stream"]):
        proc = subprocess.Popen([sys.executable, "-m", "edge_app", "--server", cloud, "--quantizer", str(Q99),
                                 str(d), "--json", *mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV, cwd=ROOT)
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # the header and a first row: frames are moving
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        rows = [json.loads(ln) for ln in lines + out.splitlines()]
        assert proc.returncode == 130 and "Traceback" not in err and "terminate called" not in err, err[-2000:]
        summary = rows[-1]["summary"]
        assert summary["interrupted"] and 0 < summary["frames"] < 200 and summary["errors"] == 0
        assert len(rows) == summary["frames"] + 2  # header, one row per frame read, summary


def test_plaintext_client_against_a_tls_server_and_a_wrong_ca(tmp_path):
    for name in ("server", "other"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", str(tmp_path / f"{name}.key"),
                        "-out", str(tmp_path / f"{name}.pem")], check=True, capture_output=True)
    port = free_port()
    proc = start_cloud(port, "--calibration", Q99, "--tls-cert", tmp_path / "server.pem", "--tls-key",
                       tmp_path / "server.key")
    try:
        common = ["--server", f"localhost:{port}", "--quantizer", Q99, "--photos", "--timeout", "2", "--retry-for", "0"]
        one_line(run("edge_app", *common), 3, "the server speaks TLS: pass --tls-ca")
        one_line(run("edge_app", *common, "--tls-ca", tmp_path / "other.pem"), 3,
                 "certificate is not signed by the --tls-ca certificate")
    finally:
        stop(proc)


def edge_across_a_restart(frames_dir, down_s: float, answered_first: int, *extra):
    """Run the edge over ``frames_dir`` against a server that is SIGKILLed after ``answered_first`` answers and
    started again on the same port ``down_s`` seconds later; (the edge's summary, its stderr, seconds down)."""
    port = free_port()
    server = start_cloud(port, "--calibration", Q99)
    edge = subprocess.Popen([sys.executable, "-m", "edge_app", "--server", f"127.0.0.1:{port}", "--quantizer", str(Q99),
                             str(frames_dir), "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, cwd=ROOT)
    seen = [edge.stdout.readline() for _ in range(1 + answered_first)]  # the header, then answered frames
    stop(server, signal.SIGKILL)
    t0 = time.monotonic()
    time.sleep(down_s)
    server = start_cloud(port, "--calibration", Q99)
    down = time.monotonic() - t0
    try:
        out, err = edge.communicate(timeout=600)
    finally:
        stop(server)
    rows = [json.loads(ln) for ln in seen + out.splitlines()]
    assert edge.returncode == 0, err[-3000:]
    return rows[-1]["summary"], err, down


def test_a_server_restart_loses_no_frame(tmp_path):
    """Unary and --stream: the server is killed mid-run and started again on the same port several seconds
    later; with the default --retry-for every frame is answered (a resumed stream restarts intra)."""
    from PIL import Image

    d = tmp_path / "frames"
    d.mkdir()
    for i in range(60):
        Image.fromarray(np.full((48, 48, 3), 4 * i, np.uint8)).save(d / f"{i:03d}.png")
    for mode in ([], ["--stream"]):
        summary, _, _ = edge_across_a_restart(d, 3, 5, *mode)
        assert (summary["frames"], summary["answered"], summary["errors"]) == (60, 60, 0)


def test_under_load_shedding_every_frame_is_answered_or_its_own_row():
    """A server that sheds (one request in flight at most: RESOURCE_EXHAUSTED with retry-after-ms) and four edges
    at once: each reports every frame, answered after the hints or as its own error row, and none stops early."""
    port = free_port()
    server = start_cloud(port, "--calibration", Q99, "--max-inflight", "1")
    try:
        edges = [subprocess.Popen([sys.executable, "-m", "edge_app", "--server", f"127.0.0.1:{port}", "--quantizer",
                                   str(Q99), "--photos", "--json", "--retry-for", "5"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT) for _ in range(4)]
        results = [(e.wait(timeout=300), e.communicate()) for e in edges]
    finally:
        stop(server)
    answered = 0
    for rc, (out, err) in results:
        lines = [json.loads(ln) for ln in out.splitlines()]
        rows, summary = lines[1:-1], lines[-1]["summary"]
        assert rc in (0, 1) and "Traceback" not in err, err[-2000:]
        assert summary["frames"] == len(rows) == 8  # every photo reported
        assert all("predictions" in r or r["code"] == "RESOURCE_EXHAUSTED" for r in rows)
        answered += summary["answered"]
    assert answered >= 8


# -- cloud ---------------------------------------------------------------------------------------------------------
def test_cloud_refuses_a_port_in_use_and_a_foreign_address(cloud):
    one_line(run("cloud_app", "--port", cloud.rsplit(":", 1)[1]), 2, "the port is in use")
    one_line(run("cloud_app", "--host", "10.99.99.99", "--port", "0"), 2, "is not an address of this machine")
    one_line(run("cloud_app", "--calibration", f"{Q99}=random"), 2, "does not match the served tail",
             "weights random@")
    one_line(run("cloud_app", "--models", "resnet50"), 2, "no weights DEFAULT for resnet50")


def test_log_json_is_json_from_the_first_line_to_the_last(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as f:
        proc = start_cloud(port, "--calibration", Q99, "--log-json", log=f)
        try:
            r = run("edge_app", "--server", f"127.0.0.1:{port}", "--quantizer", Q99, "--photos", "--json")
            assert r.returncode == 0, r.stderr[-2000:]
        finally:
            stop(proc)
    lines = log.read_text().splitlines()
    records = [json.loads(ln) for ln in lines]  # every line parses
    assert len(records) >= 10 and all({"time", "level", "logger"} <= set(r) for r in records)
    requests = [r for r in records if "status" in r]
    assert len(requests) == 8 and all(r["status"] == "OK" and r["split"] == "blocks.13" for r in requests)
    assert "serving" in records[0]["message"] and "shutting down" in records[-1].get("message", "") + \
        " ".join(r.get("message", "") for r in records[-3:])


# -- studies and the demo -------------------------------------------------------------------------------------------
def test_explore_refuses_random_weights_and_an_unmet_target(tmp_path):
    one_line(run("eval", "explore", "--weights", "random", "--dataset", "photos:4"), 2,
             "fidelity on random weights measures nothing", "--allow-random-weights")
    r = run("eval", "explore", "--dataset", "photos:6", "--calib", "2", "--splits", "blocks.13", "--levels", "2",
            "--baselines", "", "--no-onnx", "--target-agreement", "1.01", "--save", tmp_path / "q.json",
            "--cache-dir", tmp_path / "c")
    one_line(r, 2, "no operating point met agreement >= 1.01", "not written", progress=True)
    assert not (tmp_path / "q.json").exists()


def test_video_study_refuses_another_splits_quantizer(tmp_path):
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"")
    one_line(run("eval", "video", "--video", clip, "--split", "blocks.11.expand", "--quantizer", Q99), 2,
             "does not match the study's model", "split blocks.11.expand vs blocks.13")


def test_the_demo_runs_the_explorers_file_and_refuses_without_it(tmp_path):
    from eval.core.deployment import DEMO_QUANTIZER, demo_deployment
    from eval.core.runner import UsageError
    from splitcodec.quantizer_file import load_quantizer_file

    assert DEMO_QUANTIZER == Q99
    split, qf = demo_deployment()
    assert (split.split, qf.quantizer) == (load_quantizer_file(Q99).doc["split"], load_quantizer_file(Q99).quantizer)
    with pytest.raises(UsageError, match="missing: restore it from git, or run `make explore`"):
        demo_deployment(tmp_path / "gone.json")
    r = run("eval", "demo-system", "--stream", "--json", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    first = r.stdout.splitlines()[0]
    assert "quantizer-explore-99.json: efficientnet_lite0 split blocks.13" in first and "B/frame" in first
    header = next(json.loads(ln)["header"] for ln in r.stdout.splitlines() if ln.startswith('{"header"'))
    assert header["split"] == "blocks.13" and header["quantizer_file"] == str(Q99) and header["stream"]
    assert "cloud-only at equal fidelity" in r.stdout
    one_line(run("eval", "demo-system", "--quantizer-file", tmp_path / "gone.json"), 2, "is missing")


def test_a_paced_source_drops_late_frames_by_the_clock_never_queues_them():
    """--realtime's clock (edge_app.sources.Paced) on a fake clock: a consumer that needs 2.5 frame intervals per
    frame gets, each time it asks, the newest frame a camera would hold; the ones whose slot passed are skipped,
    and the capture times are the camera's slots."""
    from edge_app.sources import Paced

    now = [0.0]

    def sleep(s):
        now[0] += s

    paced = Paced(((f"f{k}", k) for k in range(12)), 10.0, clock=lambda: now[0], sleep=sleep)
    taken = []
    for name, _ in paced:
        taken.append((name, round(paced.capture_time[name], 3)))
        now[0] += 0.25  # head + encode + send: 2.5 intervals of 0.1 s
    # asked at 0, 0.25, 0.5, 0.75, 1.0: the frames captured at 0, 0.2, 0.4, 0.7, 0.9 (less than one interval old)
    assert [n for n, _ in taken] == ["f0", "f2", "f4", "f7", "f9"]
    assert [t for _, t in taken] == [0.0, 0.2, 0.4, 0.7, 0.9]
    assert paced.skipped == ["f1", "f3", "f5", "f6", "f8", "f10", "f11"]
    early = Paced(((f"g{k}", k) for k in range(3)), 4.0, clock=lambda: now[0], sleep=sleep)
    start = now[0]
    assert [n for n, _ in early] == ["g0", "g1", "g2"] and early.skipped == []
    assert round(now[0] - start, 6) == 0.5  # a fast consumer waits for each frame's slot


@pytest.fixture(scope="module")
def pan_video(tmp_path_factory):
    """30 frames at 10 fps: a pan across a shipped photo (MJPG in AVI, which OpenCV writes without codecs)."""
    import cv2

    from splitcodec.datasets import shipped_photos

    img = np.asarray(shipped_photos(("astronaut",))[0][1])[..., ::-1]
    path = tmp_path_factory.mktemp("pan") / "pan.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (224, 224))
    for i in range(30):
        w.write(np.ascontiguousarray(cv2.resize(img[40 + i:340 + i, 6 * i:300 + 6 * i], (224, 224))))
    w.release()
    return path


def test_bitrate_holds_the_stream_under_its_target_through_the_buffer(cloud, pan_video):
    """--bitrate on a camera-paced video: every answer says what the rate controller chose, the bytes sent stay
    within the link's share of the run plus the buffer, and the stream needed the controller (λ > 0 or a
    skipped frame) to get there."""
    pytest.importorskip("cv2")
    kbps, bufsize_ms = 40, 1000
    r = run("edge_app", "--server", cloud, "--quantizer", Q99, pan_video, "--json", "--stream", "--realtime",
            "--bitrate", kbps, "--bufsize", bufsize_ms)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    header, frames, summary = rows[0]["header"], rows[1:-1], rows[-1]["summary"]
    assert header["link"]["bitrate_kbps"] == kbps and header["max_in_flight"] == 2
    assert frames and all(f["target_kbps"] == kbps and f["levels"] in (6, 7, 8) for f in frames)
    sent = sum(f["bytes"] for f in frames)
    assert sent <= kbps * 1e3 / 8 * (30 / 10 + bufsize_ms / 1e3)
    assert any(f["rdo_lambda"] > 0 for f in frames) or summary["skipped_by"]["rate"] > 0
    assert summary["frames"] + summary["skipped"] == 30
    assert all("latency_ms" in f for f in frames)


def test_bitrate_auto_and_a_too_small_buffer_say_what_they_do(cloud, pan_video):
    pytest.importorskip("cv2")
    r = run("edge_app", "--server", cloud, "--quantizer", Q99, pan_video, "--json", "--stream", "--realtime",
            "--bitrate", "auto:500")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert rows[0]["header"]["link"]["bitrate_kbps"] == "auto"
    assert all(0 < f["target_kbps"] <= 500 for f in rows[1:-1])
    tiny = run("edge_app", "--server", cloud, "--quantizer", Q99, pan_video, "--json", "--stream", "--realtime",
               "--bitrate", "8", "--bufsize", "100")
    assert tiny.returncode == 0 and "the buffer grows to hold one" in tiny.stderr, tiny.stderr[-2000:]
    summary = json.loads(tiny.stdout.splitlines()[-1])["summary"]
    assert summary["answered"] >= 1 and summary["skipped_by"]["rate"] > 0


def test_max_latency_skips_frames_that_could_not_be_answered_in_time(cloud, pan_video):
    """--max-latency-ms 1: after the first answer (a round trip of several ms), every frame is already too old
    to be answered within 1 ms: skipped before encoding, counted as stale."""
    pytest.importorskip("cv2")
    r = run("edge_app", "--server", cloud, "--quantizer", Q99, pan_video, "--json", "--stream", "--realtime",
            "--max-latency-ms", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["answered"] >= 1 and summary["skipped_by"]["stale"] > 0
    assert summary["frames"] + summary["skipped"] == 30


def test_realtime_rows_carry_capture_to_answer_latency(cloud, images):
    r = run("edge_app", "--server", cloud, "--quantizer", Q99, images, "--json", "--realtime", "--fps", "1000")
    assert r.returncode in (0, 1), r.stderr[-2000:]  # 1 when one of the folder's unreadable images was not skipped
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    frames, summary = rows[1:-1], rows[-1]["summary"]
    answered = [f for f in frames if "predictions" in f]
    assert answered and all(f["latency_ms"] >= f["round_trip_ms"] for f in answered)
    assert summary["skipped"] > 0 and summary["frames"] + summary["skipped"] == 6  # dropped by the clock, not queued
    assert summary["latency_ms_p50"] > 0
    text = run("edge_app", "--server", cloud, "--quantizer", Q99, images, "--realtime", "--fps", "1000")
    assert re.search(r"# \d+ frame\(s\) not sent \(\d+ clock", text.stdout), text.stdout[-1000:]  # said, not silent
    one_line(run("edge_app", "--server", cloud, "--photos", "--realtime"), 2, "--realtime needs --fps")
    one_line(run("edge_app", "--photos", "--fps", "5"), 2, "--fps goes with --realtime")
