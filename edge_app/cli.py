"""splitcodec-edge: run a model's head on the device, send the compressed
activations to a splitcodec-cloud server, print the predictions.

    python -m edge_app --server localhost:50051 --model efficientnet_lite0 photo.jpg folder/ video.mp4
    python -m edge_app --server localhost:50051 --photos          # the photos shipped with scikit-image
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from splitcodec.sequence import DEFAULT_REFRESH_PERIOD

from .head import load_head, prepare_runner
from .loop import FrameLoop, print_summary, summarize
import grpc

from .options import add_quantizer_arguments, encoder_config, parse_clip, quantizer_factory
from .sources import frames


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="splitcodec-edge", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="*", help="image files, folders, video files, or a camera index (0, 1, ...)")
    p.add_argument("--photos", action="store_true", help="use the photos shipped with scikit-image")
    p.add_argument("--server", default="localhost:50051")
    p.add_argument("--model", help="registered model (default: the exported head's, else efficientnet_lite0)")
    p.add_argument("--split", default=None, help="split point (default: the --quantizer file's, else the paper's)")
    p.add_argument("--weights", default=None, help="head weights (default: the model's bundled weights, if any)")
    add_quantizer_arguments(p)
    p.add_argument("--runtime", default="torch", choices=["torch", "onnx"], help="how to run the head")
    p.add_argument("--onnx", help="exported head for --runtime onnx; with its .json beside it (edge_app.export_head) "
                                  "torch is not needed at all. Exported on the fly if omitted")
    p.add_argument("--tls-ca", help="PEM root certificate: connect with TLS")
    p.add_argument("--token", help="bearer token (or SPLITCODEC_TOKEN)")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds")
    p.add_argument("--retry-for", type=float, default=60.0,
                   help="seconds to wait for a server that restarts or a replica that goes away (gRPC wait-for-ready "
                        "with backoff; a --stream resumes from an intra frame) before giving up (default %(default)g)")
    p.add_argument("--retries", type=int, default=20,
                   help="at most this many retries of one call, or new streams in a row without an answer, within "
                        "--retry-for (default %(default)s)")
    p.add_argument("--stream", action="store_true", help="send frames over one bidirectional stream")
    p.add_argument("--temporal", action=argparse.BooleanOptionalAction, default=True,
                   help="with --stream: code frames as a sequence, each predicted from the one before (intra "
                        "frames at the start, every --refresh-period frames and after any frame the server did "
                        "not answer); --no-temporal codes every frame alone")
    p.add_argument("--refresh-period", type=int, default=DEFAULT_REFRESH_PERIOD,
                   help="with --stream --temporal: at most this many frames between intra frames (0: only when "
                        "needed; default %(default)s)")
    p.add_argument("--stream-timeout", type=float, default=3600.0, help="deadline of a whole --stream call, seconds")
    p.add_argument("--realtime", action="store_true",
                   help="release file frames as a camera would, at the video's frame rate (or --fps): frames the "
                        "edge cannot take in time are dropped by the clock and counted as skipped, never queued")
    p.add_argument("--fps", type=float, default=None,
                   help="the camera's frame rate: with --realtime (default: the video's), or for --bitrate")
    link = p.add_argument_group("live links (docs/live.md)")
    link.add_argument("--bitrate", metavar="KBPS|auto[:MAX_KBPS]",
                      help="with --stream: hold the stream at KBPS kbit/s through a --bufsize buffer that never "
                           "overflows (per-frame RDO lambda, N at intra frames, frames skipped when even the cheapest "
                           "setting does not fit); 'auto': the target follows the link, estimated from the answers")
    link.add_argument("--bufsize", type=float, default=200.0, metavar="MS",
                      help="with --bitrate: the buffer, in ms of the target rate (default %(default)g)")
    link.add_argument("--max-in-flight", type=int, default=None, metavar="K",
                      help="with --stream: read the next frame only when fewer than K await an answer, so a slow "
                           "link queues at most K frames (0: no bound; default 2 with --realtime or --bitrate, else 0)")
    link.add_argument("--max-latency-ms", type=float, default=None, metavar="MS",
                      help="skip a frame (counted) when its age plus the last round trip is over MS")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: a header, one row per frame (refused, unreadable and unanswered "
                        "frames too), a summary (schemas: docs/deploy.md)")
    return p


def _validate_link(args) -> None:
    from .link import parse_bitrate

    if args.bitrate is not None:
        parse_bitrate(args.bitrate)
        if not (args.stream and args.temporal):
            raise ValueError("--bitrate needs --stream with temporal coding (it adapts a sequence's frames)")
        if not args.bufsize > 0:
            raise ValueError(f"--bufsize must be > 0 ms, got {args.bufsize:g}")
    if args.max_in_flight is not None:
        if args.max_in_flight < 0:
            raise ValueError(f"--max-in-flight must be >= 0, got {args.max_in_flight}")
        if not args.stream:
            raise ValueError("--max-in-flight goes with --stream (single calls have one frame in flight)")
    else:
        args.max_in_flight = 2 if args.stream and (args.realtime or args.bitrate) else 0
    if args.max_latency_ms is not None and not args.max_latency_ms > 0:
        raise ValueError(f"--max-latency-ms must be > 0, got {args.max_latency_ms:g}")


def validate(args) -> None:
    """Every option and input, before any model loads: ``ValueError`` (one line) for the first problem."""
    from splitcodec.errors import SplitCodecError

    from .client import channel_target
    from .options import quantizer_file
    from .sources import check_inputs

    if not args.inputs and not args.photos:
        raise ValueError("give image/video inputs or --photos")
    if args.levels is not None and not 2 <= args.levels <= 256:
        raise ValueError(f"--levels must be 2..256, got {args.levels}")
    for flag, value, low in (("--refresh-period", args.refresh_period, 0), ("--retries", args.retries, 0),
                             ("--retry-for", args.retry_for, 0), ("--top-k", args.top_k, 1)):
        if value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value:g}")
    for flag, value in (("--timeout", args.timeout), ("--stream-timeout", args.stream_timeout)):
        if not value > 0:
            raise ValueError(f"{flag} must be > 0, got {value:g}")
    if args.clip and args.clip != "auto":
        parse_clip(args.clip)
    if args.tls_ca:
        path = Path(args.tls_ca)
        if not path.is_file():
            raise ValueError(f"--tls-ca {args.tls_ca}: no such file")
        if b"-----BEGIN CERTIFICATE-----" not in path.read_bytes():
            raise ValueError(f"--tls-ca {args.tls_ca} is not a PEM certificate")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be > 0, got {args.fps:g}")
    if args.fps is not None and not (args.realtime or args.bitrate):
        raise ValueError("--fps goes with --realtime or --bitrate")
    _validate_link(args)
    channel_target(args.server)  # a malformed --server list
    try:
        quantizer_file(args)
    except SplitCodecError as e:
        raise ValueError(str(e)) from None
    check_inputs(args)
    if args.realtime and args.fps is None:
        from .sources import VIDEO_SUFFIXES, video_fps

        videos = [v for v in args.inputs if Path(v).suffix.lower() in VIDEO_SUFFIXES]
        args.fps = video_fps(videos[0]) if videos else None
        if args.fps is None:
            raise ValueError("--realtime needs --fps (no video input declares its frame rate)")
    if args.bitrate and args.fps is None:
        raise ValueError("--bitrate needs the frame rate: --realtime (a video's own) or --fps")


class _Stop:
    """SIGINT/SIGTERM: the first asks the loop to stop reading frames (those in flight are answered or listed,
    the summary prints, exit 130); a second one stops at once (still with the summary)."""

    def __init__(self, loop: FrameLoop):
        self.loop, self.signals = loop, 0

    def __call__(self, signum, frame_):
        import signal

        self.signals += 1
        self.loop.stop.set()
        if self.signals > 1:
            raise KeyboardInterrupt
        print(f"# {signal.Signals(signum).name}: stopping after the frames in flight (again to stop now)",
              file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:  # before the frame loop took the signals over (a model still loading)
        print("error: interrupted before the first frame", file=sys.stderr)
        return 130


def _run(args) -> int:
    import os
    import signal
    import threading

    from .client import (
        EXIT_INTERRUPTED, EXIT_PROTOCOL, EXIT_REFUSED, EXIT_UNANSWERED, EXIT_UNREACHABLE, EXIT_USAGE, EdgeClient,
        ServerUnreachable, StreamProtocolError,
    )
    from .sources import InputError

    try:
        validate(args)
        head, model, split_name, at_paper = load_head(args)
        # the registry's operating point was measured on the model's trained weights at its paper split
        from splitcodec.identity import DEFAULT_WEIGHTS

        make_quantizer = quantizer_factory(args, model, at_paper and head.identity.weights == DEFAULT_WEIGHTS)
        encoder_config(args, head.feature_shape)  # checked up front: a usage error, not a failed frame
    except (KeyError, FileNotFoundError, ValueError) as e:  # QuantizerError, IdentityMismatchError: ValueErrors
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return EXIT_USAGE
    loop = FrameLoop(args, prepare_runner(args, head), make_quantizer, model, split_name)
    tls = Path(args.tls_ca).read_bytes() if args.tls_ca else None
    client = EdgeClient(args.server, token=args.token or os.environ.get("SPLITCODEC_TOKEN"), tls_ca=tls,
                        timeout=args.timeout, retries=args.retries, retry_for=args.retry_for)
    stop = _Stop(loop)
    # only the main thread may set signal handlers (main() embedded in a thread leaves them to its host)
    previous = ({sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
                if threading.current_thread() is threading.main_thread() else {})
    rc = None
    try:
        _wait_for_server(client, args)
        source = frames(args)
        if args.realtime:
            from .sources import Paced

            source = loop.paced = Paced(source, args.fps)
        if not args.json and sys.stderr.isatty():
            from tqdm import tqdm

            source = tqdm(source, unit="frame", leave=False)
        if args.stream:
            if loop.run_stream(client, source):
                rc = EXIT_UNANSWERED
        else:
            loop.run_calls(client, source)
    except KeyboardInterrupt:  # a second signal: stop now
        rc = EXIT_INTERRUPTED
    except ServerUnreachable as e:
        print(f"error: {e}", file=sys.stderr)
        rc = EXIT_UNREACHABLE
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        rc = EXIT_USAGE
    except StreamProtocolError as e:
        print(f"error: invalid answer from the server: {e}", file=sys.stderr)
        rc = EXIT_PROTOCOL
    except grpc.RpcError as e:  # a status that says the deployment is wrong (loop.FATAL), or a stream refused
        print(f"error: server answered {e.code().name}: {e.details()}", file=sys.stderr)
        rc = EXIT_REFUSED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        client.close()
    skipped = {"clock": len(loop.paced.skipped) if loop.paced else 0, **loop.link.skipped}
    summary = summarize(loop.rows, interrupted=stop.signals > 0, skipped=skipped, held=loop.link.held_for_slot)
    print_summary(summary, args.json, loop.out)
    if stop.signals:
        return EXIT_INTERRUPTED
    if rc is not None:
        return rc
    if summary["frames"] and summary["unreadable"] == summary["frames"]:
        print("error: no input could be read", file=sys.stderr)
        return EXIT_USAGE
    return 0 if not summary["errors"] else 1  # EXIT_OK / EXIT_FRAME_ERRORS


def _wait_for_server(client, args) -> None:
    """Connect before the first frame: up to --retry-for seconds (a camera agent may start before its server),
    saying so after the first --timeout."""
    from .client import ServerUnreachable

    first = min(args.timeout, args.retry_for) if args.retry_for else args.timeout
    try:
        client.wait_ready(first)
    except ServerUnreachable as e:
        if args.retry_for <= first:
            raise
        print(f"# {e}; waiting up to --retry-for {args.retry_for:g} s", file=sys.stderr, flush=True)
        client.wait_ready(args.retry_for - first)


if __name__ == "__main__":
    sys.exit(main())
