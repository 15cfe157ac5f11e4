"""splitcodec-edge: run a model's head on the device, send the compressed
activations to a splitcodec-cloud server, print the predictions.

    python -m edge_app --server localhost:50051 --model efficientnet_lite0 photo.jpg folder/ video.mp4
    python -m edge_app --server localhost:50051 --photos          # the photos shipped with scikit-image
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="splitcodec-edge", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="*", help="image files, folders, video files, or a camera index (0, 1, ...)")
    p.add_argument("--photos", action="store_true", help="use the photos shipped with scikit-image")
    p.add_argument("--server", default="localhost:50051")
    p.add_argument("--model", help="registered model (default: the exported head's, else efficientnet_lite0)")
    p.add_argument("--split", default=None, help="split point (default: the --quantizer file's, else the paper's)")
    p.add_argument("--weights", default=None, help="head weights (default: the model's bundled weights, if any)")
    q = p.add_argument_group("quantizer (default: the model's measured operating point)")
    q.add_argument("--levels", type=int, help="number of quantizer levels N (2..256)")
    q.add_argument("--clip", help="'C_MIN:C_MAX' (or 'C_MAX' with C_MIN = 0), or 'auto' (MSE-optimal on the first frame)")
    q.add_argument("--quantizer", help="a quantizer file (splitcodec-eval calibrate / explore --save); its model "
                                       "and split are used unless --model/--split say otherwise")
    q.add_argument("--context-model", default="spatial", choices=["spatial", "paper"])
    q.add_argument("--rdo-lambda", type=float, default=None,
                   help="rate-distortion optimised encoding (λ >= 0, dimensionless; default: the --quantizer "
                        "file's, else 0 = plain quantization); any decoder reads the streams")
    q.add_argument("--rdo-lookahead", action="store_true",
                   help="RDO looks one element ahead (fewer bits below ~0.5 bit/element, slower; default: the "
                        "--quantizer file's)")
    q.add_argument("--error-feedback", type=float, default=None,
                   help="diffuse each element's quantization error into the next one, 0..1 (default: the "
                        "--quantizer file's, else 0); keeps channel means, which the network behind the split "
                        "notices more than element-wise error. A --quantizer file's channel_weights (task-aware "
                        "RDO) apply whenever λ > 0")
    q.add_argument("--error-diffusion", choices=["row", "plane"], default=None,
                   help="where --error-feedback goes: the next element in the row, or half to the right and half "
                        "below ('plane': less low-frequency error, fewer bits for the same fidelity; default: the "
                        "--quantizer file's, else row)")
    p.add_argument("--runtime", default="torch", choices=["torch", "onnx"], help="how to run the head")
    p.add_argument("--onnx", help="exported head for --runtime onnx; with its .json beside it (edge_app.export_head) "
                                  "torch is not needed at all. Exported on the fly if omitted")
    p.add_argument("--tls-ca", help="PEM root certificate: connect with TLS")
    p.add_argument("--token", help="bearer token (or SPLITCODEC_TOKEN)")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds")
    p.add_argument("--retries", type=int, default=3, help="retries with backoff while the server is unavailable")
    p.add_argument("--stream", action="store_true", help="send frames over one bidirectional stream")
    p.add_argument("--stream-timeout", type=float, default=3600.0, help="deadline of a whole --stream call, seconds")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON object per frame, then a summary object")
    return p


def frames(args):
    """(name, H×W×3 uint8 RGB) for every input."""
    import numpy as np
    from PIL import Image

    if args.photos:
        from splitcodec.datasets import shipped_photos

        yield from shipped_photos()
    for item in args.inputs:
        path = Path(item)
        if item.isdigit() and not path.exists():
            yield from _video(int(item), f"camera{item}")
        elif path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
                yield str(f), np.asarray(Image.open(f).convert("RGB"))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video(str(path), path.name)
        elif path.exists():
            yield str(path), np.asarray(Image.open(path).convert("RGB"))
        else:
            raise FileNotFoundError(f"input not found: {item}")


def _video(source, name):
    try:
        import cv2
    except ImportError:
        raise SystemExit("video files and cameras need OpenCV: pip install opencv-python-headless") from None
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise SystemExit(f"cannot open video source {source!r}")
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        yield f"{name}#{i}", bgr[..., ::-1].copy()
        i += 1
    cap.release()


def quantizer_factory(args, model: str, at_paper_split: bool):
    """A function first-frame features -> quantizer, from the options (see --help)."""
    import numpy as np

    import splitcodec as sc
    from splitcodec.calibration import load_quantizer
    from splitcodec.inference import default_operating_point

    if args.quantizer:
        q, _ = load_quantizer(args.quantizer)
        return lambda first: q
    levels, clip = args.levels, None
    default = default_operating_point(model) if at_paper_split else None
    if args.clip and args.clip != "auto":
        lo, _, hi = args.clip.replace(",", ":").rpartition(":")
        clip = (float(lo) if lo else 0.0, float(hi))
    if levels is None:
        levels = default[0] if default else 8
    if clip is None and args.clip != "auto" and default and default[0] == levels:
        clip = default[1]
    if clip is not None:
        q = sc.UniformQuantizer(clip[0], clip[1], levels)
        return lambda first: q

    def auto(first):  # MSE-optimal on the first frame's activations
        lo = float(min(0.0, np.percentile(first, 0.1)))
        return sc.UniformQuantizer(lo, sc.mse_optimal_clip(first, levels, lo), levels)

    return auto


def load_head(args):
    """(head, model, split name, at paper split): an OnnxHead when the exported head has its
    description beside it (no torch), else the registered model split with torch."""
    if args.runtime == "onnx" and args.onnx and Path(str(args.onnx) + ".json").exists():
        from splitcodec.inference import OnnxHead

        head = OnnxHead(args.onnx)
        if args.model and args.model != head.name:
            raise ValueError(f"{args.onnx} is a head of {head.name}, not {args.model}")
        return head, head.name, head.split, head.split == head.paper_split
    import os

    import torch

    from splitcodec import models

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = args.model or _quantizer_file_field(args, "model") or "efficientnet_lite0"
    weights = args.weights or ("DEFAULT" if model == "efficientnet_lite0" else None)
    split = models.split_model(model, args.split or _quantizer_file_field(args, "split") or "paper", weights=weights)
    return split, model, split.split, split.split == split.paper_split


def encoder_options(args, feature_shape=None) -> dict:
    """The FeatureCodec's encoder options: the command line's, else the --quantizer file's.  Channel weights
    and look-ahead apply only with RDO (λ > 0); with ``feature_shape`` the weights are checked against the
    split's channels up front (ValueError)."""
    doc = _quantizer_file_doc(args)
    lam = args.rdo_lambda if args.rdo_lambda is not None else (doc.get("rdo_lambda") or 0.0)
    fb = args.error_feedback if args.error_feedback is not None else (doc.get("error_feedback") or 0.0)
    weights = doc.get("channel_weights") if lam > 0 else None
    ahead = bool(args.rdo_lookahead or doc.get("rdo_lookahead")) and lam > 0
    diffusion = (args.error_diffusion or doc.get("error_diffusion") or "row") if fb > 0 else "row"
    if weights is not None and feature_shape is not None and len(weights) != feature_shape[0]:
        raise ValueError(f"the --quantizer file's channel_weights has {len(weights)} values but the split has "
                         f"{feature_shape[0]} channels")
    return {"rdo_lambda": lam, "error_feedback": fb, "channel_weights": weights, "rdo_lookahead": ahead,
            "error_diffusion": diffusion}


def _quantizer_file_doc(args) -> dict:
    """The --quantizer file's fields (model, split, rdo_lambda, ...); empty without one."""
    if not args.quantizer:
        return {}
    from splitcodec.calibration import load_quantizer

    return load_quantizer(args.quantizer)[1]


def _quantizer_file_field(args, key: str):
    """A field of the --quantizer file, if there is one."""
    return _quantizer_file_doc(args).get(key)


def input_jpeg90_bytes(image, spec: dict) -> int:
    """Bytes of the model input (after resize and crop, as 8-bit RGB) coded as JPEG-90: what a
    cloud-only deployment would send at the least."""
    from PIL import Image

    from splitcodec.preprocessing import model_input_rgb

    buf = io.BytesIO()
    Image.fromarray(model_input_rgb(image, spec)).save(buf, format="JPEG", quality=90)
    return buf.tell()


def prepare_runner(args, head):
    """The head runner (torch, or onnxruntime on an exported head; exported on the fly if needed)."""
    from splitcodec.inference import EdgeEncoder, OnnxHead

    onnx_path = args.onnx
    if args.runtime == "onnx" and not onnx_path:  # export on the fly (writes the description too)
        import tempfile

        from splitcodec.models.export import export_head_onnx

        onnx_path = export_head_onnx(head, Path(tempfile.mkdtemp()) / "head.onnx")
        head = OnnxHead(onnx_path)
    return EdgeEncoder(head, None, runtime=args.runtime, onnx_path=onnx_path)  # the head, run once per frame


class FrameLoop:
    """Encode frames, send them (one call each, or over one stream), report each answer as a row."""

    def __init__(self, args, runner, make_quantizer, model: str, split_name: str, out=None):
        self.args, self.runner, self.make_quantizer = args, runner, make_quantizer
        self.model, self.split_name, self.out = model, split_name, out or sys.stdout
        self.encoder = None
        self.rows: list[dict] = []

    def _first_frame(self, image) -> None:
        """The quantizer (it may be fitted on the first frame) and the encoder, warmed up."""
        import splitcodec as sc
        from splitcodec.inference import EdgeEncoder

        args = self.args
        q = self.make_quantizer(self.runner.features(image)[0])
        codec = sc.FeatureCodec(q, args.context_model, **encoder_options(args))
        self.encoder = EdgeEncoder(self.runner.head, codec)
        self.encoder.warmup()
        if not args.json:
            print(f"# {self.model} split {self.split_name} {tuple(self.runner.head.feature_shape)}; quantizer {q!r}; "
                  f"context model {args.context_model}; runtime {self.encoder.runtime}"
                  f"{' (no torch)' if 'torch' not in sys.modules else ''}; server {args.server}", file=self.out)

    def encode(self, name, image, i):
        from splitcodec.wire import pb

        if self.encoder is None:
            self._first_frame(image)
        frame = self.encoder.encode(image)
        req = pb.InferRequest(bitstream=frame.bitstream, model=self.model, split=self.split_name,
                              request_id=f"{i}:{name}", top_k=self.args.top_k,
                              original_size=pb.ImageSize(width=frame.original_size[0], height=frame.original_size[1]))
        return frame, req

    def report(self, name, image, frame, resp, rtt_ms) -> None:
        if resp.HasField("error") and resp.error.code:
            row = {"frame": name, "error": f"{resp.error.code}: {resp.error.message}"}
        else:
            preds = ([{"class": c.index, "name": c.name, "score": round(c.score, 4)} for c in resp.classes] or
                     [{"category_id": d.category_id, "name": d.name, "score": round(d.score, 4),
                       "box": [round(v, 1) for v in (d.x0, d.y0, d.x1, d.y1)]} for d in resp.detections])
            row = {"frame": name, "predictions": preds, "bytes": len(frame.bitstream),
                   "bits_per_element": round(frame.bits_per_element, 4), "raw_float32_bytes": 4 * frame.elements,
                   "input_jpeg90_bytes": input_jpeg90_bytes(image, self.runner.head.preprocess_spec),
                   "head_ms": round(frame.head_ms, 2), "encode_ms": round(frame.encode_ms, 2),
                   "round_trip_ms": round(rtt_ms, 2), "server_decode_ms": round(resp.timings.decode_ms, 2),
                   "server_tail_ms": round(resp.timings.tail_ms, 2)}
        self.rows.append(row)
        if self.args.json:
            print(json.dumps(row), file=self.out, flush=True)
        elif "error" in row:
            print(f"{name[:28]:<28} ERROR {row['error']}", file=self.out)
        else:
            top = row["predictions"][0] if row["predictions"] else {"name": "(nothing)", "score": 0.0}
            print(f"{name[:28]:<28} {top['name'][:22]:<22} {top['score']:>5.2f} {row['bytes']:>7} B "
                  f"{row['bits_per_element']:>6.3f} b/e  head {row['head_ms']:>6.1f}  enc {row['encode_ms']:>5.1f}  "
                  f"rtt {row['round_trip_ms']:>6.1f} ms", file=self.out, flush=True)

    def run_calls(self, client, source) -> None:
        """One ``Infer`` call per frame."""
        for i, (name, image) in enumerate(source):
            frame, req = self.encode(name, image, i)
            t0 = time.perf_counter()
            resp = client.infer(req)
            # round trip = network + server decode + tail (the head and encode are timed apart)
            self.report(name, image, frame, resp, 1e3 * (time.perf_counter() - t0))

    def run_stream(self, client, source) -> list[str]:
        """Frames over ``InferStream`` (answers matched by request id, broken streams resumed); returns the
        request ids left unanswered, after recording each as a row."""
        from .client import StreamSession

        sent = {}

        def produce():
            for i, (name, image) in enumerate(source):
                frame, req = self.encode(name, image, i)
                sent[req.request_id] = (name, image, frame, time.perf_counter())
                yield req.request_id, req

        def answer(rid, resp):
            name, image, frame, t0 = sent.pop(rid)
            self.report(name, image, frame, resp, 1e3 * (time.perf_counter() - t0))

        session = StreamSession(client, retries=self.args.retries, timeout=self.args.stream_timeout)
        unanswered = session.run(produce(), answer)
        for rid in unanswered:
            self.rows.append({"frame": sent[rid][0], "error": "not answered"})
        if unanswered:
            print(f"error: {len(unanswered)} frame(s) not answered after {session.attempts} stream(s) "
                  f"({'; '.join(session.errors)[:300]}): {', '.join(unanswered)[:300]}"
                  + ("" if session.input_exhausted else f"; the input was not read past {unanswered[-1]!r}: "
                     "later frames were not sent"), file=sys.stderr)
        return unanswered


def summarize(rows: list[dict]) -> dict:
    import numpy as np

    ok = [r for r in rows if "error" not in r]
    summary = {"frames": len(rows), "errors": len(rows) - len(ok)}
    if ok:
        mean = lambda k: float(np.mean([r[k] for r in ok]))  # noqa: E731
        rtt = [r["round_trip_ms"] for r in ok]
        summary.update({"mean_bytes_per_frame": mean("bytes"), "mean_bits_per_element": mean("bits_per_element"),
                        "raw_float32_bytes": mean("raw_float32_bytes"),
                        "mean_input_jpeg90_bytes": mean("input_jpeg90_bytes"),
                        "vs_float32": mean("raw_float32_bytes") / mean("bytes"),
                        "vs_input_jpeg90": mean("input_jpeg90_bytes") / mean("bytes"),
                        "round_trip_ms_p50": float(np.percentile(rtt, 50)),
                        "round_trip_ms_p95": float(np.percentile(rtt, 95)),
                        "head_ms_mean": mean("head_ms"), "encode_ms_mean": mean("encode_ms")})
    return summary


def print_summary(summary: dict, as_json: bool, out) -> None:
    if as_json:
        print(json.dumps({"summary": summary}), file=out)
    elif summary["frames"] > summary["errors"]:
        s = summary
        print(f"# {s['frames']} frames: {s['mean_bytes_per_frame']:.0f} B/frame on average = "
              f"{s['vs_float32']:.0f}x smaller than the float32 tensor ({s['raw_float32_bytes']:.0f} B) and "
              f"{s['vs_input_jpeg90']:.1f}x smaller than the model input as JPEG-90 "
              f"({s['mean_input_jpeg90_bytes']:.0f} B); "
              f"round trip p50 {s['round_trip_ms_p50']:.1f} ms, p95 {s['round_trip_ms_p95']:.1f} ms; "
              f"head {s['head_ms_mean']:.1f} ms, encode {s['encode_ms_mean']:.1f} ms (after a warm-up run, "
              "not timed)", file=out)


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
        encoder_options(args, head.feature_shape)
    except (KeyError, FileNotFoundError, ValueError) as e:
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
