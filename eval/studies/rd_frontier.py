"""The ``rd-frontier`` study: the codec's operational rate-distortion curve on a split's activations,
with and without rate-distortion optimised encoding and refined levels (``splitcodec.rd``), and the best
operating point for a target MSE or bit budget."""

from __future__ import annotations

import splitcodec as sc

from eval.core import options
from eval.core.studies import sample_sets
from eval.core.entry import Entry

ENTRY = Entry("rd-frontier", "study", "operational RD curve (bits vs MSE) with and without RDO encoding")


def add_arguments(s) -> None:
    options.add_dataset_arguments(s, shardable=False, levels=[2, 3, 4, 6, 8, 12, 16])
    s.add_argument("--lambdas", type=options.floats, default=[0.0, 0.05, 0.1, 0.2, 0.4, 0.8], help="RDO λ values")
    s.add_argument("--context", default="spatial")
    s.add_argument("--target-mse", type=float, help="report the fewest bits reaching this MSE")
    s.add_argument("--max-bits", type=float, help="report the least MSE within this many bits per element")


def run(args) -> dict:
    return rd_frontier_study(options.open_study_cache(args), levels=args.levels, lambdas=args.lambdas,
                             samples=args.calib or 16, context=args.context, target_mse=args.target_mse,
                             max_bits=args.max_bits)


def rd_frontier_study(cache, *, levels, lambdas, samples: int = 16, context="spatial", target_mse=None,
                      max_bits=None) -> dict:
    idx, _ = sample_sets(cache, samples)
    cache.build(idx)
    feats = cache.features(idx)
    points = sc.rd.rd_points(list(feats), levels=levels, lambdas=lambdas, context_model=context)
    plain = sc.rd.rd_frontier([p for p in points if p["rdo_lambda"] == 0 and p["kind"] == "uniform"])
    full = sc.rd.rd_frontier(points)
    doc = {"study": "rd-frontier", "model": cache.split.name, "split": cache.split.split,
           "dataset": cache.dataset.identity(), "samples": len(idx), "context_model": context,
           "levels": list(levels), "lambdas": list(lambdas), "points": points,
           "frontier_plain": plain, "frontier_rdo": full, "savings_at_equal_mse": savings(plain, full)}
    if target_mse is not None or max_bits is not None:
        doc["best"] = sc.rd.best_point(points, target_mse=target_mse, max_bits=max_bits)
    return doc


def savings(plain, full) -> list[dict]:
    """For each plain-frontier point: the fewest bits any point of ``full`` needs at no more distortion."""
    out = []
    for p in plain:
        ok = [f for f in full if f["mse"] <= p["mse"]]
        b = min(f["bits_per_element"] for f in ok)
        out.append({"levels": p["levels"], "mse": p["mse"], "bits_plain": p["bits_per_element"], "bits_best": b,
                    "ratio": b / p["bits_per_element"]})
    return out


def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = doc["points"]
    ax.scatter([p["bits_per_element"] for p in pts], [p["mse"] for p in pts], s=8, c="0.7", label="all points")
    for key, style, label in (("frontier_plain", "o-", "plain uniform quantization (λ = 0)"),
                              ("frontier_rdo", "s-", "RDO encoding and refined levels")):
        f = doc[key]
        ax.plot([p["bits_per_element"] for p in f], [p["mse"] for p in f], style, ms=4, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("bits per element (header included)")
    ax.set_ylabel("MSE against the unclipped activations")
    ax.set_title(f"{doc['model']} {doc['split']}: operational RD curve ({doc['samples']} samples)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
