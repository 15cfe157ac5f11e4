"""The head on the device: the registered model split with torch, or an exported ONNX head (no torch), checked
against the --quantizer file's deployment identity before anything runs."""

from __future__ import annotations

from pathlib import Path

from .options import quantizer_file

FILE_FIX = ("pass the file's --model/--split/--weights, or a --quantizer file measured for this head "
            "(splitcodec-eval explore --save)")


def load_head(args):
    """(head, model, split name, at paper split): an OnnxHead when the exported head has its
    description beside it (no torch), else the registered model split with torch.  A --quantizer file
    measured on another deployment (model, weights, split, shape, preprocessing) is refused
    (``IdentityMismatchError``, one line)."""
    from splitcodec.quantizer_file import check_file_identity

    qf = quantizer_file(args)
    if args.runtime == "onnx" and args.onnx and Path(str(args.onnx) + ".json").exists():
        from splitcodec.inference import OnnxHead

        head = OnnxHead(args.onnx)
        for flag, value, have in (("--model", args.model, head.name), ("--split", args.split, head.split),
                                  ("--weights", args.weights, head.identity.weights)):
            if value and value != have:
                raise ValueError(f"{args.onnx} is a head of {head.identity.short()}, not {flag} {value}")
        if qf:
            check_file_identity(qf, head.identity, mine=f"the ONNX head {args.onnx}", fix=FILE_FIX)
        return head, head.name, head.split, head.split == head.paper_split
    import os

    import torch

    from splitcodec import models

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    ident = qf.identity if qf else None
    model = args.model or (ident.model if ident else None) or "efficientnet_lite0"
    split = models.split_model(model, args.split or (ident.split if ident else None) or "paper",
                               weights=args.weights or "DEFAULT")
    if qf:
        check_file_identity(qf, split.identity, fix=FILE_FIX)
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
