"""Codec benchmark: rate and speed of both context models against general-purpose
compressors and an ideal coder, on paper-shaped tensors and on real
EfficientNet-Lite0 activations of the photos shipped with scikit-image.

    python -m eval bench-codec [--quick] [--output docs/results/MACHINE/bench_codec.json] [--update-doc README.md]

One JSON document goes to stdout (progress to stderr).  Every figure in one run
is measured side by side, so ratios are comparable; absolute speeds depend on
the machine (recorded in the envelope and under "machine").
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time

from eval.baselines.general import constriction_bits, index_baselines
from eval.core.common import best_time, log, synthetic_activations
from eval.core.envelope import cpu_name
from eval.core.tensors import PEER_SPLITS, real_activations
from eval.core.entry import Entry

PAPER_SHAPES = {
    "yolov3_layer12_like": (256, 52, 52),
    "vgg16_layer6_like": (128, 56, 56),
    "resnet50_layer21_like": (512, 32, 32),
}
REAL_SPLITS = ("blocks.11.expand", "blocks.5.expand", "blocks.3.expand")
LEVELS = (2, 4, 8, 16)
MODELS = ("paper", "spatial")
SPEED_CASE = ("yolov3_layer12_like", 4)  # the speed target: 256x52x52, N = 4
RDO_SPEED = (16, (0.05, 0.1, 0.2, 0.4))  # RDO encode speed on the same tensor: N and the λ tried for ~1 bit/element


ENTRY = Entry("bench-codec", "bench", section="bench_codec", threads=1,
              help="codec rate and speed against general-purpose compressors, an ideal coder and NNCodec")


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="small tensors and few repeats (for tests)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (min is reported)")
    p.add_argument("--no-real", action="store_true", help="skip the EfficientNet-Lite0 activations")
    p.add_argument("--nncodec-python", metavar="PATH",
                   help="an interpreter with PyPI nncodec installed (its own venv): adds the side-by-side with "
                        "NNCodec on real activations (eval/baselines/nncodec.py); without it those rows say 'not measured'")


def cold_start_seconds() -> float:
    """Seconds from a fresh interpreter's `import splitcodec` to its first encode finishing."""
    code = (
        "import time; t = time.perf_counter(); import numpy as np, splitcodec as sc; "
        "x = np.ones((8, 16, 16), np.float32); sc.decode(sc.FeatureCodec(sc.UniformQuantizer(0, 2, 4)).encode(x)); "
        "print(time.perf_counter() - t)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # fills the numba cache
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def measure_group(name: str, tensors, levels: int, repeats: int) -> dict:
    """One (tensor group, N) cell: every tensor coded by both models plus baselines."""
    import numpy as np

    import splitcodec as sc
    from splitcodec.entropy import code_length_bits, trace_bins

    clip = sc.mse_optimal_clip(np.concatenate([t.reshape(-1) for _, t in tensors]), levels)
    q = sc.UniformQuantizer(0.0, clip, levels)
    elements = sum(t.size for _, t in tensors)
    cell = {"group": name, "levels": levels, "clip": [0.0, clip], "tensors": len(tensors),
            "elements_per_tensor": int(tensors[0][1].size), "zero_fraction": float(
                np.mean([np.mean(t == 0) for _, t in tensors])), "mse": float(np.mean([q.mse(t) for _, t in tensors]))}
    base = [index_baselines(q.quantize(t), levels) for _, t in tensors]
    for key in base[0]:
        cell[key] = float(np.average([b[key] for b in base], weights=[t.size for _, t in tensors]))
    for model in MODELS:
        codec = sc.FeatureCodec(q, model)
        bits = enc_t = dec_t = ideal = payload = 0.0
        cbits, header = 0.0, 0
        worst_gap = 0.0
        for _, t in tensors:
            te, data = best_time(lambda: codec.encode(t), repeats)
            td, y = best_time(lambda: sc.decode(data), repeats)
            assert np.array_equal(y, q(t)), "round trip failed"
            header = sc.decode_header(data).size
            b, p0 = trace_bins(q.quantize(t), levels, model)
            ib = code_length_bits(b, p0)
            pb = 8 * (len(data) - header)
            worst_gap = max(worst_gap, pb / ib - 1 if ib else 0.0)
            cb = constriction_bits(b, p0)
            cbits = None if cb is None or cbits is None else cbits + cb
            bits += 8 * len(data)
            payload += pb
            ideal += ib
            enc_t += te
            dec_t += td
        cell[model] = {
            "bits_per_element": bits / elements,
            "header_bytes": header,
            "encode_ms": 1e3 * enc_t / len(tensors),
            "decode_ms": 1e3 * dec_t / len(tensors),
            "encode_melem_s": elements / enc_t / 1e6,
            "decode_melem_s": elements / dec_t / 1e6,
            "payload_over_ideal": payload / ideal if ideal else None,
            "worst_payload_over_ideal": 1 + worst_gap,
            "constriction_bits_per_element": None if cbits is None else cbits / elements,
        }
    best_gen = min(("zstd-19_packed", "lzma-9e_packed"), key=lambda k: cell.get(k, float("inf")))
    cell["best_general_packed"] = best_gen
    cell["spatial_over_paper"] = cell["spatial"]["bits_per_element"] / cell["paper"]["bits_per_element"]
    cell["spatial_over_best_general"] = cell["spatial"]["bits_per_element"] / cell[best_gen]
    # the per-case view: each real tensor is one case
    return cell


def measure_speed(x, levels: int, repeats: int) -> dict:
    """The speed target case, timed with many repeats, paper and spatial interleaved so
    both see the same machine conditions; the full codec path (clip → bytes → float32)."""
    import time as _time

    import splitcodec as sc

    q = sc.UniformQuantizer(0.0, sc.mse_optimal_clip(x, levels), levels)
    codecs = {m: sc.FeatureCodec(q, m) for m in MODELS}
    data = {m: c.encode(x) for m, c in codecs.items()}
    best = {m: [float("inf"), float("inf")] for m in MODELS}
    for _ in range(repeats):
        for m, c in codecs.items():
            t = _time.perf_counter()
            c.encode(x)
            t1 = _time.perf_counter()
            sc.decode(data[m])
            t2 = _time.perf_counter()
            best[m] = [min(best[m][0], t1 - t), min(best[m][1], t2 - t1)]
    return {m: {"encode_ms": 1e3 * e, "decode_ms": 1e3 * d, "encode_melem_s": x.size / e / 1e6,
                "decode_melem_s": x.size / d / 1e6, "bits_per_element": 8 * len(data[m]) / x.size}
            for m, (e, d) in best.items()} | {"repeats": repeats, "clip": [0.0, q.c_max]}


def measure_rdo_speed(x, repeats: int) -> dict:
    """RDO encoding (clip → bytes, spatial) at the λ whose rate is nearest 1 bit/element, greedy and looking one
    element ahead, timed interleaved with the plain encoder at the same N; decoding its stream too (the
    decoder does not know RDO was used)."""
    import splitcodec as sc

    n, lams = RDO_SPEED
    q = sc.UniformQuantizer(0.0, sc.mse_optimal_clip(x, n), n)
    rates = {lam: 8 * len(sc.FeatureCodec(q, rdo_lambda=lam).encode(x)) / x.size for lam in lams}
    lam = min(lams, key=lambda v: abs(rates[v] - 1.0))
    codecs = {"greedy": sc.FeatureCodec(q, rdo_lambda=lam), "lookahead": sc.FeatureCodec(q, rdo_lambda=lam, rdo_lookahead=True),
              "plain": sc.FeatureCodec(q)}
    data = {k: c.encode(x) for k, c in codecs.items()}
    best = {k: float("inf") for k in [*codecs, "decode"]}
    for _ in range(repeats):
        for key, fn in [*((k, (lambda c=c: c.encode(x))) for k, c in codecs.items()),
                        ("decode", lambda: sc.decode(data["greedy"]))]:
            t = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - t)
    return {"levels": n, "rdo_lambda": lam, "rates_tried": {str(k): v for k, v in rates.items()}, "repeats": repeats,
            "bits_per_element": 8 * len(data["greedy"]) / x.size,
            "lookahead_bits_per_element": 8 * len(data["lookahead"]) / x.size,
            "encode_melem_s": x.size / best["greedy"] / 1e6, "lookahead_encode_melem_s": x.size / best["lookahead"] / 1e6,
            "plain_encode_melem_s": x.size / best["plain"] / 1e6, "decode_melem_s": x.size / best["decode"] / 1e6}


def nncodec_side_by_side(python: str | None, quick: bool) -> dict:
    """The NNCodec comparison (eval/baselines/nncodec.py), or why it was not measured."""
    if not python:
        return {"status": "not measured", "reason": "run with --nncodec-python PATH (NNCodec in its own venv)"}
    from eval.baselines import nncodec as peer_nncodec

    acts = real_activations(PEER_SPLITS[:1] if quick else PEER_SPLITS, quick)
    groups = {f"efficientnet_lite0 {k}": v for k, v in acts.items()}
    rows = peer_nncodec.side_by_side(python, groups, levels=(2, 4) if quick else (2, 4, 8, 16))
    return {"status": "measured", "rows": rows, "summary": peer_nncodec.summary(rows),
            "configs": peer_nncodec.CONFIGS}


def summarize(cells) -> dict:
    real = [c for c in cells if c["group"].startswith("efficientnet") and c["levels"] in (2, 4, 8)]
    s = {}
    if real:
        sp = [c["spatial_over_paper"] for c in real]
        gen = [c["spatial_over_best_general"] for c in real]
        s["real_n2_4_8"] = {
            "spatial_over_paper_max": max(sp), "spatial_over_paper_mean": sum(sp) / len(sp),
            "spatial_over_best_general_mean": sum(gen) / len(gen),
            "spatial_over_best_general_max": max(gen),
        }
    s["payload_over_ideal_max"] = max(max(c[m]["worst_payload_over_ideal"] for m in MODELS) for c in cells)
    return s


def markdown(doc: dict) -> str:
    lines = [
        f"Measured by `python -m eval bench-codec` on {doc['machine']['cpu']} (one core), "
        f"splitcodec {doc['splitcodec']}, numba {doc['numba']}. Uniform quantizer, clip `[0, c]` with "
        "`c` the MSE-optimal value for each N; bits/element include the 16-byte header. `best general` is the "
        "smaller of zstd-19 and lzma-9e on the same bit-packed indices (zlib-9 and the uint8 forms are in the JSON); "
        "`order-0 H` is the indices' empirical entropy. Real activations: one stream per photo "
        f"({doc['photos']} photos), figures averaged over photos.",
        "",
        "| tensor | N | zeros | order-0 H | paper b/e | spatial b/e | spatial/paper | best general b/e | spatial/general "
        "| enc M/s (paper, spatial) | dec M/s (paper, spatial) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["cells"]:
        p, s = c["paper"], c["spatial"]
        lines.append(
            f"| {c['group']} {tuple(c['shape'])} | {c['levels']} | {c['zero_fraction']:.0%} | {c['order0_entropy']:.3f} "
            f"| {p['bits_per_element']:.3f} "
            f"| {s['bits_per_element']:.3f} | {c['spatial_over_paper']:.3f} | {c[c['best_general_packed']]:.3f} "
            f"| {c['spatial_over_best_general']:.3f} | {p['encode_melem_s']:.0f}, {s['encode_melem_s']:.0f} "
            f"| {p['decode_melem_s']:.0f}, {s['decode_melem_s']:.0f} |"
        )
    sm = doc["summary"]
    sc = doc["speed_target_case"]
    lines += ["",
              f"- Speed case (256×52×52, N = 4, full codec clip → bytes and bytes → float32, one core, best of "
              f"{sc['repeats']} interleaved runs): encode "
              f"{sc['paper']['encode_melem_s']:.0f} / {sc['spatial']['encode_melem_s']:.0f} M elements/s, decode "
              f"{sc['paper']['decode_melem_s']:.0f} / {sc['spatial']['decode_melem_s']:.0f} M elements/s (paper / spatial).",
              *_rdo_speed_line(doc),
              f"- Cold start: a new process reaches its first decoded stream {doc['cold_start_s']:.2f} s after "
              "`import splitcodec` (numba cache warm).",
              f"- Arithmetic coder vs the ideal code length of its own probabilities: at most "
              f"{100 * (sm['payload_over_ideal_max'] - 1):.2f} % over (worst single stream)."]
    if "real_n2_4_8" in sm:
        r = sm["real_n2_4_8"]
        lines.append(
            f"- Real activations, N ∈ {{2, 4, 8}}: spatial/paper {r['spatial_over_paper_mean']:.3f} on average, "
            f"{r['spatial_over_paper_max']:.3f} at worst; spatial/best general {r['spatial_over_best_general_mean']:.3f} "
            f"on average, {r['spatial_over_best_general_max']:.3f} at worst.")
    cs = [c for c in doc["cells"] if c["spatial"]["constriction_bits_per_element"]]
    if cs:
        worst = max(c["spatial"]["bits_per_element"] / c["spatial"]["constriction_bits_per_element"] for c in cs)
        lines.append(f"- constriction's range coder on the same bins and probabilities: ours is at most "
                     f"{100 * (worst - 1):+.2f} % larger (header included on our side).")
    peer = doc.get("nncodec", {})
    if peer.get("status") == "measured" and peer.get("summary"):
        from eval.baselines.nncodec import markdown as peer_markdown

        lines += ["", "**Side by side with NNCodec** (`--nncodec-python`, eval/baselines/nncodec.py): EfficientNet-Lite0 "
                  "activations of 2 shipped photos per row; bits per element at no more MSE than our plain quantizer "
                  "(uniform N, MSE-optimal clip) reaches; ours best = N, clip, RDO λ (looking one element ahead) and quantizer kind "
                  "searched (`uniform`, "
                  "or `refined`: levels moved to the means of what the RDO encoder assigned them, `splitcodec.rd`; "
                  "a refined point is an ordinary table-quantizer stream); NNCodec best = "
                  "plain/dependent quantization × lambda_scale ∈ {0, 0.5, 1, 2}, qp searched.", "",
                  peer_markdown(peer["rows"], peer["summary"])]
    else:
        lines.append("- NNCodec side by side: not measured in this run (`--nncodec-python PATH`).")
    return "\n".join(lines)


def _rdo_speed_line(doc) -> list[str]:
    r = doc.get("rdo_speed_case")
    if not r:
        return []
    return [f"- RDO encoding on the same tensor (spatial, N = {r['levels']}, λ = {r['rdo_lambda']:g}, best of "
            f"{r['repeats']} interleaved runs): greedy {r['encode_melem_s']:.0f} M elements/s at "
            f"{r['bits_per_element']:.3f} bits/element, looking one element ahead {r['lookahead_encode_melem_s']:.0f} M "
            f"elements/s at {r['lookahead_bits_per_element']:.3f} (plain encoder at the same N: "
            f"{r['plain_encode_melem_s']:.0f}); decoding the RDO stream {r['decode_melem_s']:.0f} M elements/s."]


def run(args) -> dict:
    import numba
    import numpy as np

    import splitcodec as sc

    repeats = args.repeats or (2 if args.quick else 7)
    groups = {}
    for i, (name, shape) in enumerate(PAPER_SHAPES.items()):
        if args.quick:
            shape = (shape[0] // 16, shape[1] // 2, shape[2] // 2)
        groups[name] = [(name, synthetic_activations(shape, seed=i))]
    photos = 0
    if not args.no_real:
        log("computing EfficientNet-Lite0 activations ...")
        acts = real_activations(REAL_SPLITS[:1] if args.quick else REAL_SPLITS, args.quick)
        for split, tensors in acts.items():
            groups[f"efficientnet_lite0 {split}"] = tensors
            photos = len(tensors)
    # warm the JIT before timing anything
    sc.decode(sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4), "spatial").encode(np.ones((2, 4, 4), np.float32)))
    sc.decode(sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4), "paper").encode(np.ones((2, 4, 4), np.float32)))
    cells = []
    t0 = time.time()
    for name, tensors in groups.items():
        for levels in LEVELS:
            log(f"{name} N={levels} ...")
            cell = measure_group(name, tensors, levels, repeats)
            cell["shape"] = list(tensors[0][1].shape)
            cells.append(cell)
    speed_tensor = groups[SPEED_CASE[0]][0][1]
    log("speed case ...")
    speed = measure_speed(speed_tensor, SPEED_CASE[1], 5 if args.quick else 25)
    log("RDO speed case ...")
    rdo_speed = measure_rdo_speed(speed_tensor, 3 if args.quick else 15)
    doc = {
        "benchmark": "bench_codec",
        "splitcodec": sc.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "machine": {"cpu": cpu_name(), "python": platform.python_version(), "machine": platform.machine()},
        "quick": args.quick,
        "repeats": repeats,
        "photos": photos,
        "cold_start_s": cold_start_seconds(),
        "nncodec": nncodec_side_by_side(args.nncodec_python, args.quick),
        "speed_target_case": {"group": SPEED_CASE[0], "shape": list(speed_tensor.shape), "levels": SPEED_CASE[1],
                              **speed},
        "rdo_speed_case": {"group": SPEED_CASE[0], "shape": list(speed_tensor.shape), **rdo_speed},
        "cells": cells,
        "summary": summarize(cells),
        "seconds": time.time() - t0,
    }
    return doc
