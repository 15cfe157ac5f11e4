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
from .options import add_quantizer_arguments, encoder_config, quantizer_factory
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
    p.add_argument("--retries", type=int, default=3, help="retries with backoff while the server is unavailable")
    p.add_argument("--stream", action="store_true", help="send frames over one bidirectional stream")
    p.add_argument("--temporal", action=argparse.BooleanOptionalAction, default=True,
                   help="with --stream: code frames as a sequence, each predicted from the one before (intra "
                        "frames at the start, every --refresh-period frames and after any frame the server did "
                        "not answer); --no-temporal codes every frame alone")
    p.add_argument("--refresh-period", type=int, default=DEFAULT_REFRESH_PERIOD,
                   help="with --stream --temporal: at most this many frames between intra frames (0: only when "
                        "needed; default %(default)s)")
    p.add_argument("--stream-timeout", type=float, default=3600.0, help="deadline of a whole --stream call, seconds")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON object per frame, then a summary object")
    return p


def main(argv=None) -> int:
    import os

    from .client import (
        EXIT_PROTOCOL, EXIT_REFUSED, EXIT_UNANSWERED, EXIT_UNREACHABLE, EXIT_USAGE, EdgeClient, ServerUnreachable,
        StreamProtocolError,
    )

    args = build_parser().parse_args(argv)
    if not args.inputs and not args.photos:
        print("error: give image/video inputs or --photos", file=sys.stderr)
        return EXIT_USAGE
    try:
        head, model, split_name, at_paper = load_head(args)
        make_quantizer = quantizer_factory(args, model, at_paper)
        encoder_config(args, head.feature_shape)  # checked up front: a usage error, not a failed frame
    except (KeyError, FileNotFoundError, ValueError) as e:  # QuantizerError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    loop = FrameLoop(args, prepare_runner(args, head), make_quantizer, model, split_name)
    tls = Path(args.tls_ca).read_bytes() if args.tls_ca else None
    client = EdgeClient(args.server, token=args.token or os.environ.get("SPLITCODEC_TOKEN"), tls_ca=tls,
                        timeout=args.timeout, retries=args.retries)
    try:
        client.wait_ready(args.timeout)
        source = frames(args)
        if not args.json and sys.stderr.isatty():
            from tqdm import tqdm

            source = tqdm(source, unit="frame", leave=False)
        if args.stream:
            if loop.run_stream(client, source):
                return EXIT_UNANSWERED
        else:
            loop.run_calls(client, source)
    except ServerUnreachable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except StreamProtocolError as e:
        print(f"error: invalid answer from the server: {e}", file=sys.stderr)
        return EXIT_PROTOCOL
    except Exception as e:  # grpc.RpcError and friends: say what the server said
        import grpc

        if isinstance(e, grpc.RpcError):
            print(f"error: server answered {e.code().name}: {e.details()}", file=sys.stderr)
            return EXIT_REFUSED
        raise
    finally:
        client.close()
    summary = summarize(loop.rows)
    print_summary(summary, args.json, loop.out)
    return 0 if not summary["errors"] else 1  # EXIT_OK / EXIT_FRAME_ERRORS


if __name__ == "__main__":
    sys.exit(main())
