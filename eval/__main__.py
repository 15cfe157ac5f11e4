"""splitcodec-eval: rate-accuracy studies for split networks.

    python -m eval rate-accuracy --model resnet50 --weights IMAGENET1K_V1 --dataset imagenet:/data/val \
        --levels 8,7,6,5,4,2 --clip 0:14,0:12,0:12,0:12,0:10,0:7 --output t3.json --csv t3.csv --plot t3.png
    python -m eval clip-sweep | ecq | hevc | calibrate | target-rate | merge | results ...

Each study prints one JSON document (progress goes to stderr).  The head runs
once per sample and its activations are cached (``--cache-dir``), so later
studies on the same data start at once, and an interrupted run resumes.
Other entry points of eval (benchmarks, demos) are ``python -m eval.<name>``.
"""

from __future__ import annotations

import argparse
import json
import sys


def _ints(text):
    return [int(v) for v in str(text).split(",") if v]


def _floats(text):
    return [float(v) for v in str(text).split(",") if v]


def _diffusions(text):
    from splitcodec.entropy.coder import DIFFUSIONS

    out = [v for v in str(text).split(",") if v]
    if not out or any(v not in DIFFUSIONS for v in out):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(DIFFUSIONS)}")
    return out


def _shard(text):
    if not text:
        return None
    k, _, n = text.partition("/")
    k, n = int(k), int(n)
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard must be k/n with 0 <= k < n, got {text}")
    return k, n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="splitcodec-eval", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="study", required=True)

    def common(sp, shardable=True):
        sp.add_argument("--model", default="efficientnet_lite0")
        sp.add_argument("--split", default="paper")
        sp.add_argument("--weights", default=None, help="DEFAULT, an enum name, or a weights file")
        sp.add_argument("--dataset", default="photos:96",
                        help="photos[:N] | imagenet:ROOT[:LABELS] | coco:IMAGES:ANNOTATIONS (default photos:96)")
        sp.add_argument("--limit", type=int, help="use only the first N samples")
        sp.add_argument("--calib", type=int, default=100, help="samples (from the start) used to design/calibrate")
        sp.add_argument("--exclude-calib", action="store_true", help="evaluate only on the samples after --calib")
        sp.add_argument("--cache-dir", default=".cache/splitcodec-eval")
        sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--max-detections", type=int,
                        help="detection studies: keep at most N detections per image (default: all above 0.005, "
                             "as Darknet's detector valid; pycocotools then keeps 100 per image and category)")
        sp.add_argument("--output", help="write the JSON here too")
        sp.add_argument("--csv", help="write the rows as CSV")
        sp.add_argument("--plot", help="write a PNG plot")
        if shardable:
            sp.add_argument("--shard", type=_shard, help="k/n: evaluate only every n-th sample from k (merge later)")

    s = sub.add_parser("rate-accuracy", help="Tables 1-3: float baseline and one row per operating point")
    common(s)
    s.add_argument("--levels", type=_ints, default=[16, 8, 7, 6, 5, 4, 3, 2])
    s.add_argument("--clip", default="auto", help="auto | C_MAX | C_MIN:C_MAX | one C_MIN:C_MAX per N")
    s.add_argument("--context", default="spatial", help="spatial,paper")
    s.add_argument("--quantizer", default="uniform", help="uniform,ecq-modified,ecq-conventional,lloyd-max")
    s.add_argument("--lam", type=float, help="λ for ECQ quantizers (default: scaled to the data)")
    s.add_argument("--grid", help="JSON file: a list of operating points {method, levels, clip, context_model, lambda, "
                                  "rdo_lambda, error_feedback}")
    s.add_argument("--rdo-lambda", type=_floats, default=[],
                   help="also each point encoded rate-distortion optimised with these λ (comma-separated)")
    s.add_argument("--error-feedback", type=_floats, default=[],
                   help="also each point encoded with these error-feedback gains in [0, 1] (with every --rdo-lambda)")
    s.add_argument("--error-diffusion", type=_diffusions, default=["row"],
                   help="where the error feedback goes: 'row', 'plane' (half right, half below) or 'row,plane'")
    s.add_argument("--task-weights", type=float, default=None, metavar="POWER",
                   help="also the RDO points with channel weights = (sensitivity of the network behind the split, "
                        "fitted on the calibration samples) ** POWER")

    s = sub.add_parser("clip-sweep", help="Fig. 2: accuracy and MSQE against c_max")
    common(s)
    s.add_argument("--levels", type=_ints, default=[2, 4, 8])
    s.add_argument("--cmax", help="LO:HI:COUNT (default: quantiles of the calibration activations)")
    s.add_argument("--points", type=int, default=16)

    s = sub.add_parser("ecq", help="Figs. 4-6: uniform vs conventional and modified ECQ over λ")
    common(s)
    s.add_argument("--levels", type=_ints, default=[2, 3, 4])
    s.add_argument("--lams", type=_floats, help="λ values (default: 6 scaled to the data)")
    s.add_argument("--clip", default="auto")
    s.add_argument("--context", default="spatial")
    s.add_argument("--hevc", type=_ints, default=[], help="also HEVC at these qualities")
    s.add_argument("--rdo-lambda", type=_floats, default=[],
                   help="also every uniform and ECQ point encoded with these RDO λ")

    s = sub.add_parser("hevc", help="HEVC baseline: 8-bit channel mosaic through x265")
    common(s)
    s.add_argument("--qualities", type=_ints, default=[10, 30, 50, 70, 90])

    s = sub.add_parser("calibrate", help="choose the clip range for N levels and save a quantizer file")
    common(s, shardable=False)
    s.add_argument("--levels", type=int, required=True)
    s.add_argument("--method", default="mse", choices=["mse", "accuracy"])
    s.add_argument("--context", default="spatial")
    s.add_argument("--rdo-lambda", type=_floats, default=[],
                   help="with --method accuracy: also these RDO λ, searched together with the clip")
    s.add_argument("--save", help="quantizer file to write (default quantizer-MODEL-N.json)")

    s = sub.add_parser("target-rate", help="best accuracy within a bits/element budget")
    common(s, shardable=False)
    s.add_argument("--budget", type=float, required=True, help="bits per element")
    s.add_argument("--levels", type=_ints, default=[2, 3, 4, 5, 6, 8, 12, 16])
    s.add_argument("--with-ecq", action="store_true", help="also consider modified-ECQ quantizers")
    s.add_argument("--context", default="spatial")
    s.add_argument("--rdo-lambda", type=_floats, default=[],
                   help="also every candidate encoded with these RDO λ (searched together with N and clip)")
    s.add_argument("--error-feedback", type=_floats, default=[],
                   help="also every candidate encoded with these error-feedback gains in [0, 1] (with every "
                        "--rdo-lambda; searched together with N and clip)")
    s.add_argument("--error-diffusion", type=_diffusions, default=["row"],
                   help="where the error feedback goes: 'row', 'plane' (half right, half below) or 'row,plane'")
    s.add_argument("--save", help="quantizer file to write")

    s = sub.add_parser("rd-frontier", help="operational RD curve (bits vs MSE) with and without RDO encoding")
    common(s, shardable=False)
    s.add_argument("--levels", type=_ints, default=[2, 3, 4, 6, 8, 12, 16])
    s.add_argument("--lambdas", type=_floats, default=[0.0, 0.05, 0.1, 0.2, 0.4, 0.8], help="RDO λ values")
    s.add_argument("--context", default="spatial")
    s.add_argument("--target-mse", type=float, help="report the fewest bits reaching this MSE")
    s.add_argument("--max-bits", type=float, help="report the least MSE within this many bits per element")

    s = sub.add_parser("explore", help="every split point × operating point against coding the input itself")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--weights", default=None, help="DEFAULT, an enum name, or a weights file")
    s.add_argument("--dataset", default="photos:48", help="photos[:N] | imagenet:ROOT[:LABELS] (default photos:48)")
    s.add_argument("--limit", type=int, help="use only the first N samples")
    s.add_argument("--splits", help="a,b,... (default: every split point)")
    s.add_argument("--levels", type=_ints, default=[2, 4, 8, 16])
    s.add_argument("--calib", type=int, default=16, help="samples (from the start) for the clip; the rest are held out")
    s.add_argument("--context", default="spatial")
    s.add_argument("--baselines", default="jpeg,webp,hevc", help="input codings to compare (empty: none)")
    s.add_argument("--target-agreement", type=_floats, default=[0.99, 0.95],
                   help="fidelity target(s); the first one's choice is saved with --save")
    s.add_argument("--edge-budget-ms", type=float, help="edge head latency budget (torch CPU, 1 thread)")
    s.add_argument("--bandwidth", type=float, help="link budget in bits/s (with --fps)")
    s.add_argument("--fps", type=float, default=30.0)
    s.add_argument("--save", help="write the recommended configuration as a quantizer file here")
    s.add_argument("--no-onnx", action="store_true", help="do not time an onnxruntime head")
    s.add_argument("--cache-dir", default=".cache/splitcodec-eval")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--output", help="write the JSON here too")
    s.add_argument("--csv", help="write the rows as CSV")
    s.add_argument("--plot", help="write a PNG plot (bytes vs agreement, edge latency vs bytes)")
    s.add_argument("--update-doc", help="rewrite the explore section of this markdown file")

    s = sub.add_parser("merge", help="combine --shard outputs of one study")
    s.add_argument("inputs", nargs="+")
    s.add_argument("--coco", help="annotation json (detection studies)")
    s.add_argument("--output")
    s.add_argument("--csv")
    s.add_argument("--plot")

    s = sub.add_parser("results", help="write docs/results.md from study JSON files")
    s.add_argument("--rate-accuracy", required=True)
    s.add_argument("--hevc")
    s.add_argument("--calibrate")
    s.add_argument("--clip-sweep")
    s.add_argument("--ecq")
    s.add_argument("--rate-accuracy-rdo", help="a rate-accuracy run with --rdo-lambda/--error-feedback/--task-weights")
    s.add_argument("--output", default="docs/results.md")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .common import pin_threads

    pin_threads(2)
    import numpy as np
    import torch

    from . import report, studies

    torch.manual_seed(getattr(args, "seed", 0))
    np.random.seed(getattr(args, "seed", 0))
    if args.study == "results":
        from .results_doc import write_results

        write_results(args)
        return 0
    if args.study == "explore":
        return _explore(args)
    if args.study == "merge":
        try:
            docs = [json.loads(open(p).read()) for p in args.inputs]
            doc = studies.merge_documents(docs, coco=args.coco)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: cannot merge: {e}", file=sys.stderr)
            return 2
    else:
        from .activations import open_cache

        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
        try:
            cache = open_cache(args.model, args.split, args.weights, args.dataset, limit=args.limit,
                               cache_dir=args.cache_dir, device=device)
        except (KeyError, FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.max_detections:
            from splitcodec.models.yolo import COCO_EVAL

            cache.detection_settings = dict(COCO_EVAL, max_dets=args.max_detections,
                                            pre_nms_topk=max(3000, 30 * args.max_detections))
        kw = dict(calib=args.calib, device=device)
        try:
            if args.study == "rate-accuracy":
                grid = json.loads(open(args.grid).read()) if args.grid else None
                doc = studies.rate_accuracy(cache, levels=args.levels, clip=args.clip, contexts=args.context.split(","),
                                            quantizers=args.quantizer.split(","), lam=args.lam, shard=args.shard,
                                            exclude_calib=args.exclude_calib, grid=grid, rdo_lambdas=args.rdo_lambda,
                                            error_feedbacks=args.error_feedback, task_weights=args.task_weights,
                                            diffusions=args.error_diffusion,
                                            **kw)
            elif args.study == "clip-sweep":
                doc = studies.clip_sweep(cache, levels=args.levels, cmax=args.cmax, points_per_level=args.points,
                                         shard=args.shard, exclude_calib=args.exclude_calib, **kw)
            elif args.study == "ecq":
                doc = studies.ecq(cache, levels=args.levels, lams=args.lams, clip=args.clip, context=args.context,
                                  shard=args.shard, exclude_calib=args.exclude_calib, hevc_qualities=args.hevc,
                                  rdo_lambdas=args.rdo_lambda, **kw)
            elif args.study == "hevc":
                doc = studies.hevc(cache, qualities=args.qualities, shard=args.shard, device=device)
            elif args.study == "rd-frontier":
                from .rd_frontier import rd_frontier_study

                doc = rd_frontier_study(cache, levels=args.levels, lambdas=args.lambdas, samples=args.calib,
                                        context=args.context, target_mse=args.target_mse, max_bits=args.max_bits)
            elif args.study == "calibrate":
                doc = studies.calibrate(cache, levels=args.levels, method=args.method, context=args.context,
                                        rdo_lambdas=args.rdo_lambda, **kw)
            else:
                doc = studies.target_rate(cache, budget=args.budget, levels=args.levels, with_ecq=args.with_ecq,
                                          context=args.context, exclude_calib=args.exclude_calib,
                                          rdo_lambdas=args.rdo_lambda, error_feedbacks=args.error_feedback,
                                          diffusions=args.error_diffusion, **kw)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.study in ("calibrate", "target-rate"):
            from splitcodec.quantizer_file import save_quantizer

            path = args.save or f"quantizer-{doc['model']}-{doc['quantizer'].levels}.json"
            save_quantizer(path, doc["quantizer"], model=doc["model"], split=doc["split"], study=args.study,
                           context_model=args.context, rdo_lambda=doc.get("rdo_lambda", 0.0),
                           **({"error_feedback": doc["error_feedback"], "error_diffusion": doc["error_diffusion"]}
                              if doc.get("error_feedback") else {}),
                           fitted_on={"dataset": cache.dataset.identity(), "samples": doc["calibration_samples"]},
                           metrics=doc.get("calibration_metrics") or doc.get("achieved"))
            doc["quantizer_file"] = path
    print(report.write_json(doc, args.output))
    if getattr(args, "csv", None):
        report.write_csv(doc, args.csv)
    if getattr(args, "plot", None) and doc.get("study") == "rd-frontier":
        from .rd_frontier import plot as rd_plot

        rd_plot(doc, args.plot)
    elif getattr(args, "plot", None) and doc.get("rows"):
        report.plot(doc, args.plot)
    return 0


def _explore(args) -> int:
    from . import explore, report

    try:
        doc = explore.explore(args.model, args.dataset, weights=args.weights, limit=args.limit,
                              splits=args.splits.split(",") if args.splits else None, levels=args.levels,
                              calib=args.calib, context=args.context, cache_dir=args.cache_dir,
                              baselines=[b for b in args.baselines.split(",") if b], onnx=not args.no_onnx)
    except (KeyError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    doc["recommendations"] = [explore.recommend(doc["rows"], t, edge_budget_ms=args.edge_budget_ms,
                                                bandwidth=args.bandwidth, fps=args.fps) for t in args.target_agreement]
    doc["recommendation"] = doc["recommendations"][0]
    if args.save:
        doc["quantizer_file"] = explore.save_recommendation(doc, args.save)
    print(report.write_json(doc, args.output))
    if args.csv:
        explore.write_csv(doc, args.csv)
    if args.plot:
        explore.plot(doc, args.plot)
    if args.update_doc:
        from .common import update_section

        update_section(args.update_doc, "explore", explore.markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
