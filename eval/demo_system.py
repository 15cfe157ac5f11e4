"""The main demo, offline: start a cloud server on localhost, run the edge client
with EfficientNet-Lite0 on the photos shipped with scikit-image, stop the server.

    python -m eval.demo_system [--stream] [extra edge_app arguments...]

Both apps run as separate processes that meet only over gRPC, as on a real
edge device and server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory() as tmp:
        port_file, log_file = Path(tmp) / "port", Path(tmp) / "server.log"
        print("starting the cloud server (EfficientNet-Lite0 tail) on 127.0.0.1 ...", flush=True)
        with open(log_file, "w") as log:
            server = subprocess.Popen([sys.executable, "-m", "cloud_app", "--host", "127.0.0.1", "--port", "0",
                                       "--port-file", str(port_file), "--device", "cpu"], stderr=log, env=env)
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
            rc = subprocess.call([sys.executable, "-m", "edge_app", "--server", f"127.0.0.1:{port}", "--photos",
                                  *argv], env=env)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        lines = [ln for ln in log_file.read_text().splitlines() if "status=" in ln]
        print(f"\nserver stopped; it logged {len(lines)} requests, e.g.\n  {lines[-1] if lines else '(none)'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
