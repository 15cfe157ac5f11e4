"""Reliability benchmark: the cloud server under hostile and careless load, on loopback only.

    python -m eval bench-reliability [--quick] [--output docs/results/MACHINE/reliability.json] [--update-doc docs/deploy.md]

Servers run as their own processes (``python -m cloud_app``, batching on, EfficientNet-Lite0 at its
default split); clients are threads of this process.  Every load loop is bounded in count and time.
Scenarios: idle streams beside active clients; clients sending the most expensive streams the envelope
admits beside a normal client; corrupt and hostile requests (status code, health after, log growth);
SIGTERM under load (exit time against the grace period); three replicas behind gRPC's round_robin with
one killed mid-run (every frame answered once, answers equal to the in-process pipeline).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from eval.core.common import log
from eval.core.entry import Entry

MODEL = "efficientnet_lite0"
GRACE = 2.0


ENTRY = Entry("bench-reliability", "bench", section="reliability",
              help="the server under hostile load, faults and SIGTERM")


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="fewer requests and trials (a smoke run)")


class Server:
    """A ``python -m cloud_app`` process on 127.0.0.1 with a free port; its log in a file."""

    def __init__(self, tmp: Path, name: str, *extra: str):
        self.port_file, self.log_file = tmp / f"{name}.port", tmp / f"{name}.log"
        args = [sys.executable, "-m", "cloud_app", "--host", "127.0.0.1", "--port", "0", "--port-file",
                str(self.port_file), "--device", "cpu", "--grace", str(GRACE), *extra]
        self.proc = subprocess.Popen(args, stderr=open(self.log_file, "w"), env=dict(os.environ, PYTHONUNBUFFERED="1"))
        deadline = time.time() + 180
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(self.log_file.read_text()[-2000:])
            time.sleep(0.1)
        self.address = f"127.0.0.1:{self.port_file.read_text().strip()}"

    def log_bytes(self) -> int:
        return self.log_file.stat().st_size

    def stop(self, sig=signal.SIGTERM) -> float:
        """Signal the server; seconds until it exited (it is killed after 60 s)."""
        if self.proc.poll() is not None:
            return 0.0
        t = time.perf_counter()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return float("inf")
        return time.perf_counter() - t


def _pct(values, q):
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def _frames():
    """Pre-encoded frames of the shipped photos at the server's default operating point, and the class the
    in-process pipeline answers for each."""
    import splitcodec as sc
    from splitcodec import models
    from splitcodec.datasets import shipped_photos
    from splitcodec.inference import CloudTail, EdgeEncoder
    from splitcodec.models import default_operating_point

    split = models.split_model(MODEL, "paper", weights="DEFAULT")
    n, clip = default_operating_point(MODEL)
    enc = EdgeEncoder(split, sc.FeatureCodec(sc.UniformQuantizer(clip[0], clip[1], n)))
    frames = [enc.encode(img).bitstream for _, img in shipped_photos()]
    tail = CloudTail(split)
    expected = [tail.run([tail.decode(f)[0]])[0].classes[0].index for f in frames]
    return split, frames, expected


def _req(data, rid=""):
    from splitcodec.wire import pb

    return pb.InferRequest(bitstream=data, model=MODEL, request_id=rid)


def _clients(address, work, clients: int, per_client: int, timeout: float = 30.0):
    """``clients`` threads, each calling ``work(stub, i)`` ``per_client`` times; (latencies ms, errors)."""
    import grpc

    from splitcodec.wire import rpc

    lat, errs = [], []
    lock = threading.Lock()

    def run(k):
        with grpc.insecure_channel(address) as ch:
            stub = rpc.SplitInferenceStub(ch)
            for i in range(per_client):
                t = time.perf_counter()
                try:
                    work(stub, k * per_client + i, timeout)
                    ok = None
                except grpc.RpcError as e:
                    ok = e.code().name
                with lock:
                    (errs.append(ok) if ok else lat.append(1e3 * (time.perf_counter() - t)))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errs


def _health_probe(address, count: int, interval: float = 0.05):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    lat, errs = [], 0
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for _ in range(count):
            t = time.perf_counter()
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                lat.append(1e3 * (time.perf_counter() - t))
            except grpc.RpcError:
                errs += 1
            time.sleep(interval)
    return lat, errs


def idle_streams(tmp, frames, quick) -> dict:
    import grpc

    from splitcodec.wire import rpc

    srv = Server(tmp, "idle")
    per = 10 if quick else 30
    infer = lambda stub, i, t: stub.Infer(_req(frames[i % len(frames)]), timeout=t)  # noqa: E731
    try:
        base, base_err = _clients(srv.address, infer, 8, per)
        release = threading.Event()

        def silent():
            release.wait(120)
            return
            yield

        channels = [grpc.insecure_channel(srv.address) for _ in range(64)]
        calls = [rpc.SplitInferenceStub(ch).InferStream(silent(), timeout=180) for ch in channels]
        time.sleep(1.0)
        probe = {}
        th = threading.Thread(target=lambda: probe.update(zip(("lat", "err"), _health_probe(srv.address, 60))))
        th.start()
        loaded, loaded_err = _clients(srv.address, infer, 8, per)
        th.join()
        release.set()
        for c in calls:
            c.cancel()
        for ch in channels:
            ch.close()
    finally:
        srv.stop()
    return {"idle_streams": 64, "active_clients": 8, "requests": 8 * per,
            "active_p95_ms_without_idle": _pct(base, 95), "active_p95_ms_with_idle": _pct(loaded, 95),
            "health_p99_ms": _pct(probe["lat"], 99), "health_errors": probe["err"],
            "errors_on_valid_requests": len(base_err) + len(loaded_err)}


def heavy_streams(tmp, frames, shape, quick) -> dict:
    import numpy as np

    import splitcodec as sc

    srv = Server(tmp, "heavy")
    per_normal = 15 if quick else 40
    try:
        from cloud_app.admission import default_max_levels

        levels = default_max_levels({(MODEL, "paper"): None})  # the server's envelope (no --max-levels given)
        # the most decoding work a valid stream of the served shape can cause: every index at N - 1
        heavy = sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, levels)).encode(np.ones(shape, np.float32))
        infer = lambda stub, i, t: stub.Infer(_req(frames[i % len(frames)]), timeout=t)  # noqa: E731
        unloaded, _ = _clients(srv.address, infer, 1, per_normal)
        # the attackers run in another process, as other clients would: their threads must not share
        # this process's interpreter lock with the normal client being measured
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        results, stop = ctx.Queue(), ctx.Event()
        attackers = ctx.Process(target=_attack, args=(srv.address, heavy, 32, 500, 120.0, stop, results))
        attackers.start()
        time.sleep(3.0)  # the attacking process is up and its 32 clients are sending
        normal_lat, normal_err = _clients(srv.address, infer, 1, per_normal)
        stop.set()
        heavy_res = results.get(timeout=120)
        attackers.join(timeout=60)
    finally:
        srv.stop()
    return {"heavy_clients": 32, "heavy_levels": levels, "heavy_bytes": len(heavy),
            "normal_p95_ms_unloaded": _pct(unloaded, 95), "normal_p95_ms_loaded": _pct(normal_lat, 95),
            "normal_rejected": normal_err.count("RESOURCE_EXHAUSTED"),
            "normal_other_errors": len([e for e in normal_err if e != "RESOURCE_EXHAUSTED"]),
            "heavy_answered": heavy_res["ok"], "heavy_rejected": heavy_res["rejected"],
            "heavy_rejected_p95_ms": _pct(heavy_res["rejected_ms"], 95), "heavy_other_errors": heavy_res["other"]}


def _attack(address: str, data: bytes, threads: int, per_thread: int, seconds: float, stop, results) -> None:
    """``threads`` clients sending ``data`` until ``stop`` is set (bounded in count and time); counts go
    to ``results``."""
    import grpc

    from splitcodec.wire import rpc

    res = {"ok": 0, "rejected": 0, "rejected_ms": [], "other": 0}
    lock = threading.Lock()
    end = time.time() + seconds

    def run():
        with grpc.insecure_channel(address) as ch:
            stub = rpc.SplitInferenceStub(ch)
            for _ in range(per_thread):
                if time.time() > end or stop.is_set():
                    return
                t = time.perf_counter()
                try:
                    stub.Infer(_req(data), timeout=30)
                    key = "ok"
                except grpc.RpcError as e:
                    key = "rejected" if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else "other"
                with lock:
                    res[key] += 1
                    if key == "rejected":
                        res["rejected_ms"].append(1e3 * (time.perf_counter() - t))

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    results.put(res)


def malformed(tmp, frames, shape) -> list[dict]:
    import grpc
    import numpy as np

    import splitcodec as sc
    from splitcodec.wire import rpc
    from splitcodec.wire import pb

    from eval.core.streams import _leb128, flags_of, raw  # the corpus's stream builder
    from eval.core.streams import resign

    good = frames[0]
    hs = sc.decode_header(good).size
    dims = b"".join(_leb128(d) for d in shape)
    cases = {
        "garbage bytes": (b"\x17" * 300, {}),
        "truncated stream": (good[:-10], {}),
        "one trailing byte (re-signed)": (resign(good + b"\x00", hs), {}),
        "bit flip (re-signed)": (resign(good[:hs + 40] + bytes([good[hs + 40] ^ 4]) + good[hs + 41:], hs), {}),
        "transposed shape": (sc.FeatureCodec(sc.UniformQuantizer(0, 1, 8)).encode(
            np.zeros(shape[::-1], np.float32)), {}),
        "N above the envelope": (sc.FeatureCodec(sc.UniformQuantizer(0, 1, 256)).encode(np.ones(shape, np.float32)),
                                 {}),
        "table of equal levels": (raw(flags_of(kind=1, ndim=len(shape)), 2, struct.pack("<2e", 1.0, 1.0), dims,
                                      b"\x00" * 8), {}),
        "header declaring 2^40 elements": (raw(flags_of(ndim=3), 4, struct.pack("<2e", 0.0, 1.0),
                                               _leb128(1 << 20) * 2 + _leb128(1), b"\x00" * 8), {}),
        "oversized message (20 MB)": (b"\x00" * (20 << 20), {}),
        "unknown model": (good, {"model": "nope\n" * 1000}),
        "request_id of 100 KB with newlines": (b"junk", {"request_id": "x\nFORGED " * 10_000}),
    }
    srv = Server(tmp, "malformed")
    rows = []
    try:
        with grpc.insecure_channel(srv.address, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
            stub = rpc.SplitInferenceStub(ch)
            for name, (data, fields) in cases.items():
                before = srv.log_bytes()
                codes = []
                for _ in range(10):
                    req = pb.InferRequest(bitstream=data, model=fields.get("model", MODEL),
                                          request_id=fields.get("request_id", "r"))
                    try:
                        stub.Infer(req, timeout=10)
                        codes.append("OK")
                    except grpc.RpcError as e:
                        codes.append(e.code().name)
                time.sleep(0.2)
                healthy = _health_probe(srv.address, 1)[1] == 0
                ok_after = stub.Infer(_req(good), timeout=10).classes[0].index >= 0
                rows.append({"input": name, "status": sorted(set(codes)), "healthy_after": healthy and ok_after,
                             "log_bytes_per_request": (srv.log_bytes() - before) / 10})
    finally:
        srv.stop()
    return rows


def sigterm_trials(tmp, frames, trials: int) -> dict:
    times = []
    for k in range(trials):
        srv = Server(tmp, f"sigterm{k}")
        stop = threading.Event()
        infer = lambda stub, i, t: (None if stop.is_set() else stub.Infer(_req(frames[i % len(frames)]), timeout=t))  # noqa: E731
        th = threading.Thread(target=lambda: _clients(srv.address, infer, 16, 100, timeout=10))
        th.start()
        time.sleep(1.5)
        times.append(srv.stop())
        stop.set()
        th.join()
    return {"trials": trials, "grace_s": GRACE, "clients": 16, "batching": True, "exit_s_max": max(times),
            "exit_s_median": sorted(times)[len(times) // 2],
            "within_grace_plus_1s": sum(t <= GRACE + 1 for t in times)}


def replica_kill(tmp, frames, expected, quick) -> dict:
    from edge_app.client import EdgeClient

    servers = [Server(tmp, f"replica{k}") for k in range(3)]
    per = 20 if quick else 40
    answers, lost, lock = {}, [], threading.Lock()

    def client(k):
        with EdgeClient(",".join(s.address for s in servers), timeout=10, retries=6, backoff=0.1) as c:
            for i in range(per):
                rid = f"{k}:{i}"
                f = (k + i) % len(frames)
                try:
                    r = c.infer(_req(frames[f], rid))
                    with lock:
                        answers.setdefault(rid, []).append((r.request_id, r.classes[0].index, expected[f]))
                except Exception as e:  # noqa: BLE001 - counted as lost
                    with lock:
                        lost.append(f"{rid}: {e}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(2.0)
        servers[1].stop(signal.SIGKILL)
        for t in threads:
            t.join()
    finally:
        for s in servers:
            s.stop()
    wrong = sum(1 for v in answers.values() for rid_back, got, want in v if got != want)
    return {"replicas": 3, "clients": 8, "frames": 8 * per, "answered": len(answers), "lost": len(lost),
            "answered_twice": sum(len(v) > 1 for v in answers.values()), "answers_differing_from_pipeline": wrong}


def markdown(doc: dict) -> str:
    i, h, s, r = doc["idle"], doc["heavy"], doc["sigterm"], doc["replicas"]
    lines = ["Measured by `python -m eval bench-reliability` on this 2-core machine (server processes and client "
             "threads share it; loopback only).", "",
             "| scenario | target | measured |", "|---|---|---|",
             f"| 64 idle streams + 8 active clients ({i['requests']} requests) | health p99 < 100 ms; active p95 ≤ 2× "
             f"without idle streams; 0 errors | health p99 {i['health_p99_ms']:.1f} ms; active p95 "
             f"{i['active_p95_ms_with_idle']:.1f} ms vs {i['active_p95_ms_without_idle']:.1f} ms "
             f"({i['active_p95_ms_with_idle'] / i['active_p95_ms_without_idle']:.2f}×); "
             f"{i['errors_on_valid_requests']} errors |",
             f"| 32 clients sending the costliest admitted streams (N = {h['heavy_levels']}, every index N−1) + 1 normal "
             f"client | normal p95 ≤ 3× unloaded, or rejected fast | normal p95 {h['normal_p95_ms_loaded']:.1f} ms vs "
             f"{h['normal_p95_ms_unloaded']:.1f} ms unloaded ({h['normal_p95_ms_loaded'] / h['normal_p95_ms_unloaded']:.1f}×), "
             f"{h['normal_rejected']} of its requests rejected; heavy: {h['heavy_answered']} answered, "
             f"{h['heavy_rejected']} RESOURCE_EXHAUSTED (p95 {h['heavy_rejected_p95_ms'] or 0:.1f} ms) |",
             f"| SIGTERM under 16-client load, batching on, grace {s['grace_s']:g} s | exit ≤ grace + 1 s in every trial "
             f"| {s['within_grace_plus_1s']} of {s['trials']} trials; slowest exit {s['exit_s_max']:.2f} s |",
             f"| 3 replicas (round_robin + health checks), 8 clients, one replica SIGKILLed mid-run | 0 lost, answers = "
             f"pipeline | {r['frames']} frames: {r['answered']} answered, {r['lost']} lost, "
             f"{r['answers_differing_from_pipeline']} differing |", "",
             "Malformed and hostile requests (10 each; then a health check and a valid request):", "",
             "| input | status | healthy after | log bytes per request |", "|---|---|---|---|"]
    for m in doc["malformed"]:
        lines.append(f"| {m['input']} | {', '.join(m['status'])} | {'yes' if m['healthy_after'] else '**no**'} | "
                     f"{m['log_bytes_per_request']:.0f} |")
    return "\n".join(lines)


def run(args) -> dict:
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        log("encoding frames ...")
        split, frames, expected = _frames()
        shape = tuple(split.feature_shape)
        log("idle streams ...")
        doc = {"benchmark": "bench_reliability", "quick": args.quick, "idle": idle_streams(tmp, frames, args.quick)}
        log("heavy streams ...")
        doc["heavy"] = heavy_streams(tmp, frames, shape, args.quick)
        log("malformed inputs ...")
        doc["malformed"] = malformed(tmp, frames, shape)
        log("SIGTERM trials ...")
        doc["sigterm"] = sigterm_trials(tmp, frames, 3 if args.quick else 20)
        log("replica kill ...")
        doc["replicas"] = replica_kill(tmp, frames, expected, args.quick)
    doc["seconds"] = time.time() - t0
    return doc
