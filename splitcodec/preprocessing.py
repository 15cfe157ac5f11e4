"""Image preprocessing in PIL + NumPy only (no torch), so an edge device can run an
exported ONNX head without torch installed.  The torch models use the same
functions, so both runtimes see identical inputs.

A preprocessing is described by a JSON-able spec, stored with exported heads:

* ``{"kind": "imagenet", "size": 224, "resize": 256}`` — shorter side to
  ``resize`` (bicubic), centre crop ``size``, [0, 1], ImageNet mean/std;
* ``{"kind": "darknet", "size": 256}`` — Darknet's classifier crop
  (``center_crop_image``: the central square, then ``resize_image`` to size×size), [0, 1];
* ``{"kind": "letterbox", "size": 416}`` — Darknet's ``letterbox_image`` (aspect
  kept, integer sizes, ``resize_image``, grey 0.5 padding), [0, 1].

The two Darknet kinds reproduce Darknet's C arithmetic bit for bit by default
(``"resample": "darknet"``): pixels ``float32(v / 255)``, ``resize_image``'s two
passes, each interpolating between two neighbouring pixels in single precision
with no low-pass filter.  ``"resample": "pil"`` uses PIL's antialiased bilinear
resize instead (smoother when shrinking, not what Darknet computes).

Each returns a (3, S, S) float32 array.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "to_pil", "preprocess", "make_preprocess", "letterbox_array",
           "to_unit_range", "from_unit_range", "model_input_rgb",
           "letterbox_size", "darknet_resize", "darknet_center_crop"]

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


# --- Darknet's image arithmetic (src/image.c), vectorised ------------------------------------------

def letterbox_size(width: int, height: int, net_w: int, net_h: int | None = None) -> tuple[int, int]:
    """The resized size inside Darknet's letterbox: the axis with the smaller single-precision
    ratio takes the network size, the other ``(other * net) / side`` in integer arithmetic."""
    net_h = net_w if net_h is None else net_h
    if np.float32(net_w) / np.float32(width) < np.float32(net_h) / np.float32(height):
        return net_w, max(1, (height * net_w) // width)
    return max(1, (width * net_h) // height), net_h


def _resize_axis(a: np.ndarray, n: int, axis: int, last_from_edge: bool) -> np.ndarray:
    """One pass of ``resize_image`` along ``axis`` (float32 throughout, as the C code)."""
    m = a.shape[axis]
    one = np.float32(1)
    if m == 1 or n == 1:  # Darknet takes the edge pixel (n == 1 with m > 1 is undefined in C: take pixel 0)
        idx = np.full(n, m - 1 if (m == 1 or last_from_edge) else 0)
        return np.take(a, idx, axis=axis)
    scale = np.float32(m - 1) / np.float32(n - 1)
    s = np.arange(n, dtype=np.float32) * scale
    i = s.astype(np.int64)  # (int) truncation; s >= 0
    d = s - i.astype(np.float32)
    i1 = np.minimum(i + 1, m - 1)
    shape = [1] * a.ndim
    shape[axis] = n
    d = d.reshape(shape)
    lo, hi = np.take(a, i, axis=axis), np.take(a, i1, axis=axis)
    if last_from_edge:  # horizontal pass: column n-1 is the last input column, exactly
        out = (one - d) * lo + d * hi
        sl = [slice(None)] * a.ndim
        sl[axis] = n - 1
        out[tuple(sl)] = np.take(a, m - 1, axis=axis)
        return out
    # vertical pass: (1 - dy) * row iy, then + dy * row iy+1 except on the last output row
    out = (one - d) * lo
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(0, n - 1)
    out[tuple(sl)] = out[tuple(sl)] + (d * hi)[tuple(sl)]
    return out


def darknet_resize(chw: np.ndarray, width: int, height: int) -> np.ndarray:
    """Darknet's ``resize_image``: a (C, H, W) float32 image to (C, height, width), horizontal
    pass then vertical pass, each linear between two neighbours, in single precision."""
    a = np.asarray(chw, dtype=np.float32)
    part = _resize_axis(a, width, axis=2, last_from_edge=True)
    return _resize_axis(part, height, axis=1, last_from_edge=False).astype(np.float32, copy=False)


def _darknet_pixels(image) -> np.ndarray:
    """``load_image_color``: (3, H, W) float32, each byte v as float32(v / 255)."""
    return _chw(to_pil(image))


def darknet_center_crop(image, size: int, resample: str = "darknet") -> np.ndarray:
    """Darknet's classifier input (``center_crop_image``): the central min(W, H) square at the
    integer offset ((W - m) / 2, (H - m) / 2), resized to ``size``×``size``."""
    if resample == "pil":
        from PIL import Image

        return _chw(_center_crop(_resize_shorter(to_pil(image), size, Image.BILINEAR), size))
    a = _darknet_pixels(image)
    _, h, w = a.shape
    m = min(w, h)
    x0, y0 = (w - m) // 2, (h - m) // 2
    return darknet_resize(a[:, y0:y0 + m, x0:x0 + m], size, size)


def letterbox_array(image, size: int, resample: str = "darknet"):
    """Darknet's ``letterbox_image``: (3, size, size) float32 in [0, 1] and the placement
    ``(new_w, new_h, dx, dy)`` needed to map boxes back."""
    img = to_pil(image)
    w, h = img.size
    nw, nh = letterbox_size(w, h, size)
    dx, dy = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((3, size, size), 0.5, dtype=np.float32)
    if resample == "pil":
        from PIL import Image

        canvas[:, dy:dy + nh, dx:dx + nw] = _chw(img.resize((nw, nh), Image.BILINEAR))
    elif resample == "darknet":
        canvas[:, dy:dy + nh, dx:dx + nw] = darknet_resize(_chw(img), nw, nh)
    else:
        raise ValueError(f"unknown resample {resample!r}: 'darknet' or 'pil'")
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
        return darknet_center_crop(image, spec["size"], spec.get("resample", "darknet"))
    if kind == "letterbox":
        return letterbox_array(image, spec["size"], spec.get("resample", "darknet"))[0]
    raise ValueError(f"unknown preprocessing kind {kind!r}")


def to_unit_range(x: np.ndarray, spec: dict) -> np.ndarray:
    """A preprocessed (3, S, S) input back to [0, 1] pixel values (undoing normalisation)."""
    if spec["kind"] == "imagenet":
        return x * IMAGENET_STD[:, None, None] + IMAGENET_MEAN[:, None, None]
    return x


def from_unit_range(x01: np.ndarray, spec: dict) -> np.ndarray:
    """[0, 1] pixel values of the model's input size to what the model takes (inverse of ``to_unit_range``)."""
    x01 = np.asarray(x01, dtype=np.float32)
    if spec["kind"] == "imagenet":
        return (x01 - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    return x01


def model_input_rgb(image, spec: dict) -> np.ndarray:
    """The model input as an S×S×3 uint8 picture: what a cloud-only deployment would have to send."""
    x01 = to_unit_range(preprocess(image, spec), spec)
    return np.clip(np.rint(x01 * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def make_preprocess(spec: dict):
    """A function image -> (3, S, S) float32 array for ``spec``."""
    return lambda image: preprocess(image, spec)
