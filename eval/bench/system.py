"""System benchmark: edge → gRPC → cloud on localhost, with the real EfficientNet-Lite0.

    python -m eval bench-system [--requests 240] [--output bench_system.json] [--update-doc README.md]

It runs the demo's operating point (the explorer's ≥ 99 % file, ``eval.core.deployment``): the server
(``python -m cloud_app --calibration FILE``, its own process) once with request batching and once without;
1, 4 and 8 client threads send pre-encoded frames (augmented shipped photos, each request carrying the head's
identity) as fast as answers come back.  Reports round-trip latency p50/p95, throughput, the edge's own head
and encode times, end-to-end latency (head + encode + round trip), and bytes per frame against the raw
float32 tensor and against the model input coded as JPEG at equal fidelity on the same frames (the
explorer's baseline).  Client and server share this machine's cores, so absolute figures are pessimistic for
a real deployment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from eval.core.common import log
from eval.core.entry import Entry

METHOD = "/splitcodec.v1.SplitInference/Infer"


def _start_server(batching: bool, tmp: Path, quantizer_file: str):
    port_file = tmp / f"port-{batching}"
    args = [sys.executable, "-m", "cloud_app", "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
            "--device", "cpu", "--max-batch", "8", "--batch-window-ms", "2", "--calibration", quantizer_file]
    if not batching:
        args.append("--no-batching")
    logf = open(tmp / f"server-{batching}.log", "w")
    proc = subprocess.Popen(args, stderr=logf, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 120
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError((tmp / f"server-{batching}.log").read_text())
        time.sleep(0.2)
    return proc, int(port_file.read_text())


def _load(port: int, requests, clients: int, total: int) -> dict:
    import grpc
    import numpy as np

    from splitcodec.wire import pb

    latencies, errors = [], []
    lock = threading.Lock()
    counter = iter(range(total))

    def client():
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(METHOD, request_serializer=pb.InferRequest.SerializeToString,
                                  response_deserializer=pb.InferResponse.FromString)
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = time.perf_counter()
                try:
                    call(requests[i % len(requests)], timeout=60)
                except grpc.RpcError as e:
                    errors.append(e.code().name)
                    continue
                with lock:
                    latencies.append(1e3 * (time.perf_counter() - t))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {"clients": clients, "requests": total, "errors": len(errors),
            "round_trip_ms_p50": float(np.percentile(lat, 50)), "round_trip_ms_p95": float(np.percentile(lat, 95)),
            "throughput_rps": len(lat) / wall}


ENTRY = Entry("bench-system", "bench", section="bench_system",
              help="the whole system on localhost: bytes, latency and throughput with and without batching")


def add_arguments(p) -> None:
    p.add_argument("--requests", type=int, default=240, help="requests per (clients, batching) case")
    p.add_argument("--clients", default="1,4,8")
    p.add_argument("--frames", type=int, default=32, help="distinct frames (augmented shipped photos)")


def run(args) -> dict:
    import numpy as np
    import torch

    import splitcodec as sc
    from eval.core.deployment import demo_deployment, describe, equal_fidelity_comparison
    from splitcodec.datasets import photo_crops
    from splitcodec.inference import EdgeEncoder
    from splitcodec.wire import identity_message, pb

    torch.set_num_threads(1)
    split, qf = demo_deployment()
    log(f"operating point {describe(qf)}; encoding frames on the 'edge' ...")
    enc = EdgeEncoder(split, sc.FeatureCodec(qf.quantizer, config=qf.encoder))
    enc.warmup()
    head = identity_message(split.identity)
    images = [img for _, img in photo_crops(args.frames, seed=3)]
    frames, requests = [], []
    for i, img in enumerate(images):
        f = enc.encode(img)
        frames.append(f)
        requests.append(pb.InferRequest(bitstream=f.bitstream, model=split.name, split=split.split, request_id=str(i),
                                        head=head, original_size=pb.ImageSize(width=f.original_size[0],
                                                                              height=f.original_size[1])))
    log("the model input as JPEG at equal fidelity on the same frames ...")
    equal = equal_fidelity_comparison(split, qf, images, cache_dir=None, label=f"photo_crops({args.frames}, seed=3)")
    bytes_per_frame = float(np.mean([len(f.bitstream) for f in frames]))
    raw = 4 * frames[0].elements
    edge = {"head_ms_p50": float(np.median([f.head_ms for f in frames])),
            "encode_ms_p50": float(np.median([f.encode_ms for f in frames]))}
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for batching in (True, False):
            log(f"server with batching {'on' if batching else 'off'} ...")
            proc, port = _start_server(batching, Path(tmp), str(qf.path))
            try:
                _load(port, requests, 1, 8)  # warm-up
                for clients in [int(c) for c in args.clients.split(",")]:
                    r = _load(port, requests, clients, args.requests)
                    r["batching"] = batching
                    r["end_to_end_ms_p50"] = edge["head_ms_p50"] + edge["encode_ms_p50"] + r["round_trip_ms_p50"]
                    cases.append(r)
                    log(r)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    match = equal["jpeg_match"]
    doc = {"benchmark": "bench_system", "model": split.name, "split": split.split, "quantizer_file": qf.path.name,
           "identity": split.identity.to_dict(),
           "operating_point": {"levels": qf.quantizer.levels, "clip": [qf.quantizer.c_min, qf.quantizer.c_max],
                               **qf.encoder.to_dict()},
           "frames": len(frames), "cpu_count": os.cpu_count(),
           "bytes_per_frame": bytes_per_frame, "raw_float32_bytes": raw, "vs_float32": raw / bytes_per_frame,
           "equal_fidelity": equal,
           "vs_input_jpeg_equal_fidelity": match["bytes"] / bytes_per_frame if match else None,
           "edge": edge, "cases": cases}
    return doc


def markdown(doc) -> str:
    eq = doc["equal_fidelity"]
    m = eq["jpeg_match"]
    versus = (f"the {doc['identity']['input_size']}×{doc['identity']['input_size']} model input as JPEG at equal "
              f"fidelity on the same {eq['photos']} frames (q{m['quality']}, agreement {m['agree']}/{eq['photos']} vs "
              f"the codec's {eq['codec_agree']}/{eq['photos']}, KL no larger): {m['bytes']:.0f} B, "
              f"{doc['vs_input_jpeg_equal_fidelity']:.1f}× more" if m else
              f"no JPEG quality of the model input reaches the codec's fidelity on the same {eq['photos']} frames")
    lines = [f"Measured by `python -m eval bench-system` at the demo's operating point (`{doc['quantizer_file']}`): "
             f"{doc['model']} split at `{doc['split']}`, N = {doc['operating_point']['levels']}, clip "
             f"{doc['operating_point']['clip']}, weights {doc['identity']['weights']}; server and clients on one "
             f"{doc['cpu_count']}-core machine over loopback.", "",
             f"- Bytes per frame: {doc['bytes_per_frame']:.0f} (raw float32 tensor {doc['raw_float32_bytes']}: "
             f"{doc['vs_float32']:.0f}× smaller; {versus}).",
             f"- Edge, per frame: head {doc['edge']['head_ms_p50']:.1f} ms, encode {doc['edge']['encode_ms_p50']:.2f} ms (p50).",
             "", "| batching | clients | round trip p50 (ms) | p95 (ms) | end-to-end p50 (ms) | throughput (req/s) | errors |",
             "|---|---|---|---|---|---|---|"]
    for c in doc["cases"]:
        lines.append(f"| {'on' if c['batching'] else 'off'} | {c['clients']} | {c['round_trip_ms_p50']:.1f} | "
                     f"{c['round_trip_ms_p95']:.1f} | {c['end_to_end_ms_p50']:.1f} | {c['throughput_rps']:.1f} | {c['errors']} |")
    return "\n".join(lines)
