"""Image preprocessing in PIL + NumPy only (no torch), so an edge device can run an
exported ONNX head without torch installed.  The torch models use the same
functions, so both runtimes see identical inputs.

A preprocessing is described by a JSON-able spec, stored with exported heads:

* ``{"kind": "imagenet", "size": 224, "resize": 256}`` — shorter side to
  ``resize`` (bicubic), centre crop ``size``, [0, 1], ImageNet mean/std;
* ``{"kind": "darknet", "size": 256}`` — shorter side to ``size`` (bilinear),
  centre crop, [0, 1];
* ``{"kind": "letterbox", "size": 416}`` — Darknet's letterbox (aspect kept,
  bilinear, grey 0.5 padding), [0, 1].

Each returns a (3, S, S) float32 array.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "to_pil", "preprocess", "make_preprocess", "letterbox_array"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def to_pil(image):
    """An RGB PIL image from a PIL image or an H×W(×C) uint8 array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return Image.fromarray(a[..., :3].astype(np.uint8))


def _resize_shorter(img, size: int, resample):
    w, h = img.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    return img.resize((nw, nh), resample)


def _center_crop(img, size: int):
    w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _chw(img) -> np.ndarray:
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)


def letterbox_array(image, size: int):
    """Darknet letterbox: (3, size, size) float32 in [0, 1] and the placement
    ``(new_w, new_h, dx, dy)`` needed to map boxes back."""
    from PIL import Image

    img = to_pil(image)
    w, h = img.size
    scale = min(size / w, size / h)
    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
    dx, dy = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((3, size, size), 0.5, dtype=np.float32)
    canvas[:, dy:dy + nh, dx:dx + nw] = _chw(img.resize((nw, nh), Image.BILINEAR))
    return canvas, (nw, nh, dx, dy)


def preprocess(image, spec: dict) -> np.ndarray:
    """Apply a preprocessing spec (see the module docstring)."""
    from PIL import Image

    kind = spec["kind"]
    if kind == "imagenet":
        img = _center_crop(_resize_shorter(to_pil(image), spec.get("resize", 256), Image.BICUBIC), spec["size"])
        x = _chw(img)
        return (x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    if kind == "darknet":
        return _chw(_center_crop(_resize_shorter(to_pil(image), spec["size"], Image.BILINEAR), spec["size"]))
    if kind == "letterbox":
        return letterbox_array(image, spec["size"])[0]
    raise ValueError(f"unknown preprocessing kind {kind!r}")


def make_preprocess(spec: dict):
    """A function image -> (3, S, S) float32 array for ``spec``."""
    return lambda image: preprocess(image, spec)
