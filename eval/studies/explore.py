"""Split-point explorer: where to cut a network, at what rate, against sending the image itself.

For every split point (or ``--splits``) and operating point (N from ``--levels``, uniform quantizer,
clip calibrated per split on the first ``--calib`` samples), and for the model input coded with
JPEG/WebP/HEVC and run through the whole model: bytes per frame (header included), fidelity to the
float model (top-1 and top-5 agreement, mean KL divergence, agreement on the samples the float model
is confident about), edge and tail latency.  Fidelity is measured on the samples after ``--calib``
(held out from calibration).  Head activations come from the study cache (computed once per split).

A recommendation picks the configuration with the fewest bytes that meets ``--target-agreement``
(and ``--edge-budget-ms``, ``--bandwidth`` at ``--fps`` when given) and saves it as a quantizer file
that ``edge_app --quantizer`` and ``cloud_app --calibration`` load.

Images are coded one at a time here.  For a camera stream, ``python -m eval video --quantizer FILE`` takes
the saved quantizer file to video clips: temporal coding against single frames and against the input as
x264/x265 video.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from pathlib import Path

import numpy as np

import splitcodec as sc

from eval.core import options
from eval.core.activations import open_cache
from eval.core.common import log
from eval.core.evaluate import Accumulator, evaluate, finalize, fidelity_counts, uniform_point
from eval.core.studies import sample_sets
from eval.core.entry import Entry

ENTRY = Entry("explore", "study", section="explore",
              help="every split point × operating point against coding the input itself")
DEFAULT_CALIB = 16


def add_arguments(s) -> None:
    options.add_model_arguments(s, dataset="photos:48", split=False)
    s.add_argument("--splits", help="a,b,... (default: every split point)")
    s.add_argument("--levels", type=options.ints, default=[2, 4, 8, 16])
    s.add_argument("--calib", type=int, default=None,
                   help=f"samples (from the start) for the clip; the rest are held out (default: a third of the "
                        f"samples, at most {DEFAULT_CALIB})")
    s.add_argument("--context", default="spatial")
    s.add_argument("--baselines", default="jpeg,webp,hevc", help="input codings to compare (empty: none)")
    s.add_argument("--target-agreement", type=options.floats, default=[0.99, 0.95],
                   help="fidelity target(s); the first one's choice is saved with --save")
    s.add_argument("--edge-budget-ms", type=float, help="edge head latency budget (torch CPU, 1 thread)")
    s.add_argument("--bandwidth", type=float, help="link budget in bits/s (with --fps)")
    s.add_argument("--fps", type=float, default=30.0)
    s.add_argument("--save", help="write the recommended configuration as a quantizer file here")
    s.add_argument("--no-onnx", action="store_true", help="do not time an onnxruntime head")


def run(args) -> dict:
    doc = explore(args.model, args.dataset, weights=args.weights, allow_random=args.allow_random_weights,
                  limit=args.limit,
                  splits=args.splits.split(",") if args.splits else None, levels=args.levels, calib=args.calib,
                  context=args.context, cache_dir=args.cache_dir, baselines=[b for b in args.baselines.split(",") if b],
                  onnx=not args.no_onnx)
    doc["recommendations"] = [recommend(doc["rows"], t, edge_budget_ms=args.edge_budget_ms,
                                        bandwidth=args.bandwidth, fps=args.fps) for t in args.target_agreement]
    doc["recommendation"] = doc["recommendations"][0]
    if args.save:
        doc["quantizer_file"] = save_recommendation(doc, args.save)
        if doc["quantizer_file"] is None:
            from eval.core.runner import UsageError

            raise UsageError(f"no operating point met agreement >= {args.target_agreement[0]:g}"
                             f"{' within the latency/bandwidth budget' if args.edge_budget_ms or args.bandwidth else ''}"
                             f": {args.save} not written (lower --target-agreement, or add --levels)")
    return doc


BASELINES = {"jpeg": (20, 50, 70, 90), "webp": (20, 50, 70, 90), "hevc": (20, 50, 70, 90)}
def _median_ms(fn, repeats: int = 5) -> float:
    fn()  # warm-up: the first call pays allocation and lazy initialisation
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times)


def latencies(split, onnx: bool, cache_file: Path) -> dict:
    """Edge head and cloud tail latency for one input (torch on CPU, 1 thread; onnxruntime when installed)."""
    if cache_file.exists():
        return json.loads(cache_file.read_text())
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.zeros(1, 3, split.input_size, split.input_size)
        with torch.no_grad():
            f = split.head(x)
            out = {"edge_ms": _median_ms(lambda: split.head(x)), "tail_ms": _median_ms(lambda: split.tail(f))}
    finally:
        torch.set_num_threads(threads)
    out["edge_ms_onnx"] = None
    if onnx:
        try:
            import onnxruntime as ort

            from splitcodec.models.export import export_head_onnx
        except ImportError:
            pass
        else:
            path = cache_file.with_suffix(".onnx")
            export_head_onnx(split, path)
            opt = ort.SessionOptions()
            opt.intra_op_num_threads = opt.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), opt, providers=["CPUExecutionProvider"])
            name = sess.get_inputs()[0].name
            xn = x.numpy()
            out["edge_ms_onnx"] = _median_ms(lambda: sess.run(None, {name: xn}))
    cache_file.write_text(json.dumps(out))
    return out


def _code_image(rgb: np.ndarray, method: str, quality: int) -> tuple[np.ndarray, int, float]:
    """Code an H×W×3 uint8 image; (decoded uint8 image, bytes, encode ms)."""
    from PIL import Image

    img = Image.fromarray(rgb)
    buf = io.BytesIO()
    t = time.perf_counter()
    if method == "hevc":
        import pillow_heif

        pillow_heif.from_pillow(img).save(buf, quality=int(quality))
    else:
        img.save(buf, format={"jpeg": "JPEG", "webp": "WEBP"}[method], quality=int(quality))
    ms = 1e3 * (time.perf_counter() - t)
    data = buf.getvalue()
    if method == "hevc":
        import pillow_heif

        back = pillow_heif.open_heif(io.BytesIO(data)).to_pillow()
    else:
        back = Image.open(io.BytesIO(data))
    return np.asarray(back.convert("RGB")), len(data), ms


def input_baselines(split, items, float_logits: np.ndarray, methods: dict) -> list[dict]:
    """The model input (what the head would see, as 8-bit RGB) coded and run through the whole model."""
    import torch

    from splitcodec.preprocessing import from_unit_range, model_input_rgb

    spec = split.preprocess_spec
    rgb = [model_input_rgb(img, spec) for img, _ in items]
    rows = []
    for method, qualities in methods.items():
        for q in qualities:
            decoded, nbytes, ms = zip(*(_code_image(im, method, q) for im in rgb))
            x = np.stack([from_unit_range(d.transpose(2, 0, 1).astype(np.float32) / 255, spec) for d in decoded])
            with torch.no_grad():
                logits = split.tail(split.head(torch.from_numpy(x))).numpy()
            acc = Accumulator(n=len(x))
            for k, v in fidelity_counts(logits, float_logits).items():
                setattr(acc, k, v)
            m = finalize(acc)
            rows.append({"split": "input", "method": method, "quality": q, "levels": None, "clip": None,
                         "bytes_per_frame": float(np.mean(nbytes)), "elements": int(rgb[0].size),
                         "agreement": m["fidelity_top1"], "top5_agreement": m["fidelity_top5"], "kl": m["kl"],
                         "confident_agreement": m["fidelity_top1_confident"],
                         "confident_samples": m["confident_samples"], "edge_ms": float(np.median(ms)),
                         "edge_ms_onnx": None, "tail_ms": None})
    return rows


def pareto(rows: list[dict]) -> None:
    """Mark rows no other row beats on both bytes (fewer) and agreement (higher), KL breaking ties."""
    front = {id(r) for r in sc.pareto.pareto(rows, "bytes_per_frame", "agreement", maximize_y=True, tie="kl")}
    for r in rows:
        r["pareto"] = id(r) in front


def recommend(rows: list[dict], target: float, *, edge_budget_ms=None, bandwidth=None, fps: float = 30.0) -> dict:
    """The fewest bytes per frame among the split rows that meet the target (and budgets)."""
    ok = [r for r in rows if r["split"] != "input" and r["agreement"] >= target
          and (edge_budget_ms is None or r["edge_ms"] <= edge_budget_ms)
          and (bandwidth is None or 8 * r["bytes_per_frame"] * fps <= bandwidth)]
    rec = {"target_agreement": target, "edge_budget_ms": edge_budget_ms, "bandwidth_bps": bandwidth, "fps": fps,
           "candidates": len(ok), "choice": None}
    if ok:
        best = min(ok, key=lambda r: (r["bytes_per_frame"], r["kl"]))
        rec["choice"] = {k: best[k] for k in ("split", "method", "levels", "clip", "bytes_per_frame", "agreement",
                                              "top5_agreement", "kl", "edge_ms")}
        base = [r for r in rows if r["split"] == "input" and r["agreement"] >= target]
        if base:
            b = min(base, key=lambda r: r["bytes_per_frame"])
            rec["cheapest_input_baseline_meeting_target"] = {k: b[k] for k in ("method", "quality", "bytes_per_frame",
                                                                                "agreement")}
    return rec


def explore(model: str, dataset: str, *, weights="DEFAULT", allow_random: bool = False, splits=None, levels=(2, 4, 8, 16), calib: int | None = None,
            baselines=("jpeg", "webp", "hevc"), context: str = "spatial", cache_dir=".cache/splitcodec-eval",
            onnx: bool = True, limit=None, progress: bool = True) -> dict:
    """Every (split, N) operating point and every input baseline, on the same samples and axes.  ``calib`` None:
    a third of the samples, at most ``DEFAULT_CALIB``, at least one held out."""
    from splitcodec import models

    all_splits = [name for name, _ in models.list_splits(model)]
    splits = list(splits) if splits else all_splits
    unknown = [s for s in splits if s not in all_splits]
    if unknown:
        raise ValueError(f"{model} has no split point(s) {unknown}; valid: {', '.join(all_splits)}")
    rows, per_split = [], []
    t0 = time.time()
    for name in splits:
        cache = open_cache(model, name, weights, dataset, limit=limit, cache_dir=cache_dir, allow_random=allow_random)
        if cache.task != "classification":
            raise ValueError("the explorer measures classifiers (agreement, KL); detectors are not supported yet")
        calib_idx, eval_idx = sample_sets(cache, calib, exclude_calib=True, cap=DEFAULT_CALIB)
        cache.build(progress=progress)
        feats = cache.features(calib_idx)
        signed = bool(feats.min() < 0)
        points = [uniform_point(n, sc.clip.calibrated_clip(feats, n), context) for n in levels]
        accs = evaluate(cache, points, eval_idx, progress=False)
        lat = latencies(cache.split, onnx, cache.dir / "latency.json")
        shape = list(cache.split.feature_shape)
        per_split.append({"split": name, "shape": shape, "elements": int(np.prod(shape)), "signed": signed, **lat,
                          "identity": cache.split.identity.to_dict()})
        for p, acc in zip(points, accs[1:]):
            m = finalize(acc)
            rows.append({"split": name, "method": "uniform", "levels": p.levels, "clip": list(p.clip), "quality": None,
                         "bytes_per_frame": acc.bits / 8 / acc.n, "bits_per_element": m["bits_per_element"],
                         "elements": int(np.prod(shape)), "signed": signed, "mse": m["mse"],
                         "agreement": m["fidelity_top1"], "top5_agreement": m["fidelity_top5"], "kl": m["kl"],
                         "confident_agreement": m["fidelity_top1_confident"],
                         "confident_samples": m["confident_samples"], **lat})
        log(f"{name}: {len(points)} operating points, {time.time() - t0:.0f} s")
    if baselines:
        float_logits = np.concatenate([d["logits"] for d in cache.iter_chunks(eval_idx)])
        items = [cache.items[i] for i in eval_idx]
        rows += input_baselines(cache.split, items, float_logits, {b: BASELINES[b] for b in baselines})
    pareto(rows)
    return {"study": "explore", "model": model, "dataset_spec": dataset, "dataset": cache.dataset.identity(),
            "context_model": context,
            "calibration_samples": len(calib_idx), "samples": len(eval_idx), "levels": list(levels),
            "splits": per_split, "rows": rows, "seconds": time.time() - t0}


def save_recommendation(doc: dict, path) -> str | None:
    """Write the recommended configuration as a quantizer file (None when nothing met the target)."""
    from splitcodec.quantizer_file import save_quantizer

    c = doc["recommendation"]["choice"]
    if c is None:
        return None
    from splitcodec.identity import DeploymentIdentity

    q = sc.UniformQuantizer(c["clip"][0], c["clip"][1], c["levels"])
    identity = DeploymentIdentity.from_dict(next(s["identity"] for s in doc["splits"] if s["split"] == c["split"]))
    save_quantizer(path, q, identity=identity, context_model=doc["context_model"],
                   study="explore", fitted_on={"dataset": doc["dataset"], "samples": doc["calibration_samples"]},
                   metrics={k: c[k] for k in ("bytes_per_frame", "agreement", "top5_agreement", "kl", "edge_ms")})
    return str(path)


def plot(doc: dict, path: str) -> None:
    """Bytes vs agreement per split (Pareto front highlighted) and edge latency vs bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    names = list(dict.fromkeys(r["split"] if r["split"] != "input" else r["method"] for r in rows))
    cmap = plt.get_cmap("viridis", max(2, len(names)))
    for i, n in enumerate(names):
        rs = sorted((r for r in rows if (r["split"] if r["split"] != "input" else r["method"]) == n),
                    key=lambda r: r["bytes_per_frame"])
        base = rs[0]["split"] == "input"
        a1.plot([r["bytes_per_frame"] for r in rs], [r["agreement"] for r in rs], ls="--" if base else "-",
                marker="s" if base else ".", color="black" if base else cmap(i), lw=1.2 if base else 0.8,
                alpha=1.0 if base else 0.6, label=f"input {n}" if base else None)
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["bytes_per_frame"])
    a1.plot([r["bytes_per_frame"] for r in front], [r["agreement"] for r in front], color="red", lw=2, marker="o",
            label="Pareto front")
    for r in front:
        a1.annotate(r["split"] if r["split"] != "input" else f"{r['method']} q{r['quality']}",
                    (r["bytes_per_frame"], r["agreement"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    a1.set_xscale("log")
    a1.set_xlabel("bytes per frame (log)")
    a1.set_ylabel("top-1 agreement with the float model")
    a1.set_title(f"{doc['model']}: every split × N, and the input coded ({doc['samples']} held-out samples)")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    sp = [r for r in rows if r["split"] != "input"]
    sc_ = a2.scatter([r["bytes_per_frame"] for r in sp], [r["edge_ms"] for r in sp],
                     c=[r["agreement"] for r in sp], cmap="plasma", s=18)
    fig.colorbar(sc_, ax=a2, label="agreement")
    a2.set_xscale("log")
    a2.set_xlabel("bytes per frame (log)")
    a2.set_ylabel("edge head latency, torch CPU 1 thread (ms)")
    a2.set_title("edge latency / bytes trade-off")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


CSV_COLUMNS = ("split", "method", "levels", "clip", "quality", "bytes_per_frame", "bits_per_element", "agreement",
               "top5_agreement", "kl", "confident_agreement", "edge_ms", "edge_ms_onnx", "tail_ms", "elements",
               "signed", "pareto")


def write_csv(doc: dict, path: str) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in doc["rows"]:
            w.writerow([":".join(str(v) for v in r[c]) if isinstance(r.get(c), list) else r.get(c, "")
                        for c in CSV_COLUMNS])


def markdown(doc: dict) -> str:
    """The Pareto rows and the recommendations, for docs/explore.md."""
    def fmt(v, f):
        return "—" if v is None else format(v, f)

    lines = [f"Generated by `python -m eval explore` ({doc['model']}, dataset `{doc['dataset_spec']}`: "
             f"{doc['calibration_samples']} calibration samples, {doc['samples']} held-out samples; "
             f"{len(doc['splits'])} splits × N ∈ {{{', '.join(map(str, doc['levels']))}}}, uniform quantizer, "
             f"MSE-optimal clip per split and N, {doc['context_model']} contexts; {len(doc['rows'])} rows; "
             f"{doc['seconds']:.0f} s). Pareto rows (no other row sends fewer bytes at higher agreement):", "",
             "| split | method | N / quality | bytes/frame | agreement | top-5 | KL (nats) | confident agr. | "
             "edge ms (torch) | edge ms (onnx) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in doc["rows"] if r["pareto"]), key=lambda r: r["bytes_per_frame"]):
        nq = r["levels"] if r["split"] != "input" else f"q{r['quality']}"
        lines.append(f"| {r['split']} | {r['method']} | {nq} | {r['bytes_per_frame']:,.0f} | {r['agreement']:.3f} | "
                     f"{r['top5_agreement']:.3f} | {r['kl']:.4f} | {fmt(r['confident_agreement'], '.3f')} | "
                     f"{r['edge_ms']:.1f} | {fmt(r['edge_ms_onnx'], '.1f')} |")
    for rec in doc.get("recommendations", []):
        c = rec["choice"]
        if c is None:
            lines.append(f"\n- ≥ {rec['target_agreement']:.0%} agreement: no configuration meets it.")
            continue
        base = rec.get("cheapest_input_baseline_meeting_target")
        vs = (f"; the cheapest input coding that meets it is {base['method']} q{base['quality']} at "
              f"{base['bytes_per_frame']:,.0f} B ({base['bytes_per_frame'] / c['bytes_per_frame']:.1f}×)"
              if base else "; no input coding tried meets it")
        lines.append(f"- **≥ {rec['target_agreement']:.0%} agreement**: split `{c['split']}`, N = {c['levels']}, clip "
                     f"[{c['clip'][0]:g}, {c['clip'][1]:g}]: {c['bytes_per_frame']:,.0f} B/frame, agreement "
                     f"{c['agreement']:.3f}, KL {c['kl']:.4f}, edge {c['edge_ms']:.1f} ms{vs}.")
    return "\n".join(lines)
