"""Render docs/results.md from study JSON files (``python -m eval results ...``, run by ``make results``)."""

from __future__ import annotations

import json
from pathlib import Path

from eval.core.evaluate import accuracy_key
from eval.core.entry import Entry

COMMANDS = """\
## Regenerating the paper's studies on real data

The same commands run on ImageNet / COCO and the paper's networks (weights are read from disk;
nothing is downloaded).  Activations are cached under `.cache/splitcodec-eval`; add
`--shard k/n` to split a run over machines and `python -m eval merge` to combine the parts.

```sh
# Table 1 / Fig. 2 / Fig. 4 — YOLOv3 layer 12 on COCO val2017 (mAP@0.5)
python -m eval rate-accuracy --model yolov3 --weights yolov3.weights --dataset coco:val2017:instances_val2017.json \\
    --levels 16,8,4,3,2 --clip=-0.8:3.5,-1:4,-0.1:2.5,-0.1:2.7,0:2 --context spatial,paper --csv t1.csv --plot t1.png
python -m eval clip-sweep --model yolov3 --weights yolov3.weights --dataset coco:val2017:instances_val2017.json \\
    --levels 2,4,8 --cmax 0.5:6:23 --plot fig2.png
python -m eval ecq --model yolov3 --weights yolov3.weights --dataset coco:val2017:instances_val2017.json \\
    --levels 2,3,4 --calib 100 --hevc 10,20,30,40,50 --plot fig4.png

# Table 2 — VGG-16 layer 6 on ImageNet (Darknet weights and activation scale)
python -m eval rate-accuracy --model vgg16_darknet --weights vgg-16.weights --dataset imagenet:ILSVRC2012_val \\
    --levels 16,8,7,6,5,4 --clip 0:2600,0:2400,0:2200,0:2000,0:1800,0:1600 --csv t2.csv

# Table 3 / Figs. 5-6 — ResNet-50 layer 21 on ImageNet (torchvision weights at 256 input, or resnet50_darknet)
python -m eval rate-accuracy --model resnet50 --weights IMAGENET1K_V1 --dataset imagenet:ILSVRC2012_val \\
    --levels 8,7,6,5,4,2 --clip=auto --csv t3.csv
python -m eval ecq --model resnet50 --weights IMAGENET1K_V1 --dataset imagenet:ILSVRC2012_val --levels 2,3,4 \\
    --calib 100 --hevc 10,20,30,40,50 --plot fig5.png

# choosing settings for deployment
python -m eval calibrate --model resnet50 --weights IMAGENET1K_V1 --dataset imagenet:ILSVRC2012_val --limit 500 \\
    --levels 4 --method accuracy --save resnet50-n4.json      # then: python -m edge_app --quantizer resnet50-n4.json
python -m eval target-rate --model resnet50 --weights IMAGENET1K_V1 --dataset imagenet:ILSVRC2012_val \\
    --limit 500 --budget 0.8 --with-ecq --save resnet50-0.8bpe.json
```

ImageNet folders are either class sub-folders or a flat folder with `--dataset imagenet:DIR:val.txt`
(lines `filename label`, 0-based torchvision class index).  The paper's clip ranges for VGG-16 are on
Darknet's activation scale (`vgg16_darknet`); torchvision's VGG-16 sees normalised inputs and needs
its own (`--clip auto` or `calibrate`).  The HEVC baseline is HEVC main intra through x265 (pillow-heif),
not the paper's HM-16.20 + SCM-8.8 screen-content coder, which has no Python binding; expect it to be
somewhat weaker than the paper's HEVC curves.
"""


def _load(path):
    return json.loads(Path(path).read_text()) if path else None


def _fmt(v, spec=".3f"):
    return "—" if v is None else format(v, spec)


def _acc_cols(doc):
    if doc["task"] == "detection":
        return [("mAP@0.5", "mAP50")]
    if any("top1" in r for r in doc["rows"]):
        return [("top-1", "top1"), ("top-5", "top5")]
    return [("fidelity top-1", "fidelity_top1"), ("fidelity top-5", "fidelity_top5")]


def rate_table(doc, extra_rows=()) -> str:
    cols = _acc_cols(doc)
    head = "| quantizer | N | clip | contexts | bits/element | " + " | ".join(c for c, _ in cols) + " | MSE |"
    lines = [head, "|" + "---|" * (6 + len(cols))]
    for r in list(doc["rows"]) + list(extra_rows):
        if r["method"] == "float":
            lines.append("| float32 (uncompressed) | — | — | — | 32 | " + " | ".join(_fmt(r.get(k)) for _, k in cols) + " | 0 |")
            continue
        name = r["method"] + (f" (q={r['quality']})" if r["method"] == "hevc" else "")
        clip = f"{r['clip'][0]:g}, {r['clip'][1]:g}" if r.get("clip") else "—"
        n = "8-bit" if r["method"] == "hevc" else r.get("levels")
        lines.append(f"| {name} | {n} | {clip} | "
                     f"{r.get('context_model') or '—'} | {_fmt(r.get('bits_per_element'))} | "
                     + " | ".join(_fmt(r.get(k)) for _, k in cols) + f" | {_fmt(r.get('mse'), '.4f')} |")
    return "\n".join(lines)


FAMILY_NAMES = {"rdo": "RDO", "rdo+feedback": "+ error feedback", "rdo+feedback+weights": "+ channel weights"}


def encoder_section(doc) -> list[str]:
    """Rate-distortion optimised encoding against task fidelity: the bits each encoder family needs."""
    from eval.core.studies import ENCODER_FAMILIES

    rows = doc["rows"][1:]
    settings = {k: sorted({r.get(k) for r in rows if r.get(k)}) for k in ("rdo_lambda", "error_feedback")}
    weights = sorted({r["channel_weights"] for r in rows if r.get("channel_weights")})
    diffusion = ("along the row and in the plane (half right, half below)"
                 if any(r.get("error_diffusion") == "plane" for r in rows) else "along the row")
    metrics = [k for k in ("kl", "fidelity_top1", "fidelity_top5", "mAP50") if k in doc["encoder_savings"][0]]
    names = {"kl": "KL", "fidelity_top1": "top-1", "fidelity_top5": "top-5", "mAP50": "mAP@0.5"}
    fams = ENCODER_FAMILIES[1:]
    out = ["### Rate-distortion optimised encoding and task fidelity", "",
           f"`python -m eval rate-accuracy --rdo-lambda ... --error-feedback ... --task-weights ...` on {doc['model']} "
           f"`{doc['split']}`, {doc['evaluated_samples']} crops (settings fitted on the first {doc['calibration_samples']}): "
           f"every N of the uniform quantizer (MSE-optimal clip) also encoded with RDO λ ∈ {settings['rdo_lambda']}, "
           f"error feedback ∈ {settings['error_feedback']} ({diffusion}) and, for the RDO points, channel weights "
           f"{', '.join(weights) or '—'} (`splitcodec.sensitivity`). Each cell: the fewest bits a family of encoder "
           "settings needs to be at least as faithful as the plain quantizer at that N, as a fraction of the plain "
           "bits (KL: at most its KL divergence). A family may use the settings of the families left of it. KL "
           "moves smoothly with the distortion; top-1/top-5 agreement on a few dozen crops moves in steps of one "
           "crop and is noisy.", "",
           "| N | plain b/e | " + " | ".join(f"{names[m]}: plain | " + " | ".join(FAMILY_NAMES[f] for f in fams)
                                          for m in metrics) + " |",
           "|" + "---|" * (2 + len(metrics) * (1 + len(fams)))]
    for s in sorted(doc["encoder_savings"], key=lambda s: -s["levels"]):
        cells = []
        for m in metrics:
            v = s[m]["plain_value"]
            cells.append(f"{v:.4f}" if m == "kl" else f"{v:.3f}")
            cells += [f"{s[m][f]['ratio']:.3f}" for f in fams]
        out.append(f"| {s['levels']} | {s['bits_per_element']:.3f} | " + " | ".join(cells) + " |")
    out += ["", "![rate-accuracy with RDO](figures/rate_accuracy_rdo.png)", ""]
    return out


ENTRY = Entry("results", "doc", "write docs/results.md from study JSON files", json=False)


def add_arguments(s) -> None:
    s.add_argument("--rate-accuracy", required=True)
    s.add_argument("--hevc")
    s.add_argument("--calibrate")
    s.add_argument("--clip-sweep")
    s.add_argument("--ecq")
    s.add_argument("--rate-accuracy-rdo", help="a rate-accuracy run with --rdo-lambda/--error-feedback/--task-weights")
    s.add_argument("--video", help="a `python -m eval video` run (camera streams)")
    s.add_argument("--page", default="docs/results.md", help="the page to write (default docs/results.md)")


def run(args) -> int:
    Path(args.page).write_text(render(args))
    return 0


def render(args) -> str:
    """docs/results.md from the study files named by ``args`` (the ``results`` command's options)."""
    ra = _load(args.rate_accuracy)
    hv = _load(args.hevc)
    cal = _load(args.calibrate)
    cs = _load(args.clip_sweep)
    eq = _load(args.ecq)
    out = ["# Results", "",
           "Generated by `make results` (`python -m eval results ...` from the study JSON files in "
           "`docs/results/`); every number below comes from those files.", "",
           f"## {ra['model']}, split `{ra['split']}` {tuple(ra['feature_shape'])}, on the shipped photos", "",
           f"{ra['evaluated_samples']} augmented crops of the photos shipped with scikit-image; they carry no labels, so "
           "accuracy is *fidelity*: agreement of the compressed pipeline's top-1 with the uncompressed model's top-1 "
           "(top-5: the float top-1 among the compressed top-5).  Quantizers and clip ranges were fitted on the first "
           f"{ra['calibration_samples']} crops (MSE-optimal `c_max` per N); bits/element count the whole bitstream, "
           "header included.", "",
           "### Rate and fidelity at the paper's operating points (N = 16, 8, 4, 3, 2)", "",
           rate_table(ra, hv["rows"][1:] if hv else ()), ""]
    if hv:
        out += [f"HEVC rows: {hv.get('note', '')}; the 8-bit mosaic's min/max (8 bytes) and the HEIF container are "
                "counted in its rate.", ""]
    if cal:
        m = cal["calibration_metrics"]
        out += ["### Clip calibration", "",
                f"`python -m eval calibrate --levels {cal['levels']} --method {cal['method']}` on "
                f"{cal['calibration_samples']} crops chose clip **[{cal['clip'][0]:g}, {cal['clip'][1]:g}]** for N = "
                f"{cal['levels']}: {_fmt(m.get('bits_per_element'))} bits/element, fidelity top-1 "
                f"{_fmt(m.get('fidelity_top1'))}, MSE {_fmt(m.get('mse'), '.4f')} on those crops.", ""]
        if len(cal.get("candidates", [])) > 1:
            out += ["| candidate c_max | bits/element | fidelity top-1 | MSE |", "|---|---|---|---|"]
            out += [f"| {c['clip'][1]:g} | {_fmt(c.get('bits_per_element'))} | {_fmt(c.get('fidelity_top1'))} | "
                    f"{_fmt(c.get('mse'), '.4f')} |" for c in cal["candidates"]]
            out.append("")
    if cs:
        out += ["### Clip sweep (Fig. 2)", "", "| N | MSE-optimal c_max | accuracy-optimal c_max | fidelity at MSE-optimal | best fidelity |",
                "|---|---|---|---|---|"]
        out += [f"| {o['levels']} | {o['mse_optimal_cmax']:g} | {o['accuracy_optimal_cmax']:g} | "
                f"{_fmt(o['accuracy_at_mse_optimal'])} | {_fmt(o['best_accuracy'])} |" for o in cs["optima"]]
        out += ["", "![clip sweep](figures/clip_sweep.png)", ""]
    if eq:
        out += ["### Entropy-constrained quantizers (Figs. 4-6)", "",
                "Uniform, conventional ECQ (Algorithm 1) and modified ECQ (Algorithm 2) designed on the calibration crops "
                "over a λ sweep, spatial contexts:", "", "![ecq](figures/ecq.png)", ""]
        best = {}
        for r in eq["rows"][1:]:
            if r["method"] in ("ecq-conventional", "ecq-modified", "uniform") and r.get("bits_per_element"):
                best.setdefault((r["method"], r["levels"]), []).append(r)
        out += ["| quantizer | N | rate range (b/e) | best fidelity top-1 |", "|---|---|---|---|"]
        for (m, n), rs in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            bits = [r["bits_per_element"] for r in rs]
            out.append(f"| {m} | {n} | {min(bits):.3f}–{max(bits):.3f} | {max(accuracy_key(r) for r in rs):.3f} |")
        out.append("")
    out += ["![rate-accuracy](figures/rate_accuracy.png)", ""]
    rdo = _load(getattr(args, "rate_accuracy_rdo", None))
    if rdo and rdo.get("encoder_savings"):
        out += encoder_section(rdo)
    video = _load(getattr(args, "video", None))
    if video:
        from eval.studies.video import results_markdown as video_markdown

        out += ["## Camera streams: temporal coding against streaming the input as video", "",
                video_markdown(video), "", "![video](figures/video.png)", ""]
    out += [COMMANDS]
    return "\n".join(out)
