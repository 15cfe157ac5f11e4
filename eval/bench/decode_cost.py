"""What a hostile stream can cost the decoder: time and peak memory before rejection (or to
decode), against the payload's size.  Prints one JSON document; ``--update-doc`` rewrites the
``decode_cost`` section of docs/bitstream.md from it.

    python -m eval bench-decode-cost --output docs/results/MACHINE/decode_cost.json --update-doc docs/bitstream.md
"""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

from eval.core.common import log
from eval.core.streams import _leb128
from eval.core.entry import Entry


ENTRY = Entry("bench-decode-cost", "bench", section="decode_cost", threads=1,
              help="what hostile streams cost the decoder")


def add_arguments(p) -> None:
    p.add_argument("--repeats", type=int, default=3)


def _stream(shape, levels: int, payload: bytes, model: int = 1) -> bytes:
    """A uniform-quantizer stream with ``payload`` and a correct CRC (the checks before the payload pass)."""
    head = bytes([0xCF, 1, model | ((len(shape) - 1) << 4), levels - 1]) + struct.pack("<2e", 0.0, 1.0)
    head += b"".join(_leb128(d) for d in shape)
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def _cases():
    import numpy as np

    import splitcodec as sc

    def max_cost(elements):  # every index N-1 at N = 256: the most bins per payload byte a valid stream has
        return sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 256), "spatial").encode(np.ones(elements, np.float32))

    big = max_cost(1 << 19)
    h = sc.decode_header(big)
    return [
        ("1-D shape of 2^26 elements, 8 payload bytes", _stream((1 << 26,), 4, b"\x00" * 8)),
        ("(4096, 128, 128) = 2^26 elements, 8 payload bytes", _stream((4096, 128, 128), 4, b"\x00" * 8)),
        ("2^26 elements, N = 256, 28 KB of 0x00 payload", _stream((1 << 26,), 256, b"\x00" * 28_000)),
        ("valid, N = 256, every index 255, 2^19 elements", big),
        ("the same, last 100 payload bytes cut (re-signed)", _stream(h.shape, 256, big[h.size:-100])),
        ("valid, 1-D, N = 2, 2^22 zeros", sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 2)).encode(
            np.zeros(1 << 22, np.float32))),
    ]


def measure(data: bytes, repeats: int) -> dict:
    import splitcodec as sc

    outcome, best, peak = None, float("inf"), 0
    for _ in range(repeats):
        tracemalloc.start()
        t = time.perf_counter()
        try:
            out = sc.decode(data)
            outcome, out_bytes = f"decoded {out.size} elements", out.nbytes
            del out
        except sc.BitstreamError as e:
            outcome, out_bytes = type(e).__name__, 0
        best = min(best, time.perf_counter() - t)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    h = sc.decode_header(data)
    payload = len(data) - h.size
    return {"bytes": len(data), "payload_bytes": payload, "declared_elements": h.elements, "levels": h.levels,
            "outcome": outcome, "seconds": best, "peak_alloc_bytes": peak,
            "scratch_bytes": max(0, peak - out_bytes),
            "ns_per_payload_byte": 1e9 * best / max(payload, 1)}


def markdown(doc: dict) -> str:
    lines = [f"Measured by `python -m eval bench-decode-cost` ({doc['machine']}, one core, best of "
             f"{doc['repeats']}); peak allocation by tracemalloc, scratch = peak minus the returned array.", "",
             "| stream | bytes | outcome | time | peak allocation | scratch | time per payload byte |",
             "|---|---|---|---|---|---|---|"]
    for c in doc["cases"]:
        lines.append(f"| {c['name']} | {c['bytes']:,} | {c['outcome']} | {1e3 * c['seconds']:.3g} ms | "
                     f"{c['peak_alloc_bytes'] / 2**20:.3g} MiB | {c['scratch_bytes'] / 2**20:.3g} MiB | "
                     f"{c['ns_per_payload_byte']:.3g} ns |")
    w = doc["worst_ns_per_payload_byte"]
    lines += ["", f"Worst case measured: {w / 1e3:.3g} µs of decoding per payload byte, about "
              f"{w * 1024 / 1e6:.3g} ms per KB of payload on this machine, whatever the header declares (a payload "
              f"codes at most {doc['max_bins_per_byte']} bins per byte, §3). A server bounds a request's cost by "
              "bounding its size (and N: the cost per element grows with N)."]
    return "\n".join(lines)


def run(args) -> dict:
    import platform

    import numpy as np

    import splitcodec as sc

    sc.decode(sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4)).encode(np.ones((2, 3, 3), np.float32)))  # JIT warm-up
    sc.decode(sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4), "paper").encode(np.ones((2, 3, 3), np.float32)))
    cases = []
    for name, data in _cases():
        log(name, "...")
        cases.append({"name": name, **measure(data, args.repeats)})
    try:
        from splitcodec.entropy.engine import MAX_BINS_PER_BYTE
    except ImportError:  # measuring an older decoder
        MAX_BINS_PER_BYTE = None
    doc = {"benchmark": "bench_decode_cost", "splitcodec": sc.__version__, "machine": platform.machine(),
           "repeats": args.repeats, "max_bins_per_byte": MAX_BINS_PER_BYTE, "cases": cases,
           "worst_ns_per_payload_byte": max(c["ns_per_payload_byte"] for c in cases)}
    return doc
