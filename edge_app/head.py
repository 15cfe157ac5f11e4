"""The head on the device: the registered model split with torch, or an exported ONNX head (no torch)."""

from __future__ import annotations

from pathlib import Path

from .options import quantizer_file


def load_head(args):
    """(head, model, split name, at paper split): an OnnxHead when the exported head has its
    description beside it (no torch), else the registered model split with torch."""
    if args.runtime == "onnx" and args.onnx and Path(str(args.onnx) + ".json").exists():
        from splitcodec.inference import OnnxHead

        head = OnnxHead(args.onnx)
        if args.model and args.model != head.name:
            raise ValueError(f"{args.onnx} is a head of {head.name}, not {args.model}")
        return head, head.name, head.split, head.split == head.paper_split
    import os

    import torch

    from splitcodec import models

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = args.model or _file_field(args, "model") or "efficientnet_lite0"
    weights = args.weights or ("DEFAULT" if model == "efficientnet_lite0" else None)
    split = models.split_model(model, args.split or _file_field(args, "split") or "paper", weights=weights)
    return split, model, split.split, split.split == split.paper_split


def prepare_runner(args, head):
    """The head runner (torch, or onnxruntime on an exported head; exported on the fly if needed)."""
    from splitcodec.inference import EdgeEncoder, OnnxHead

    onnx_path = args.onnx
    if args.runtime == "onnx" and not onnx_path:  # export on the fly (writes the description too)
        import tempfile

        from splitcodec.models.export import export_head_onnx

        onnx_path = export_head_onnx(head, Path(tempfile.mkdtemp()) / "head.onnx")
        head = OnnxHead(onnx_path)
    return EdgeEncoder(head, None, runtime=args.runtime, onnx_path=onnx_path)  # the head, run once per frame


def _file_field(args, key: str):
    """A field of the --quantizer file, if there is one."""
    f = quantizer_file(args)
    return f.doc.get(key) if f else None
