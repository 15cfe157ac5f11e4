"""The edge of ``bench-link``, run inside the shaped namespace: edge_app's own frame loop (its options, rate
controller, estimator, in-flight bound, stream session and ``--json`` rows) over a recording — the head's
activations of each frame, replayed at the camera's pace, so that a 2-core machine can hold 30 fps while the
server shares it.

    python -m eval.bench.link_edge RECORDING.npz FRAMES OUT_PREFIX -- EDGE_APP_ARGS...

Writes ``OUT_PREFIX.jsonl`` (edge_app's ``--json`` output) and ``OUT_PREFIX.streams.json`` (each frame sent: its
request id, the time it left relative to the first frame's capture, and its bytes as hex, for the offline decode).
Prints ``pacing`` on stdout when the first frame is due (the benchmark times its rate steps from there).
"""

from __future__ import annotations

import json
import sys
import time

import grpc
import numpy as np

from splitcodec.identity import DeploymentIdentity
from splitcodec.inference import EdgeEncoder, PreparedHead


class RecordedFrame(np.ndarray):
    """A frame's model input (H×W×3 uint8) that knows its index in the recording."""

    index: int


class RecordedHead(PreparedHead):
    """The activations a head computed for each frame of the recording, replayed."""

    def __init__(self, features: np.ndarray, identity: DeploymentIdentity):
        self.recorded, self.identity = features, identity
        self.feature_shape, self.input_size = tuple(features.shape[1:]), identity.input_size
        self.preprocess_spec = identity.preprocess

    def features(self, image):
        i = getattr(image, "index", 0)  # a plain array: the encoder's warm-up
        return self.recorded[i], (image.shape[1], image.shape[0])


def frames(rgb: np.ndarray, count: int):
    for i, im in enumerate(rgb[:count]):
        f = im.view(RecordedFrame)
        f.index = i
        yield f"f{i}", f


def main(argv=None) -> int:
    from edge_app.cli import build_parser, validate
    from edge_app.client import EdgeClient
    from edge_app.loop import FrameLoop, print_summary, summarize
    from edge_app.options import quantizer_factory
    from edge_app.sources import Paced

    argv = list(sys.argv[1:] if argv is None else argv)
    recording_path, count, prefix, sep, *edge_argv = argv
    if sep != "--":
        raise SystemExit("usage: python -m eval.bench.link_edge RECORDING.npz FRAMES OUT_PREFIX -- EDGE_APP_ARGS...")
    rec = np.load(recording_path)
    rgb, count = rec["rgb"], int(count)
    identity = DeploymentIdentity.from_dict(json.loads(str(rec["identity"])), recording_path)
    args = build_parser().parse_args([*edge_argv, "--stream", "--realtime", "--json", "--photos"])
    validate(args)
    sent: dict[str, tuple[float, bytes]] = {}
    t_start = [0.0]

    class RecordingLoop(FrameLoop):
        def _request(self, frame, request_id):
            sent[request_id] = (time.monotonic() - t_start[0], frame.bitstream)
            return super()._request(frame, request_id)

    runner = EdgeEncoder(RecordedHead(rec["features"], identity), None)
    with open(f"{prefix}.jsonl", "w") as out:
        loop = RecordingLoop(args, runner, quantizer_factory(args, identity.model, False), identity.model,
                             identity.split, out=out)
        client = EdgeClient(args.server, timeout=args.timeout, retries=args.retries, retry_for=args.retry_for)
        client.wait_ready(30)
        loop._first_frame(next(frames(rgb, 1))[1])  # the encoder warmed up before the clock starts
        source = loop.paced = Paced(frames(rgb, count), args.fps)
        t_start[0] = time.monotonic()
        print("pacing", flush=True)
        try:
            loop.run_stream(client, source)
        except grpc.RpcError as e:  # the stream's deadline (--stream-timeout) with frames still queued: unanswered
            print(f"# the stream ended with {e.code().name}", file=sys.stderr)
        finally:
            client.close()
        skipped = {"clock": len(source.skipped), **loop.link.skipped}
        print_summary(summarize(loop.rows, skipped=skipped, held=loop.link.held_for_slot), True, out)
    with open(f"{prefix}.streams.json", "w") as f:
        json.dump([{"request_id": rid, "sent_s": t, "hex": data.hex()} for rid, (t, data) in sent.items()], f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
