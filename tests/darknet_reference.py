"""Darknet's image arithmetic transcribed loop by loop from its published C code (src/image.c:
load_image_stb, resize_image, letterbox_image, center_crop_image, crop_image), in float32
scalars.  Slow on purpose: an independent check of the vectorised splitcodec.preprocessing."""

import numpy as np

f32 = np.float32


def load(rgb: np.ndarray) -> np.ndarray:
    h, w, _ = rgb.shape
    im = np.zeros((3, h, w), np.float32)
    for k in range(3):
        for j in range(h):
            for i in range(w):
                im[k, j, i] = f32(float(rgb[j, i, k]) / 255.0)  # (float)data / 255. in double, stored as float
    return im


def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    c_, ih, iw = im.shape
    resized = np.zeros((c_, h, w), np.float32)
    part = np.zeros((c_, ih, w), np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # w or h of 1: C divides by zero too (then unused)
        w_scale = f32(iw - 1) / f32(w - 1)
        h_scale = f32(ih - 1) / f32(h - 1)
    for k in range(c_):
        for r in range(ih):
            for c in range(w):
                if c == w - 1 or iw == 1:
                    val = im[k, r, iw - 1]
                else:
                    sx = f32(c) * w_scale
                    ix = int(sx)
                    dx = sx - f32(ix)
                    val = (f32(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
                part[k, r, c] = val
    for k in range(c_):
        for r in range(h):
            sy = f32(r) * h_scale
            iy = int(sy)
            dy = sy - f32(iy)
            for c in range(w):
                resized[k, r, c] = (f32(1) - dy) * part[k, iy, c]
            if r == h - 1 or ih == 1:
                continue
            for c in range(w):
                resized[k, r, c] = resized[k, r, c] + dy * part[k, iy + 1, c]
    return resized


def letterbox_size(iw: int, ih: int, w: int, h: int) -> tuple[int, int]:
    if f32(w) / f32(iw) < f32(h) / f32(ih):
        return w, (ih * w) // iw
    return (iw * h) // ih, h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    _, ih, iw = im.shape
    new_w, new_h = letterbox_size(iw, ih, w, h)
    resized = resize_image(im, new_w, new_h)
    boxed = np.full((3, h, w), 0.5, np.float32)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    boxed[:, dy:dy + new_h, dx:dx + new_w] = resized
    return boxed


def center_crop_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    _, ih, iw = im.shape
    m = iw if iw < ih else ih
    x0, y0 = (iw - m) // 2, (ih - m) // 2
    return resize_image(im[:, y0:y0 + m, x0:x0 + m].copy(), w, h)
