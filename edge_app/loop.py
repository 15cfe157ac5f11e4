"""The frame loop: encode each frame, send it (one call each, or over one stream), report each answer.

Output (``--json``: one JSON object per line): a header first (``{"header": {...}}``: model, split, the head's
deployment identity, quantizer and its file, encoder configuration, runtime, server), then one row per input
frame — answered, refused, unreadable or left unanswered alike — then ``{"summary": {...}}``.  The schemas
are in docs/deploy.md.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import threading
import time

import grpc

import splitcodec as sc

from .options import encoder_config
from .sources import UnreadableFrame

# statuses that say the deployment is wrong, not the frame: every later frame would fail the same way (exit 4)
FATAL = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.FAILED_PRECONDITION)


def input_jpeg90_bytes(image, spec: dict) -> int:
    """Bytes of the model input (after resize and crop, as 8-bit RGB) coded as JPEG-90: what a
    cloud-only deployment would send at the least."""
    from PIL import Image

    from splitcodec.preprocessing import model_input_rgb

    buf = io.BytesIO()
    Image.fromarray(model_input_rgb(image, spec)).save(buf, format="JPEG", quality=90)
    return buf.tell()


class FrameLoop:
    """Encode frames, send them (one call each, or over one stream), report each answer as a row."""

    def __init__(self, args, runner, make_quantizer, model: str, split_name: str, out=None):
        self.args, self.runner, self.make_quantizer = args, runner, make_quantizer
        self.model, self.split_name, self.out = model, split_name, out or sys.stdout
        self.encoder = None
        self.sequence = None  # a SequenceEncoder while frames go over a stream with temporal coding
        self.rows: list[dict] = []
        self.stop = threading.Event()  # set by SIGINT/SIGTERM: no new frame is read, those in flight finish
        self.paced = None  # a sources.Paced with --realtime: frames carry the camera's capture time
        self._header_done = False
        self._head_identity = None
        from .link import LinkControl

        self.link = LinkControl(args, args.fps)  # --bitrate, --max-latency-ms

    def header(self) -> dict:
        """What this run uses: printed once, before the first row."""
        from .options import quantizer_file

        qf = quantizer_file(self.args)
        q = self.encoder.codec.quantizer if self.encoder else getattr(self.make_quantizer, "fixed", None)
        return {"model": self.model, "split": self.split_name, "identity": self.runner.identity.to_dict(),
                "feature_shape": list(self.runner.head.feature_shape),
                "quantizer": repr(q) if q is not None else "fitted on the first frame (--clip auto)",
                "quantizer_file": str(qf.path) if qf else None, "encoder": encoder_config(self.args).to_dict(),
                "runtime": self.runner.runtime, "torch_loaded": sys.modules.get("torch") is not None,
                "server": self.args.server, "stream": bool(self.args.stream),
                "temporal": bool(self.args.stream and self.args.temporal), "link": self.link.describe(),
                "max_in_flight": self.args.max_in_flight if self.args.stream else None,
                "splitcodec": sc.__version__}

    def _print_header(self) -> None:
        if self._header_done:
            return
        self._header_done = True
        h = self.header()
        if self.args.json:
            print(json.dumps({"header": h}), file=self.out, flush=True)
        else:
            print(f"# {h['model']} split {h['split']} {tuple(h['feature_shape'])} weights "
                  f"{h['identity']['weights']}@{h['identity']['weights_fingerprint'][:8]}; quantizer {h['quantizer']}"
                  f"{' from ' + h['quantizer_file'] if h['quantizer_file'] else ''}; "
                  f"{self.encoder.codec.config if self.encoder else encoder_config(self.args)!r}; runtime "
                  f"{h['runtime']}{'' if h['torch_loaded'] else ' (no torch)'}; server {h['server']}",
                  file=self.out, flush=True)

    def _first_frame(self, image) -> None:
        """The quantizer (it may be fitted on the first frame) and the encoder, warmed up."""
        from splitcodec.inference import EdgeEncoder
        from splitcodec.wire import identity_message

        q = self.make_quantizer(self.runner.features(image)[0])
        codec = sc.FeatureCodec(q, config=encoder_config(self.args))
        self.encoder = EdgeEncoder(self.runner.head, codec)
        self.encoder.warmup()
        self._head_identity = identity_message(self.encoder.identity)
        self._print_header()

    def record(self, row: dict) -> None:
        """One frame's row: kept for the summary and printed (``--json``: one object)."""
        self._print_header()
        self.rows.append(row)
        if self.args.json:
            print(json.dumps(row), file=self.out, flush=True)
        elif "error" in row:
            print(f"{row['frame'][:28]:<28} ERROR {row['error']}", file=self.out, flush=True)
        else:
            top = row["predictions"][0] if row["predictions"] else {"name": "(nothing)", "score": 0.0}
            print(f"{row['frame'][:28]:<28} {top['name'][:22]:<22} {top['score']:>5.2f} {row['bytes']:>7} B "
                  f"{row['bits_per_element']:>6.3f} b/e  head {row['head_ms']:>6.1f}  enc {row['encode_ms']:>5.1f}  "
                  f"rtt {row['round_trip_ms']:>6.1f} ms", file=self.out, flush=True)

    def encode(self, name, image, i, temporal: bool = False, captured: float | None = None):
        """(frame, request) of one input; (None, None) when the rate controller skipped it (--bitrate)."""
        if self.encoder is None:
            self._first_frame(image)
        if temporal and self.sequence is None:
            self.sequence = self.link.sequence(self.encoder.codec)
        if self.link.controller is None:
            frame = self.encoder.encode(image, self.sequence if temporal else None)
            return frame, self._request(frame, f"{i}:{name}")
        from splitcodec.inference import EncodedFrame

        t0 = time.perf_counter()
        feats, size = self.encoder.features(image)
        t1 = time.perf_counter()
        data, chosen = self.link.encode(feats, time.monotonic() if captured is None else captured)
        if data is None:
            return None, None
        frame = EncodedFrame(data, size, int(feats.size), 1e3 * (t1 - t0), 1e3 * (time.perf_counter() - t1), feats,
                             chosen)
        return frame, self._request(frame, f"{i}:{name}")

    def _sequence_encoder(self):
        """The SequenceEncoder itself (under the rate controller, with --bitrate)."""
        return self.link.controller.sequence if self.link.controller else self.sequence

    def _request(self, frame, request_id):
        """The frame's request; with --stream the head identity goes with each stream's first frame only
        (``StreamSession(stream_head=)``), with single calls in every one."""
        from splitcodec.wire import pb

        head = None if self.args.stream else self._head_identity
        return pb.InferRequest(bitstream=frame.bitstream, model=self.model, split=self.split_name,
                               request_id=request_id, top_k=self.args.top_k, head=head,
                               original_size=pb.ImageSize(width=frame.original_size[0], height=frame.original_size[1]))

    def captured(self, name) -> float:
        """When the frame was captured (``time.monotonic``): the paced clock's slot, else now (as it is read)."""
        t = self.paced.capture_time.pop(name, None) if self.paced else None
        return time.monotonic() if t is None else t

    def report(self, name, image, frame, resp, rtt_ms, captured: float | None = None) -> None:
        if resp.HasField("error") and resp.error.code:
            row = {"frame": name, "error": f"{resp.error.code}: {resp.error.message}", "code": resp.error.code}
        else:
            preds = ([{"class": c.index, "name": c.name, "score": round(c.score, 4)} for c in resp.classes] or
                     [{"category_id": d.category_id, "name": d.name, "score": round(d.score, 4),
                       "box": [round(v, 1) for v in (d.x0, d.y0, d.x1, d.y1)]} for d in resp.detections])
            row = {"frame": name, "predictions": preds, "bytes": len(frame.bitstream),
                   "frame_type": "predicted" if sc.decode_header(frame.bitstream).predicted else "intra",
                   "bits_per_element": round(frame.bits_per_element, 4), "raw_float32_bytes": 4 * frame.elements,
                   "input_jpeg90_bytes": input_jpeg90_bytes(image, self.runner.head.preprocess_spec),
                   "head_ms": round(frame.head_ms, 2), "encode_ms": round(frame.encode_ms, 2),
                   "round_trip_ms": round(rtt_ms, 2), "server_decode_ms": round(resp.timings.decode_ms, 2),
                   "server_tail_ms": round(resp.timings.tail_ms, 2), **(frame.rate or {})}
        if captured is not None:  # capture -> answer, the latency a camera user sees
            row["latency_ms"] = round(1e3 * (time.monotonic() - captured), 2)
        self.record(row)

    def unreadable(self, name, image) -> bool:
        """Record an input that could not be read as its frame's error row (True if it was one)."""
        if isinstance(image, UnreadableFrame):
            self.record({"frame": name, "error": f"unreadable input: {image.reason}", "code": "UNREADABLE"})
            return True
        return False

    def run_calls(self, client, source) -> None:
        """One ``Infer`` call per frame.  A frame the server refuses (shed after its retry-after hints, a bad
        stream) is that frame's error row and the run goes on; a status that says the deployment is wrong
        (``FATAL``) ends the run."""
        for i, (name, image) in enumerate(source):
            if self.unreadable(name, image):
                continue
            captured = self.captured(name)
            if self.link.stale(captured):
                continue
            frame, req = self.encode(name, image, i)
            t0 = time.perf_counter()
            try:
                resp = client.infer(req)
            except grpc.RpcError as e:
                self.record({"frame": name, "error": f"{e.code().name}: {e.details()}", "code": e.code().name,
                             "latency_ms": round(1e3 * (time.monotonic() - captured), 2)})
                if e.code() in FATAL:
                    raise
            else:  # round trip = network + server decode + tail (the head and encode are timed apart)
                self.report(name, image, frame, resp, 1e3 * (time.perf_counter() - t0), captured)
            if self.stop.is_set():
                return

    def run_stream(self, client, source) -> list[str]:
        """Frames over ``InferStream`` (answers matched by request id, broken streams resumed); returns the
        request ids left unanswered, after recording each as a row."""
        from .client import StreamSession

        sent = {}
        temporal = self.args.temporal

        def produce():
            for i, (name, image) in enumerate(source):
                if self.stop.is_set():
                    return
                if self.unreadable(name, image):
                    continue
                captured = self.captured(name)
                if self.link.stale(captured):
                    continue
                frame, req = self.encode(name, image, i, temporal, captured)
                if frame is None:  # skipped by the rate controller: never encoded, not a reference
                    continue
                sent[req.request_id] = (name, image, frame, time.perf_counter(), captured)
                self.link.sent(req.request_id, len(frame.bitstream))
                yield req.request_id, req

        def answer(rid, resp):
            name, image, frame, t0, captured = sent.pop(rid)
            rtt = time.perf_counter() - t0
            self.link.answered(rid, rtt, (resp.timings.queue_ms + resp.timings.decode_ms + resp.timings.tail_ms) / 1e3)
            if temporal and resp.HasField("error") and resp.error.code:
                # the server did not decode this frame (refused, or it lacked the reference): the next frame
                # is intra, so the answers after it come from the right reference again
                self._sequence_encoder().refresh()
            self.report(name, image, frame, resp, 1e3 * rtt, captured)

        def restart(requests):
            """A new stream's server holds no reference: re-encode the unanswered frames as a new start."""
            if not temporal or self.sequence is None:
                return requests
            sequence = self._sequence_encoder()  # resent at the settings of the moment, not rate-controlled
            sequence.refresh()
            out = []
            for req in requests:
                name, image, frame, t0, captured = sent[req.request_id]
                self.link.forget(req.request_id)
                t = time.perf_counter()
                data = sequence.encode(frame.features)
                frame = dataclasses.replace(frame, bitstream=data, encode_ms=1e3 * (time.perf_counter() - t))
                sent[req.request_id] = (name, image, frame, t0, captured)
                out.append(self._request(frame, req.request_id))
            return out

        session = StreamSession(client, retries=self.args.retries, timeout=self.args.stream_timeout,
                                on_restart=restart, max_in_flight=self.args.max_in_flight,
                                on_blocked=self.link.blocked, stream_head=lambda: self._head_identity)
        unanswered = session.run(produce(), answer)
        for rid in unanswered:  # no answer, so no latency
            self.record({"frame": sent[rid][0], "error": "not answered", "code": "UNANSWERED"})
        if unanswered:
            print(f"error: {len(unanswered)} frame(s) not answered after {session.attempts} stream(s) "
                  f"({'; '.join(session.errors)[:300]}): {', '.join(unanswered)[:300]}"
                  + ("" if session.input_exhausted else f"; the input was not read past {unanswered[-1]!r}: "
                     "later frames were not sent"), file=sys.stderr)
        return unanswered


def summarize(rows: list[dict], interrupted: bool = False, skipped: dict | None = None, held: int = 0) -> dict:
    """The run in one object; ``skipped``: frames not sent, by why (no rows): ``clock`` (a ``--realtime`` clock
    dropped them, never read), ``rate`` (the rate controller, --bitrate), ``stale`` (--max-latency-ms);
    ``held``: the times the next frame waited for a slot (--max-in-flight)."""
    import numpy as np

    skipped = {"clock": 0, "rate": 0, "stale": 0, **(skipped or {})}
    ok = [r for r in rows if "error" not in r]
    summary = {"frames": len(rows), "answered": len(ok), "errors": len(rows) - len(ok),
               "unreadable": sum(r.get("code") == "UNREADABLE" for r in rows),
               "unanswered": sum(r.get("code") == "UNANSWERED" for r in rows), "skipped": sum(skipped.values()),
               "skipped_by": skipped, "held_for_slot": held, "interrupted": interrupted}
    latency = [r["latency_ms"] for r in ok if "latency_ms" in r]
    if latency:
        summary.update({f"latency_ms_p{q}": float(np.percentile(latency, q)) for q in (50, 95, 99)})
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
                        "latency_ms_max": float(max(latency)) if latency else None,
                        "head_ms_mean": mean("head_ms"), "encode_ms_mean": mean("encode_ms")})
    return summary


def print_summary(summary: dict, as_json: bool, out) -> None:
    if as_json:
        print(json.dumps({"summary": summary}), file=out, flush=True)
        return
    if summary["errors"] or summary["interrupted"]:
        print(f"# {summary['frames']} frames: {summary['answered']} answered, {summary['errors']} with an error "
              f"({summary['unreadable']} unreadable, {summary['unanswered']} not answered)"
              f"{'; stopped by a signal' if summary['interrupted'] else ''}", file=out, flush=True)
    if summary["skipped"]:
        by = ", ".join(f"{n} {why}" for why, n in summary["skipped_by"].items() if n)
        print(f"# {summary['skipped']} frame(s) not sent ({by}: docs/live.md)", file=out, flush=True)
    if summary["answered"]:
        s = summary
        print(f"# {s['answered']} frames answered: {s['mean_bytes_per_frame']:.0f} B/frame on average = "
              f"{s['vs_float32']:.0f}x smaller than the float32 tensor ({s['raw_float32_bytes']:.0f} B) and "
              f"{s['vs_input_jpeg90']:.1f}x smaller than the model input as JPEG-90 "
              f"({s['mean_input_jpeg90_bytes']:.0f} B); "
              f"round trip p50 {s['round_trip_ms_p50']:.1f} ms, p95 {s['round_trip_ms_p95']:.1f} ms; "
              f"head {s['head_ms_mean']:.1f} ms, encode {s['encode_ms_mean']:.1f} ms (after a warm-up run, "
              "not timed)", file=out)
