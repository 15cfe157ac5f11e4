import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from splitcodec.datasets import CocoDetection, ImageNetVal  # noqa: E402


def _img(path, value=0):
    Image.fromarray(np.full((8, 10, 3), value, np.uint8)).save(path)


def test_imagenet_class_folders(tmp_path):
    for wnid, n in [("n02", 2), ("n01", 3)]:
        (tmp_path / wnid).mkdir()
        for i in range(n):
            _img(tmp_path / wnid / f"{i}.JPEG")
    ds = ImageNetVal(tmp_path)
    assert ds.classes == ["n01", "n02"] and len(ds) == 5
    assert [label for _, label in ds.samples] == [0, 0, 0, 1, 1]
    img, label = ds[4]
    assert img.size == (10, 8) and label == 1
    assert len(ImageNetVal(tmp_path, limit=2)) == 2


def test_imagenet_flat_with_labels(tmp_path):
    for i in range(3):
        _img(tmp_path / f"ILSVRC2012_val_{i:08d}.JPEG", i)
    labels = tmp_path / "val.txt"
    labels.write_text("ILSVRC2012_val_00000002.JPEG 7\nILSVRC2012_val_00000000.JPEG 3\nILSVRC2012_val_00000001.JPEG 0\n")
    ds = ImageNetVal(tmp_path, labels_file=labels, preprocess=lambda im: np.asarray(im)[0, 0, 0])
    assert [ds[i] for i in range(3)] == [(0, 3), (1, 0), (2, 7)]


def test_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageNetVal(tmp_path / "nope")
    _img(tmp_path / "a.JPEG")
    with pytest.raises(FileNotFoundError, match="labels_file"):
        ImageNetVal(tmp_path)
    (tmp_path / "val.txt").write_text("a.JPEG 1\nb.JPEG 2\n")
    with pytest.raises(FileNotFoundError, match="1 image"):
        ImageNetVal(tmp_path, labels_file=tmp_path / "val.txt")
    (tmp_path / "bad.txt").write_text("a.JPEG one\n")
    with pytest.raises(ValueError, match="filename label"):
        ImageNetVal(tmp_path, labels_file=tmp_path / "bad.txt")


def _coco(tmp_path, files=("1.jpg", "2.jpg")):
    (tmp_path / "val").mkdir()
    for f in files:
        _img(tmp_path / "val" / f)
    ann = {"images": [{"id": 1, "file_name": "1.jpg", "width": 10, "height": 8},
                      {"id": 2, "file_name": "2.jpg", "width": 10, "height": 8}],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3], "area": 9, "iscrowd": 0}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    return tmp_path / "val", tmp_path / "ann.json"


def test_coco_dataset(tmp_path):
    images, ann = _coco(tmp_path)
    ds = CocoDetection(images, ann)
    assert len(ds) == 2
    img, image_id = ds[1]
    assert image_id == 2 and img.size == (10, 8)


def test_coco_mismatch_is_reported_up_front(tmp_path):
    images, ann = _coco(tmp_path, files=("1.jpg",))
    with pytest.raises(FileNotFoundError, match="do not match"):
        CocoDetection(images, ann)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        CocoDetection(images, tmp_path / "none.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a COCO annotation file"):
        CocoDetection(images, tmp_path / "broken.json")
