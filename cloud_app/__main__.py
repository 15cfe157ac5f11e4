"""splitcodec-cloud: serve the tails of split models over gRPC.

    python -m cloud_app --port 50051 --models efficientnet_lite0 --models yolov3=yolov3.weights
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .server import DEFAULT_MAX_MESSAGE_BYTES, ModelSpec, create_server, shutdown, token_from_env


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="splitcodec-cloud", description="Serve the cloud half of split models over gRPC.")
    p.add_argument("--host", default="[::]", help="address to bind (default: all interfaces)")
    p.add_argument("--port", type=int, default=50051, help="port (0 = any free port; see --port-file)")
    p.add_argument("--port-file", help="write the bound port here once serving")
    p.add_argument("--models", action="append", default=None, metavar="NAME[:SPLIT][=WEIGHTS]",
                   help="a model to serve (repeatable); default: efficientnet_lite0 with its bundled weights")
    p.add_argument("--calibration", action="append", default=[], metavar="FILE",
                   help="serve the model and split of a quantizer file (splitcodec-eval explore --save); repeatable")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, default=16, help="gRPC worker threads")
    p.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES)
    p.add_argument("--no-batching", action="store_true", help="one tail forward pass per request")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--batch-window-ms", type=float, default=2.0)
    p.add_argument("--tls-cert", help="PEM certificate (with --tls-key: serve TLS)")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--token", help="require 'authorization: Bearer TOKEN' (or set SPLITCODEC_TOKEN)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds in-flight requests get on shutdown")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("splitcodec.cloud")
    if bool(args.tls_cert) != bool(args.tls_key):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        specs = [ModelSpec.parse(m) for m in (args.models or ([] if args.calibration else ["efficientnet_lite0"]))]
        specs += [ModelSpec.from_calibration(path) for path in args.calibration]
        tls = (Path(args.tls_cert).read_bytes(), Path(args.tls_key).read_bytes()) if args.tls_cert else None
        server, port, service = create_server(
            f"{args.host}:{args.port}", specs=specs, token=token_from_env(args.token), workers=args.workers,
            max_message_bytes=args.max_message_bytes, batching=not args.no_batching, max_batch=args.max_batch,
            batch_window_ms=args.batch_window_ms, device=args.device, tls=tls)
    except (KeyError, FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("serving %s on port %d (batching %s, auth %s, tls %s)",
             ", ".join(f"{m}:{s}" for m, s in service.batchers), port, "off" if args.no_batching else "on",
             "on" if service.token else "off", "on" if tls else "off")
    if args.port_file:
        Path(args.port_file).write_text(f"{port}\n")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down: finishing in-flight requests (grace %.1f s)", args.grace)
    shutdown(server, service, args.grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
