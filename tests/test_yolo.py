import numpy as np
import pytest

torch = pytest.importorskip("torch")

from splitcodec.models.darknet import Section, Yolo  # noqa: E402
from splitcodec.models.yolo import (  # noqa: E402
    COCO80_TO_91, COCO_NAMES, Letterbox, decode_heads, letterbox, postprocess, to_coco_results,
)


def _yolo_layer(mask="0,1,2", classes=80):
    return Yolo(Section("yolo", {"mask": mask, "anchors": "10,13, 16,30, 33,23, 30,61, 62,45, 59,119, 116,90, 156,198, 373,326",
                                 "classes": str(classes)}))


def test_coco_id_mapping():
    assert len(COCO80_TO_91) == 80 and len(COCO_NAMES) == 80
    assert COCO80_TO_91[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13] and COCO80_TO_91[-1] == 90
    assert all(a < b for a, b in zip(COCO80_TO_91, COCO80_TO_91[1:]))
    assert not {12, 26, 29, 30, 45, 66, 68, 69, 71, 83} & set(COCO80_TO_91)
    assert COCO_NAMES[0] == "person" and COCO_NAMES[9] == "traffic light" and COCO_NAMES[79] == "toothbrush"


def test_letterbox_geometry_and_inverse():
    img = np.zeros((200, 400, 3), np.uint8)  # h=200, w=400
    x, geo = letterbox(img, 416)
    assert x.shape == (3, 416, 416)
    assert (geo.new_w, geo.new_h, geo.dx, geo.dy) == (416, 208, 0, 104)
    assert float(x[0, 0, 0]) == 0.5 and float(x[0, 200, 200]) == 0.0  # grey border, black image
    b = torch.tensor([[0.0, 104.0, 416.0, 312.0]])
    np.testing.assert_allclose(geo.to_original(b).numpy(), [[0, 0, 400, 200]], atol=1e-4)


def _head_with_one_object(h=13, w=13, cell=(4, 7), anchor=1, cls=17, logit=8.0):
    raw = torch.full((1, 3 * 85, h, w), -10.0)
    p = raw.view(1, 3, 85, h, w)
    y, x = cell
    p[0, anchor, 0:4, y, x] = 0.0  # sigmoid(0)=0.5 offsets, exp(0)=1 anchor size
    p[0, anchor, 4, y, x] = logit
    p[0, anchor, 5 + cls, y, x] = logit
    return raw


def test_decode_places_the_box_from_anchor_and_cell():
    layer = _yolo_layer("6,7,8")
    boxes, scores = decode_heads([_head_with_one_object()], [layer], 416)
    n = 1 * 13 * 13 + 4 * 13 + 7  # anchor 1, row 4, col 7
    cx, cy = (7 + 0.5) / 13 * 416, (4 + 0.5) / 13 * 416
    aw, ah = layer.anchors[1]
    np.testing.assert_allclose(boxes[0, n].numpy(), [cx - aw / 2, cy - ah / 2, cx + aw / 2, cy + ah / 2], rtol=1e-5)
    assert scores[0, n].argmax() == 17 and scores[0, n, 17] > 0.99


def test_postprocess_thresholds_nms_and_coco_json():
    layer = _yolo_layer("6,7,8")
    raw = _head_with_one_object()
    # a duplicate of the same object in the next anchor (same class, overlapping) and a different class
    p = raw.view(1, 3, 85, 13, 13)
    p[0, 2, 0:2, 4, 7] = 0.0
    (w1, h1), (w2, h2) = layer.anchors[1], layer.anchors[2]
    p[0, 2, 2:4, 4, 7] = torch.log(torch.tensor([w1 / w2, h1 / h2]))  # anchor 2 resized to anchor 1's box
    p[0, 2, 4, 4, 7] = 6.0
    p[0, 2, 5 + 17, 4, 7] = 6.0
    p[0, 0, 0:4, 4, 7] = 0.0
    p[0, 0, 4, 4, 7] = 8.0
    p[0, 0, 5 + 3, 4, 7] = 8.0
    geo = Letterbox(416, 416, 416, 416, 416)
    (dets,) = postprocess([raw], [layer], [geo], conf_thresh=0.5)
    assert sorted(dets.labels.tolist()) == [3, 17]  # duplicate suppressed, other class kept
    recs = to_coco_results(dets, image_id=42)
    assert {r["category_id"] for r in recs} == {COCO80_TO_91[3], COCO80_TO_91[17]}
    r = next(r for r in recs if r["category_id"] == COCO80_TO_91[17])
    assert r["image_id"] == 42 and len(r["bbox"]) == 4
    assert r["bbox"][2] == pytest.approx(w1, abs=0.01) and r["bbox"][3] == pytest.approx(h1, abs=0.01)


def test_detect_end_to_end_random_model():
    from splitcodec import models
    from splitcodec.models.yolo import detect

    torch.manual_seed(0)
    net = models.get_model("yolov3", weights="random")
    img = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    (dets,) = detect(net, [img], net=128, conf_thresh=0.01)
    # a random network detects noise; what matters is the format and the coordinate frame
    assert len(dets) > 0, "the threshold must let some detections through, or nothing below is checked"
    assert dets.boxes.shape[1] == 4 and len(dets) == dets.labels.numel() <= 100
    assert float(dets.boxes[:, 0::2].min()) >= 0 and float(dets.boxes[:, 1::2].min()) >= 0
    assert float(dets.boxes[:, 2].max()) <= 90 and float(dets.boxes[:, 3].max()) <= 120


def _many_objects_head(n_cells=13, classes=(0, 1, 2)):
    """Every cell of one anchor holds a confident, non-overlapping box for each class in ``classes``."""
    raw = torch.full((1, 3 * 85, n_cells, n_cells), -10.0)
    p = raw.view(1, 3, 85, n_cells, n_cells)
    p[0, 0, 0:4] = 0.0
    p[0, 0, 2:4] = -1.5  # boxes smaller than a cell: no overlap between cells
    p[0, 0, 4] = 6.0
    for c in classes:
        p[0, 0, 5 + c] = 5.0 - c
    return raw


def test_coco_eval_setting_keeps_every_detection_deployment_caps_them():
    from splitcodec.models.yolo import COCO_EVAL, DEPLOYMENT

    layer = _yolo_layer("0,1,2")
    geo = Letterbox(416, 416, 416, 416, 416)
    raw = _many_objects_head()
    (full,) = postprocess([raw], [layer], [geo], **COCO_EVAL)
    assert len(full) == 13 * 13 * 3  # 507 detections, 169 per class: Darknet writes them all
    (capped,) = postprocess([raw], [layer], [geo], **DEPLOYMENT)
    assert len(capped) == 100 and set(capped.labels.tolist()) == {0}  # the best 100 overall: class 0 only
    (few,) = postprocess([raw], [layer], [geo], conf_thresh=0.005, pre_nms_topk=200)
    assert len(few) == 200


def test_box_mapping_exact_and_darknet():
    geo = Letterbox(400, 201, 416, 416, 209)  # padding 416 - 209 = 207 is odd: offset 103 vs 103.5
    b = torch.tensor([[10.0, 110.0, 20.0, 120.0]])
    s = 201 / 209
    np.testing.assert_allclose(geo.to_original(b).numpy(), [[10 * 400 / 416, 7 * s, 20 * 400 / 416, 17 * s]],
                               rtol=1e-5)
    np.testing.assert_allclose(geo.to_original(b, "darknet").numpy(),
                               [[10 * 400 / 416, 6.5 * s, 20 * 400 / 416, 16.5 * s]], rtol=1e-5)
    with pytest.raises(ValueError, match="box mapping"):
        geo.to_original(b, "nope")


def test_cloud_tail_detects_with_and_without_original_size_in_one_batch():
    """A detector request without ``original_size`` is answered in the network's input frame; its
    batch-mates keep their own frames (it used to raise TypeError for the whole batch)."""
    from splitcodec import models
    from splitcodec.inference import CloudTail

    torch.manual_seed(0)
    split = models.split_model("yolov3", "paper", weights="random")
    tail = CloudTail(split)
    x = torch.randn(1, 3, split.input_size, split.input_size)
    with torch.no_grad():
        f = split.head(x)[0].numpy()
    net = split.input_size
    preds = tail.run([f, f, f], [(2 * net, net), None, (net // 2, net // 4)])
    assert len(preds) == 3
    boxes = [np.array([d.box for d in p.detections]).reshape(-1, 4) for p in preds]
    assert all(len(b) for b in boxes), "a random network detects noise: there must be boxes to check"
    # the same features: the boxes differ only by each request's frame
    assert boxes[1][:, 2].max() <= net and boxes[1][:, 3].max() <= net
    assert boxes[0][:, 2].max() > net  # the 2x wider frame of the first request
    assert boxes[2][:, 2].max() <= net // 2 and boxes[2][:, 3].max() <= net // 4
    assert len(tail.run([f], None)) == 1
