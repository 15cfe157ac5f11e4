import numpy as np
import pytest

from splitcodec.datasets import photo_crops
from splitcodec.preprocessing import letterbox_array, preprocess

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


def test_darknet_matches_torchvision():
    for _, img in photo_crops(10, seed=8):
        ref = F.to_tensor(F.center_crop(F.resize(_pil(img), 256), 256)).numpy()
        np.testing.assert_array_equal(preprocess(img, {"kind": "darknet", "size": 256}), ref)


def test_letterbox_geometry_and_padding():
    img = np.full((100, 300, 3), 255, np.uint8)
    x, (nw, nh, dx, dy) = letterbox_array(img, 96)
    assert x.shape == (3, 96, 96) and (nw, nh, dx, dy) == (96, 32, 0, 32)
    assert x[:, :dy].max() == 0.5 and x[:, dy:dy + nh].min() == 1.0
    with pytest.raises(ValueError, match="unknown preprocessing"):
        preprocess(img, {"kind": "nope"})
