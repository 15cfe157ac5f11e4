"""Export a model's head (the edge half) to ONNX.

    python -m edge_app.export_head --model efficientnet_lite0 --split paper --weights DEFAULT --output head.onnx

Prints one JSON line: the file, the feature shape, and (with --check) the largest
difference between onnxruntime and torch on a random batch.
"""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="splitcodec-export-head", description="Export a split model's head to ONNX.")
    p.add_argument("--model", required=True, help="a registered model (splitcodec.models.list_models())")
    p.add_argument("--split", default="paper", help="split point name, or 'paper' (default)")
    p.add_argument("--weights", default="DEFAULT",
                   help="DEFAULT (trained; the default), an enum name, a file path, or random")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--check", action="store_true", help="compare onnxruntime with torch on a random batch")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from splitcodec import models
    from splitcodec.models.export import export_head_onnx, onnx_head_max_abs_error

    try:
        split = models.split_model(args.model, args.split, weights=args.weights)
    except (KeyError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = export_head_onnx(split, args.output, opset=args.opset)
    out = {"onnx": str(path), "model": args.model, "split": split.split, "input_size": split.input_size,
           "feature_shape": list(split.feature_shape)}
    if args.check:
        x = torch.rand(2, 3, split.input_size, split.input_size, generator=torch.Generator().manual_seed(0))
        out["max_abs_error"] = onnx_head_max_abs_error(split, path, x)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
