"""Study outputs: JSON (stdout and --output), CSV beside it, PNG plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from eval.core.evaluate import accuracy_key

SCALARS = ("method", "levels", "clip", "context_model", "lambda", "rdo_lambda", "error_feedback", "error_diffusion", "channel_weights", "quality", "bits_per_element", "mse", "top1", "top5",
           "fidelity_top1", "fidelity_top5", "kl", "fidelity_top1_confident", "confident_samples", "mAP50", "mAP",
           "samples")


def _jsonable(doc: dict) -> dict:
    """The document without its objects: the quantizer (a file says it better), the encoder as its dict."""
    return {k: (v.to_dict() if k == "encoder" else v) for k, v in doc.items() if k != "quantizer"}


def write_json(doc: dict, path: str | None) -> str:
    text = json.dumps(_jsonable(doc), indent=2)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    return text


def write_csv(doc: dict, path: str) -> None:
    rows = doc.get("rows") or doc.get("candidates") or []
    cols = [c for c in SCALARS if any(c in r for r in rows)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([":".join(str(v) for v in r[c]) if isinstance(r.get(c), list) else r.get(c, "") for c in cols])


def accuracy_label(doc: dict) -> str:
    rows = doc.get("rows", [])
    if any("mAP50" in r for r in rows):
        return "mAP@0.5"
    if any("top1" in r for r in rows):
        return "top-1 accuracy"
    return "top-1 fidelity (agreement with the float model)"


def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    base = accuracy_key(rows[0])
    ylab = accuracy_label(doc)
    title = f"{doc['model']} {doc['split']} — {doc['study']}"
    if doc.get("encoder_savings"):
        _plot_encoder_frontiers(doc, path, title)
        return
    if doc["study"] == "clip-sweep":
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for n in sorted({r["levels"] for r in rows[1:]}):
            rs = sorted((r for r in rows[1:] if r["levels"] == n), key=lambda r: r["clip"][1])
            x = [r["clip"][1] for r in rs]
            a1.plot(x, [accuracy_key(r) for r in rs], marker=".", label=f"N = {n}")
            a2.plot(x, [r["mse"] for r in rs], marker=".", label=f"N = {n}")
        for o in doc.get("optima", []):
            a1.axvline(o["accuracy_optimal_cmax"], ls=":", lw=0.8, color="gray")
            a2.axvline(o["mse_optimal_cmax"], ls="--", lw=0.8, color="gray")
        a1.axhline(base, color="k", lw=1, label="float32")
        a1.set(xlabel="c_max", ylabel=ylab, title="accuracy (dotted: accuracy-optimal c_max)")
        a2.set(xlabel="c_max", ylabel="MSQE", yscale="log", title="quantization error (dashed: MSE-optimal)")
        a1.legend(fontsize=8)
        a2.legend(fontsize=8)
        fig.suptitle(title)
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        groups: dict = {}
        for r in rows[1:]:
            if r.get("bits_per_element") is None:
                continue
            if r["method"] == "hevc":
                key = "HEVC (x265 main intra, 8-bit mosaic)"
            elif doc["study"] == "ecq":
                key = f"{r['method']} N={r['levels']}"  # one curve per N: the λ sweep
            else:
                key = f"{r['method']}, {r['context_model']} contexts"
            if r.get("rdo_lambda"):
                key += f", RDO λ={r['rdo_lambda']:g}"
            groups.setdefault(key, []).append(r)
        for key, rs in groups.items():
            rs = sorted(rs, key=lambda r: r["bits_per_element"])
            ax.plot([r["bits_per_element"] for r in rs], [accuracy_key(r) for r in rs], marker="o", ms=4, label=key)
        ax.axhline(base, color="k", lw=1, label="float32 (uncompressed)")
        ax.set(xlabel="bits per element (header included)", ylabel=ylab, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def frontier(rows, key, higher: bool) -> list[dict]:
    """The rows no cheaper row matches: by increasing bits, each strictly better on ``key`` than all before."""
    out, best = [], None
    for r in sorted(rows, key=lambda r: (r["bits_per_element"], -r[key] if higher else r[key])):
        if best is None or (r[key] > best if higher else r[key] < best):
            out.append(r)
            best = r[key]
    return out


def _plot_encoder_frontiers(doc: dict, path: str, title: str) -> None:
    """Rate-accuracy with encoder families: fidelity and KL divergence against bits, one frontier per family."""
    import matplotlib.pyplot as plt

    from eval.core.studies import ENCODER_FAMILIES, family_rows

    rows = [r for r in doc["rows"][1:] if r.get("bits_per_element")]
    panels = [("kl", False, "KL(float ‖ decoded) of the softmax, nats (lower is better)")] if "kl" in rows[0] else []
    panels.insert(0, ("mAP50" if "mAP50" in rows[0] else "fidelity_top1", True, accuracy_label(doc)))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (key, higher, label) in zip(axes[0], panels):
        ax.scatter([r["bits_per_element"] for r in rows], [r[key] for r in rows], s=6, c="0.75", label="all points")
        for fam, style in zip(ENCODER_FAMILIES, ("o-", "s-", "^-", "d-")):
            f = frontier(family_rows(rows, fam), key, higher)
            ax.plot([r["bits_per_element"] for r in f], [r[key] for r in f], style, ms=4,
                    label="plain quantizer" if fam == "plain" else f"+ {fam}")
        ax.set(xlabel="bits per element (header included)", ylabel=label)
        if not higher:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: frontiers with and without rate-distortion optimised encoding")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
