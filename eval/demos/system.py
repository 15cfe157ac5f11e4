"""The main demo, offline: start a cloud server on localhost, run the edge client
with EfficientNet-Lite0 on the photos shipped with scikit-image, stop the server.

    python -m eval demo-system [--stream] [extra edge_app arguments...]

It runs the explorer's ≥ 99 % operating point (``docs/results/quantizer-explore-99.json``, written by
``make explore``): the server serves that file's model, split and weights (``--calibration``), the edge
encodes with it (``--quantizer``), and both check it against the head and tail they load.  A missing file
stops the demo with one line; there is no other point to fall back to.  Both apps run as separate
processes that meet only over gRPC, as on a real edge device and server.  The summary then compares the
frames with what a cloud-only deployment would send at equal fidelity: the model input coded as JPEG at
the lowest quality whose agreement with the float model on the same photos matches the codec's (measured
by the explorer's code, cached).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.core.deployment import DEMO_QUANTIZER, demo_deployment, describe, equal_fidelity_comparison
from eval.core.entry import Entry

OWN_POINT = ("--quantizer", "--levels", "--clip", "--model", "--split", "--weights")

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


ENTRY = Entry("demo-system", "demo", passthrough=True,
              help="offline: cloud server + edge client on localhost, real predictions on shipped photos")


def add_arguments(p) -> None:
    p.add_argument("--quantizer-file", default=str(DEMO_QUANTIZER),
                   help="the operating point to run (default: the explorer's >= 99 %% choice, make explore)")
    p.epilog = "Any other argument (--stream, --json, ...) is passed on to python -m edge_app."


def run(args) -> int:
    argv = list(args.passthrough)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    own = any(a.startswith(OWN_POINT) for a in argv)
    qfile = None
    if not own:
        _, qf = demo_deployment(args.quantizer_file)
        qfile = str(qf.path)
        print(f"# operating point {describe(qf)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        port_file, log_file = Path(tmp) / "port", Path(tmp) / "server.log"
        print("starting the cloud server on 127.0.0.1 ...", flush=True)
        with open(log_file, "w") as log:
            serve = ["--calibration", qfile] if qfile else []
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
            edge_q = ["--quantizer", qfile] if qfile else []
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
        from splitcodec.datasets import shipped_photos

        split, qf = demo_deployment(qfile)
        print_comparison(equal_fidelity_comparison(split, qf, [img for _, img in shipped_photos()],
                                                   label="shipped photos"))
    return rc
