"""The main demo, offline: start a cloud server on localhost, run the edge client
with EfficientNet-Lite0 on the photos shipped with scikit-image, stop the server.

    python -m eval demo-system [--stream] [extra edge_app arguments...]

Both apps run as separate processes that meet only over gRPC, as on a real
edge device and server.  The summary then compares the frames with what a
cloud-only deployment would send at equal fidelity: the model input coded as
JPEG at the lowest quality whose agreement with the float model on the same
photos matches the codec's (measured by the explorer's code, cached).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from eval.core.entry import Entry


JPEG_QUALITIES = tuple(range(10, 100, 5)) + (100,)
# the explorer's recommendation for >= 99 % agreement (make explore): the demo runs that split and quantizer
DEMO_QUANTIZER = Path(__file__).resolve().parent.parent / "docs" / "results" / "quantizer-explore-99.json"


def demo_operating_point() -> tuple[str, int, tuple[float, float], str | None]:
    """(split, N, clip, quantizer file or None): the explorer's saved choice, else the model's default."""
    from splitcodec.models import default_operating_point

    if DEMO_QUANTIZER.exists():
        from splitcodec.quantizer_file import load_quantizer_file

        f = load_quantizer_file(DEMO_QUANTIZER)
        return f.doc["split"], f.quantizer.levels, (f.quantizer.c_min, f.quantizer.c_max), str(DEMO_QUANTIZER)
    levels, clip = default_operating_point("efficientnet_lite0")
    return "paper", levels, clip, None


def cloud_only_comparison(cache_dir: str = ".cache/splitcodec-eval") -> dict:
    """Codec frames at the demo's operating point against the model input as JPEG, on the shipped
    photos: the lowest JPEG quality whose top-1 agreement with the float model is at least the codec's
    (and whose KL is no larger). Cached by operating point and package version."""
    import hashlib
    import json
    import math

    import numpy as np

    import splitcodec as sc

    split_name, levels, clip, _ = demo_operating_point()
    key = hashlib.sha256(json.dumps([2, sc.__version__, split_name, levels, clip, JPEG_QUALITIES]).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"demo-cloud-only-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    import torch

    from splitcodec import models
    from splitcodec.datasets import shipped_photos

    from eval.core.evaluate import FIXED, fidelity_counts
    from eval.studies.explore import input_baselines

    split = models.split_model("efficientnet_lite0", split_name, weights="DEFAULT")
    photos = [img for _, img in shipped_photos()]
    codec = sc.FeatureCodec(sc.UniformQuantizer(clip[0], clip[1], levels))
    with torch.no_grad():
        feats = split.head(torch.stack([split.preprocess(im) for im in photos])).numpy()
        ref = split.tail(torch.from_numpy(feats)).numpy()
        streams = [codec.encode(f) for f in feats]
        dec = np.stack([sc.decode(s) for s in streams])
        mine = fidelity_counts(split.tail(torch.from_numpy(dec)).numpy(), ref)
    n = len(photos)
    jpeg = [{"quality": r["quality"], "bytes": r["bytes_per_frame"], "agree": round(r["agreement"] * n), "kl": r["kl"]}
            for r in input_baselines(split, [(im, -1) for im in photos], ref, {"jpeg": JPEG_QUALITIES})]
    codec_kl = math.ldexp(mine["kl"], -FIXED) / n
    match = next((j for j in jpeg if j["agree"] >= mine["agree1"] and j["kl"] <= codec_kl), None)
    doc = {"photos": n, "split": split.split, "levels": levels, "clip": list(clip),
           "codec_bytes": float(np.mean([len(s) for s in streams])), "codec_agree": mine["agree1"], "codec_kl": codec_kl,
           "float32_bytes": 4 * int(feats[0].size), "jpeg": jpeg, "jpeg_match": match}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return doc


def print_comparison(doc: dict) -> None:
    n, m = doc["photos"], doc["jpeg_match"]
    line = (f"# cloud-only at equal fidelity (the same {n} photos): this codec sends {doc['codec_bytes']:.0f} B/frame "
            f"(agrees with the float model on {doc['codec_agree']}/{n}); ")
    if m:
        line += (f"the 224x224 model input needs JPEG q{m['quality']} ({m['bytes']:.0f} B/frame, agrees on "
                 f"{m['agree']}/{n}, KL no larger) = {m['bytes'] / doc['codec_bytes']:.1f}x more; ")
    else:
        line += "no JPEG quality of the model input agrees as often with no larger KL; "
    line += f"the float32 tensor is {doc['float32_bytes']} B ({doc['float32_bytes'] / doc['codec_bytes']:.0f}x)."
    print(line, flush=True)


ENTRY = Entry("demo-system", "demo",
              help="offline: cloud server + edge client on localhost, real predictions on shipped photos")


def add_arguments(p) -> None:
    p.add_argument("edge_args", nargs=argparse.REMAINDER, help="passed on to python -m edge_app (e.g. --stream)")


def run(args) -> int:
    argv = list(args.edge_args)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory() as tmp:
        port_file, log_file = Path(tmp) / "port", Path(tmp) / "server.log"
        print("starting the cloud server (EfficientNet-Lite0 tail) on 127.0.0.1 ...", flush=True)
        with open(log_file, "w") as log:
            own = any(a.startswith(("--quantizer", "--levels", "--clip", "--model", "--split")) for a in argv)
            _, _, _, qfile = demo_operating_point()
            serve = ["--calibration", qfile] if qfile and not own else []
            server = subprocess.Popen([sys.executable, "-m", "cloud_app", "--host", "127.0.0.1", "--port", "0",
                                       "--port-file", str(port_file), "--device", "cpu", *serve], stderr=log, env=env)
        try:
            deadline = time.time() + 120
            while not port_file.exists() or not port_file.read_text().strip():
                if server.poll() is not None or time.time() > deadline:
                    print(log_file.read_text(), file=sys.stderr)
                    print("error: the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            port = port_file.read_text().strip()
            print(f"server ready on port {port}; running the edge client on the shipped photos:\n", flush=True)
            edge_q = ["--quantizer", qfile] if serve else []
            rc = subprocess.call([sys.executable, "-m", "edge_app", "--server", f"127.0.0.1:{port}", "--photos",
                                  *edge_q, *argv], env=env)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        lines = [ln for ln in log_file.read_text().splitlines() if "status=" in ln]
        print(f"\nserver stopped; it logged {len(lines)} requests, e.g.\n  {lines[-1] if lines else '(none)'}")
    if rc == 0 and not own:
        print_comparison(cloud_only_comparison())
    return rc
