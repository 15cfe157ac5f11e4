import json

import numpy as np
import pytest

from splitcodec.metrics import agreement, coco_map, topk_accuracy, topk_correct


def test_topk():
    scores = np.array([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3],
                       [0.9, 0.1, 0.2, 0.3, 0.4, 0.5]])
    acc = topk_accuracy(scores, [1, 4], ks=(1, 2, 5))
    assert acc == {"top1": 0.0, "top2": 0.5, "top5": 1.0}
    assert topk_correct(scores, [3, 0], ks=(1,))[1].tolist() == [True, True]
    with pytest.raises(ValueError):
        topk_accuracy(scores, [1])


def test_agreement():
    assert agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75


def _coco_gt(tmp_path):
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
                   {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 50, 30, 30], "area": 900, "iscrowd": 0},
        ],
    }
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(gt))
    return p


def test_coco_map_hand_computed(tmp_path):
    gt = _coco_gt(tmp_path)
    res = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},  # TP
        {"image_id": 1, "category_id": 1, "bbox": [70, 70, 10, 10], "score": 0.8},  # FP
        {"image_id": 2, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.7},  # TP
    ]
    # ranked: P/R = 1/0.5, 0.5/0.5, 0.667/1.0 -> interpolated precision 1.0 for recall <= 0.5,
    # 2/3 above; COCO samples 101 recall points: 51 of them <= 0.5.
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    m = coco_map(gt, res)
    assert m["mAP50"] == pytest.approx(expected, abs=1e-6)
    assert m["images"] == 2


def test_coco_map_perfect_and_empty(tmp_path):
    gt = _coco_gt(tmp_path)
    res = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
           {"image_id": 2, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.8}]
    assert coco_map(gt, res)["mAP50"] == pytest.approx(1.0)
    assert coco_map(gt, [], image_ids=[1, 2])["mAP50"] == 0.0
