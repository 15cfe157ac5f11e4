import numpy as np
import pytest

torch = pytest.importorskip("torch")

from splitcodec import models  # noqa: E402
from splitcodec.datasets import PHOTO_NAMES, photo_crops, shipped_photos  # noqa: E402


@pytest.fixture(scope="module")
def lite0():
    return models.get_model("efficientnet_lite0", weights="DEFAULT")


def test_registry():
    assert "efficientnet_lite0" in models.list_models()
    with pytest.raises(KeyError, match="available"):
        models.get_model("nope")


def test_real_predictions_on_shipped_photos(lite0):
    pre = models.imagenet_preprocess()
    photos = dict(shipped_photos(("chelsea", "coffee")))
    x = torch.stack([pre(photos["chelsea"]), pre(photos["coffee"])])
    with torch.no_grad():
        top1 = lite0(x).argmax(1).tolist()
    assert top1 == [285, 967]  # Egyptian cat, espresso
    names = models.imagenet_categories()
    assert names[285] == "Egyptian cat" and names[967] == "espresso"


def test_tail_of_head_equals_model_for_every_split(lite0):
    pre = models.imagenet_preprocess()
    x = pre(shipped_photos(("rocket",))[0][1])[None]
    with torch.no_grad():
        full = lite0(x)
        h = x
        for k, (name, unit) in enumerate(list(lite0.units.items())[:-1]):
            h = unit(h)
            assert torch.equal(lite0.run_units(h, k + 1), full), name


def test_split_model_api_and_paper_split():
    s = models.split_model("efficientnet_lite0", weights="random")
    assert s.split == "blocks.11.expand" and s.feature_shape == (672, 14, 14) and s.input_size == 224
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(s.tail(s.head(x)), s.model(x))
    shapes = dict(models.list_splits("efficientnet_lite0"))
    assert shapes["blocks.11.expand"] == (672, 14, 14)
    assert shapes["blocks.3.expand"] == (144, 56, 56)
    assert "blocks.12.expand" not in shapes  # residual blocks are not split inside


def test_unknown_split_lists_valid_ones():
    with pytest.raises(KeyError, match="blocks.11.expand"):
        models.split_model("efficientnet_lite0", split="blocks.99", weights="random")


def test_mismatched_weights_file_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, p)
    with pytest.raises(ValueError, match="does not match EfficientNet-Lite0"):
        models.get_model("efficientnet_lite0", weights=p)


def test_photos_and_crops_are_deterministic():
    photos = shipped_photos()
    assert [n for n, _ in photos] == list(PHOTO_NAMES)
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for _, im in photos)
    a, b = photo_crops(12, seed=3), photo_crops(12, seed=3)
    assert [n for n, _ in a] == [n for n, _ in b]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))


def test_torchvision_weights_enum_from_hub_cache(tmp_path, monkeypatch):
    from torchvision.models import ResNet50_Weights
    from torchvision.models import resnet50 as tv

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="torch hub cache"):
        models.get_model("resnet50", weights="IMAGENET1K_V1")
    ref = tv(weights=None)
    with torch.no_grad():
        ref.fc.bias.fill_(0.25)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref.state_dict(), cache / ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    m = models.get_model("resnet50", weights=ResNet50_Weights.IMAGENET1K_V1)
    assert torch.equal(m.model.fc.bias, ref.fc.bias)
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="do not match"):
        models.get_model("resnet50", weights=bad)


def test_registry_operating_point_is_the_measured_one():
    """EfficientNet-Lite0's default point is the one the operating-point study chose (its committed JSON)."""
    import json
    from pathlib import Path

    from eval.studies.operating_point import registry_entry
    from splitcodec.models import OPERATING_POINTS, default_operating_point

    doc = json.loads((Path(__file__).parent.parent / "docs/results/operating_point.json").read_text())
    packaged = json.loads(OPERATING_POINTS.read_text())[doc["model"]]
    assert packaged == registry_entry(doc["split"], doc["chosen"])
    assert default_operating_point(doc["model"]) == (doc["chosen"]["levels"], tuple(doc["chosen"]["clip"]))


def test_operating_point_only_at_the_paper_split(monkeypatch):
    from splitcodec import models

    monkeypatch.setattr(models, "_operating_points", lambda: {"vgg16": {"split": "features.3", "levels": 8,
                                                                        "clip": [0, 1], "source": "t"}})
    assert models.default_operating_point("vgg16") is None  # recorded for another split than the paper's
    assert models.default_operating_point("resnet50") is None
