"""Export the head (edge half) of a split model to ONNX, for TensorRT or onnxruntime on the device."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the export functions only: the description is torch-free
    import torch

    from .split import SplitModel

__all__ = ["HEAD_FILE_VERSION", "head_description", "export_head_onnx", "onnx_head_max_abs_error"]

HEAD_FILE_VERSION = 2  # 2: the deployment identity and the ONNX file's SHA-256


def head_description(split) -> dict:
    """What an edge device needs to run a split's exported head without torch (the
    ``<head>.onnx.json`` written by ``export_head_onnx`` and read by :class:`OnnxHead`)."""
    return {"format": "splitcodec-head", "version": HEAD_FILE_VERSION, "model": split.name, "split": split.split,
            "paper_split": getattr(split, "paper_split", None), "task": getattr(split, "task", "classification"),
            "input_size": split.input_size, "feature_shape": list(split.feature_shape),
            "preprocess": split.preprocess_spec, "identity": split.identity.to_dict()}



def export_head_onnx(split: SplitModel, path, *, opset: int = 17, dynamic_batch: bool = True) -> Path:
    """Write ``split.head`` as ONNX (input ``image`` (B, 3, S, S), output ``features``), and
    beside it ``<path>.json``: model, split, input size, feature shape, the
    preprocessing spec, the deployment identity and the ONNX file's SHA-256, everything an edge
    device needs to run it without torch and to prove which head it is
    (``splitcodec.inference.edge.OnnxHead``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(1, 3, split.input_size, split.input_size)
    axes = {"image": {0: "batch"}, "features": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(split.head.eval(), (x,), str(path), input_names=["image"], output_names=["features"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    from ..identity import file_sha256

    desc = dict(head_description(split), onnx_sha256=file_sha256(path))
    Path(str(path) + ".json").write_text(json.dumps(desc, indent=2) + "\n")
    return path


def onnx_head_max_abs_error(split: SplitModel, path, images: torch.Tensor) -> float:
    """Largest |onnxruntime − torch| over the head's outputs for ``images`` (B, 3, S, S)."""
    import torch

    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["features"], {"image": images.numpy()})
    with torch.no_grad():
        ref = split.head(images).numpy()
    if out.shape != ref.shape:
        raise ValueError(f"ONNX output shape {out.shape} differs from torch's {ref.shape}")
    return float(abs(out - ref).max())
