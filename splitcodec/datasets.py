"""Datasets: the real photos shipped inside scikit-image (usable offline)."""

from __future__ import annotations

import numpy as np

__all__ = ["PHOTO_NAMES", "shipped_photos", "photo_crops"]

# colour photographs packaged in the scikit-image wheel (no download needed)
PHOTO_NAMES = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field",
               "immunohistochemistry", "retina", "motorcycle")


def _load(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def shipped_photos(names=PHOTO_NAMES) -> list[tuple[str, np.ndarray]]:
    """(name, H×W×3 uint8) for each shipped photo."""
    return [(n, np.ascontiguousarray(_load(n)[..., :3])) for n in names]


def photo_crops(count: int, *, seed: int = 0, min_frac: float = 0.6, names=PHOTO_NAMES) -> list[tuple[str, np.ndarray]]:
    """``count`` deterministic augmentations (random crops of 60-100 % side, flips) of the photos."""
    rng = np.random.default_rng(seed)
    photos = shipped_photos(names)
    out = []
    for i in range(count):
        name, img = photos[i % len(photos)]
        if i < len(photos):
            out.append((name, img))
            continue
        h, w = img.shape[:2]
        f = rng.uniform(min_frac, 1.0)
        ch, cw = int(h * f), int(w * f)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append((f"{name}#{i}", np.ascontiguousarray(crop)))
    return out
