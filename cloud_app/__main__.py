"""splitcodec-cloud: serve the tails of split models over gRPC.

    python -m cloud_app --port 50051 --models efficientnet_lite0 --models yolov3=yolov3.weights

Listens on 127.0.0.1 unless --host says otherwise (behind a load balancer: --host 0.0.0.0).  With a
token (SPLITCODEC_TOKEN or --token-file), every SplitInference call needs `authorization: Bearer
TOKEN`; the health service (for load-balancer probes) and reflection (unless --no-reflection) stay open.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from .admission import LIMIT_HELP, Limits
from .request_log import RequestLog, configure_logging
from .server import check_bindable, resolve_limits, start_async, stop_async, token_from_env
from .specs import ModelSpec, load_tails


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="splitcodec-cloud", description="Serve the cloud half of split models over gRPC.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 or [::] for all)")
    p.add_argument("--port", type=int, default=50051, help="port (0 = any free port; see --port-file)")
    p.add_argument("--port-file", help="write the bound port here once serving")
    p.add_argument("--models", action="append", default=None, metavar="NAME[:SPLIT][=WEIGHTS]",
                   help="a model to serve (repeatable); WEIGHTS: DEFAULT (trained, the default: refused with the fix "
                        "when they cannot be had), a file, or 'random'; default: efficientnet_lite0")
    p.add_argument("--calibration", action="append", default=[], metavar="FILE[=WEIGHTS]",
                   help="serve the model, split and weights a quantizer file was measured on (splitcodec-eval "
                        "explore --save), checked against the tail loaded; repeatable")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-batching", action="store_true", help="one tail forward pass per request")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--batch-window-ms", type=float, default=2.0)
    a = p.add_argument_group("admission control and limits")
    for f in dataclasses.fields(Limits):
        kind = int if f.type in ("int", "int | None") else float
        default = "" if f.default is None else f" (default {f.default:g})"
        a.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default, help=LIMIT_HELP[f.name] + default)
    s = p.add_argument_group("security")
    s.add_argument("--tls-cert", help="PEM certificate (with --tls-key: serve TLS)")
    s.add_argument("--tls-key", help="PEM private key")
    s.add_argument("--token-file", help="file holding the bearer token (or set SPLITCODEC_TOKEN)")
    s.add_argument("--token", help=argparse.SUPPRESS)  # visible in the process list: prefer the two above
    s.add_argument("--no-reflection", action="store_true", help="do not serve gRPC reflection")
    p.add_argument("--log-json", action="store_true",
                   help="every log line one JSON object (docs/deploy.md lists the fields), from the first to the last")
    p.add_argument("--grace", type=float, default=5.0, help="seconds in-flight requests get on shutdown")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics (/metrics) on this port (0: any free one, logged); off by default")
    p.add_argument("--metrics-host", default="127.0.0.1",
                   help="address the metrics port binds (default 127.0.0.1: the scraper runs on this machine)")
    return p


async def serve(args, log) -> int:
    check_bindable(args.host, args.port)  # before the models load: a port in use is one line at once
    if args.metrics_port:
        if args.metrics_port == args.port and args.metrics_host == args.host:
            raise OSError(f"--metrics-port {args.metrics_port} is the gRPC --port: choose another")
        check_bindable(args.metrics_host, args.metrics_port)
    specs = [ModelSpec.parse(m) for m in (args.models or ([] if args.calibration else ["efficientnet_lite0"]))]
    specs += [ModelSpec.from_calibration(path) for path in args.calibration]
    tls = (Path(args.tls_cert).read_bytes(), Path(args.tls_key).read_bytes()) if args.tls_cert else None
    token = token_from_env(args.token, args.token_file)
    if args.token:
        log.warning("--token is visible in the process list; use SPLITCODEC_TOKEN or --token-file")
    if token and not tls:
        log.warning("a bearer token without TLS travels in clear text: use --tls-cert/--tls-key, or TLS at the "
                    "load balancer")
    tails = load_tails(specs, args.device)
    limits = resolve_limits(Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)}), tails, specs)
    server, port, service = await start_async(
        f"{args.host}:{args.port}", tails, token=token, limits=limits, batching=not args.no_batching,
        max_batch=args.max_batch, batch_window_ms=args.batch_window_ms, tls=tls, reflection_on=not args.no_reflection,
        request_log=RequestLog(as_json=args.log_json),
        metrics_address=None if args.metrics_port is None else (args.metrics_host, args.metrics_port))
    log.info("serving %s on %s:%d (batching %s, auth %s, tls %s, reflection %s, N <= %d, messages <= %d bytes)",
             ", ".join(t.identity.short() for t in tails.values()), args.host, port,
             "off" if args.no_batching else "on", "on" if token else "off", "on" if tls else "off",
             "off" if args.no_reflection else "on", limits.max_levels, limits.max_message_bytes)
    if service.metrics is not None:
        log.info("metrics on http://%s:%d/metrics", args.metrics_host, service.metrics_port)
    if args.port_file:
        Path(args.port_file).write_text(f"{port}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a closed terminal drains too
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: finishing in-flight requests (grace %.1f s)", args.grace)
    await stop_async(server, service, args.grace)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_json, sys.stderr)
    log = logging.getLogger("splitcodec.cloud")

    def fail(message: str) -> int:  # one line (a JSON object with --log-json), exit 2
        if args.log_json:
            log.error("error: %s", message)
        else:
            print(f"error: {message}", file=sys.stderr)
        return 2

    if bool(args.tls_cert) != bool(args.tls_key):
        return fail("--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key), ("--token-file", args.token_file)):
        if path and not Path(path).is_file():
            return fail(f"{flag} {path}: no such file")
    try:
        return asyncio.run(serve(args, log))
    except KeyboardInterrupt:  # before serve() took the signals over (models still loading)
        return fail("interrupted while starting")
    except KeyError as e:
        return fail(str(e.args[0]) if e.args else str(e))
    except (FileNotFoundError, ValueError, OSError) as e:
        return fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
