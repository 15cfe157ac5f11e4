import numpy as np
import pytest

from splitcodec.datasets import photo_crops
from splitcodec.preprocessing import darknet_resize, letterbox_array, letterbox_size, preprocess

from . import darknet_reference

torch = pytest.importorskip("torch")
F = pytest.importorskip("torchvision.transforms.functional")


def _pil(img):
    from PIL import Image

    return Image.fromarray(img)


@pytest.mark.parametrize("size,resize", [(224, 256), (256, 293)])
def test_imagenet_matches_torchvision(size, resize):
    for _, img in photo_crops(10, seed=9):
        ref = F.normalize(F.to_tensor(F.center_crop(
            F.resize(_pil(img), resize, interpolation=F.InterpolationMode.BICUBIC), size)),
            [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).numpy()
        np.testing.assert_array_equal(preprocess(img, {"kind": "imagenet", "size": size, "resize": resize}), ref)


def test_darknet_pil_resample_matches_torchvision():
    for _, img in photo_crops(10, seed=8):
        ref = F.to_tensor(F.center_crop(F.resize(_pil(img), 256), 256)).numpy()
        np.testing.assert_array_equal(preprocess(img, {"kind": "darknet", "size": 256, "resample": "pil"}), ref)


# Darknet's arithmetic, checked against tests/darknet_reference.py (a loop-by-loop transcription of its C code)

@pytest.mark.parametrize("w,h", [(720, 480), (720, 576), (629, 480), (637, 425), (640, 480), (416, 416),
                                 (333, 999), (1920, 1080), (100, 10000)])
def test_letterbox_size_is_darknets_integer_arithmetic(w, h):
    assert letterbox_size(w, h, 416) == darknet_reference.letterbox_size(w, h, 416, 416)
    assert max(letterbox_size(w, h, 416)) == 416  # the float computation gave 415 for the first four


def test_letterbox_keeps_at_least_one_pixel():
    # Darknet would resize to a width of 0 (an empty image); we keep one pixel (documented deviation)
    assert letterbox_size(2, 1000, 416) == (1, 416)
    assert darknet_reference.letterbox_size(2, 1000, 416, 416) == (0, 416)


@pytest.mark.parametrize("w,h,net", [(61, 37, 32), (37, 61, 32), (13, 9, 40), (160, 120, 96), (97, 97, 64),
                                     (3, 50, 24), (50, 7, 16), (1, 5, 8)])
def test_letterbox_is_bit_exact_with_darknet(w, h, net):
    rgb = np.random.default_rng(w * 1000 + h).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    ref = darknet_reference.letterbox_image(darknet_reference.load(rgb), net, net)
    np.testing.assert_array_equal(preprocess(rgb, {"kind": "letterbox", "size": net}), ref)


@pytest.mark.parametrize("w,h,size", [(70, 50, 32), (50, 70, 32), (20, 16, 48), (33, 33, 31)])
def test_classifier_crop_is_bit_exact_with_darknet(w, h, size):
    rgb = np.random.default_rng(w + h).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    ref = darknet_reference.center_crop_image(darknet_reference.load(rgb), size, size)
    np.testing.assert_array_equal(preprocess(rgb, {"kind": "darknet", "size": size}), ref)


def test_darknet_resize_does_not_low_pass_filter():
    # a one-pixel checkerboard shrunk 2:1 keeps full contrast in Darknet (two-tap interpolation at
    # integer positions), where an antialiasing resize averages it to grey
    rgb = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    x = darknet_resize(np.asarray(rgb, np.float32).transpose(2, 0, 1) / 255, 32, 32)
    assert x.max() - x.min() > 0.9
    pil = preprocess(rgb, {"kind": "letterbox", "size": 32, "resample": "pil"})
    assert pil.max() - pil.min() < 0.2


def test_letterbox_geometry_and_padding():
    img = np.full((100, 300, 3), 255, np.uint8)
    x, (nw, nh, dx, dy) = letterbox_array(img, 96)
    assert x.shape == (3, 96, 96) and (nw, nh, dx, dy) == (96, 32, 0, 32)
    assert x[:, :dy].max() == 0.5 and x[:, dy:dy + nh].min() == 1.0
    with pytest.raises(ValueError, match="unknown preprocessing"):
        preprocess(img, {"kind": "nope"})
