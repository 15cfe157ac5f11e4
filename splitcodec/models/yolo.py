"""YOLOv3 inference around a Darknet network: letterbox, head decoding, NMS, COCO output."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["COCO80_TO_91", "COCO_NAMES", "Letterbox", "letterbox", "letterbox_geometry", "decode_heads", "Detections",
           "postprocess", "to_coco_results", "detect", "COCO_EVAL", "DEPLOYMENT"]

# Detection settings.  COCO_EVAL is what Darknet's `detector valid` writes for COCO (every class score above
# 0.005 after per-class NMS at 0.45, no cap: pycocotools then keeps the top 100 per image and category).
# DEPLOYMENT bounds the work and the answer for a server: 3000 candidates before NMS, 100 detections per image.
COCO_EVAL = {"conf_thresh": 0.005, "iou_thresh": 0.45, "max_dets": None, "pre_nms_topk": None}
DEPLOYMENT = {"conf_thresh": 0.25, "iou_thresh": 0.45, "max_dets": 100, "pre_nms_topk": 3000}

# COCO's 91-id category space has 11 unused ids; the 80 detection classes map onto the rest.
_UNUSED_COCO_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
COCO80_TO_91 = [i for i in range(1, 91) if i not in _UNUSED_COCO_IDS]

COCO_NAMES = tuple(n.replace("_", " ") for n in (
    "person bicycle car motorbike aeroplane bus train truck boat traffic_light fire_hydrant stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag "
    "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
    "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
    "hot_dog pizza donut cake chair sofa pottedplant bed diningtable toilet tvmonitor laptop mouse remote "
    "keyboard cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear "
    "hair_drier toothbrush"
).split())


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the square network input (to map boxes back)."""

    orig_w: int
    orig_h: int
    net: int
    new_w: int
    new_h: int

    @property
    def dx(self) -> int:
        return (self.net - self.new_w) // 2

    @property
    def dy(self) -> int:
        return (self.net - self.new_h) // 2

    def to_original(self, boxes: torch.Tensor, mapping: str = "exact") -> torch.Tensor:
        """xyxy boxes in network pixels → original image pixels, clipped to the image.

        ``mapping="exact"`` subtracts the integer offset the image was pasted at (geometrically
        exact); ``"darknet"`` subtracts Darknet's unrounded half padding ``(net - new) / 2``
        (``correct_yolo_boxes``), half a pixel apart when the padding is odd, for bit-faithful
        comparisons with Darknet's output."""
        s = torch.tensor([self.orig_w / self.new_w, self.orig_h / self.new_h] * 2, dtype=boxes.dtype)
        if mapping == "exact":
            off = torch.tensor([self.dx, self.dy] * 2, dtype=boxes.dtype)
        elif mapping == "darknet":
            off = torch.tensor([(self.net - self.new_w) / 2, (self.net - self.new_h) / 2] * 2, dtype=boxes.dtype)
        else:
            raise ValueError(f"unknown box mapping {mapping!r}: 'exact' or 'darknet'")
        out = (boxes - off) * s
        out[:, 0::2] = out[:, 0::2].clamp(0, self.orig_w)
        out[:, 1::2] = out[:, 1::2].clamp(0, self.orig_h)
        return out


def letterbox_geometry(width: int, height: int, net: int = 416) -> Letterbox:
    """Where an image of ``width``×``height`` lands inside the ``net``×``net`` input (Darknet's
    integer arithmetic: ``splitcodec.preprocessing.letterbox_size``)."""
    from ..preprocessing import letterbox_size

    return Letterbox(width, height, net, *letterbox_size(width, height, net))


def letterbox(image, net: int = 416, resample: str = "darknet") -> tuple[torch.Tensor, Letterbox]:
    """Darknet's letterbox: keep aspect ratio, fit in ``net``×``net``, pad with grey (0.5).
    Returns a (3, net, net) tensor in [0, 1] and the geometry."""
    from ..preprocessing import letterbox_array, to_pil

    img = to_pil(image)
    x, (nw, nh, _, _) = letterbox_array(img, net, resample)
    return torch.from_numpy(x), Letterbox(img.size[0], img.size[1], net, nw, nh)


def decode_heads(heads, yolo_layers, net: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw YOLO heads → (boxes xyxy in network pixels (B, N, 4), class scores obj·p(c) (B, N, C))."""
    all_boxes, all_scores = [], []
    for x, layer in zip(heads, yolo_layers):
        b, _, h, w = x.shape
        na, nc = len(layer.anchors), layer.classes
        p = x.view(b, na, 5 + nc, h, w).permute(0, 1, 3, 4, 2)  # (B, A, H, W, 5+C)
        gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
        anchors = torch.tensor(layer.anchors, dtype=x.dtype).view(1, na, 1, 1, 2)
        cx = (torch.sigmoid(p[..., 0]) + gx) / w * net
        cy = (torch.sigmoid(p[..., 1]) + gy) / h * net
        bw = torch.exp(p[..., 2]) * anchors[..., 0]
        bh = torch.exp(p[..., 3]) * anchors[..., 1]
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
        scores = torch.sigmoid(p[..., 4:5]) * torch.sigmoid(p[..., 5:])
        all_boxes.append(boxes.reshape(b, -1, 4))
        all_scores.append(scores.reshape(b, -1, nc))
    return torch.cat(all_boxes, 1), torch.cat(all_scores, 1)


@dataclass
class Detections:
    boxes: torch.Tensor  # (N, 4) xyxy, original image pixels
    scores: torch.Tensor  # (N,)
    labels: torch.Tensor  # (N,) 0..79

    def __len__(self) -> int:
        return int(self.scores.numel())


def postprocess(heads, yolo_layers, geometries, *, conf_thresh: float = 0.005, iou_thresh: float = 0.45,
                max_dets: int | None = None, pre_nms_topk: int | None = None,
                box_mapping: str = "exact") -> list[Detections]:
    """Decode, keep every (box, class) whose score objectness·p(class) exceeds ``conf_thresh``,
    per-class NMS, map boxes to the original images.

    The defaults are Darknet's COCO validation (``COCO_EVAL``): no cap on candidates or
    detections.  A server passes ``DEPLOYMENT``'s caps: at most ``pre_nms_topk`` candidates
    (the best scores) enter NMS, at most ``max_dets`` detections (the best) come out."""
    from torchvision.ops import batched_nms

    net = geometries[0].net
    boxes, scores = decode_heads(heads, yolo_layers, net)
    out = []
    for i, geo in enumerate(geometries):
        idx, cls = (scores[i] > conf_thresh).nonzero(as_tuple=True)
        b, s = boxes[i][idx], scores[i][idx, cls]
        if pre_nms_topk is not None and s.numel() > pre_nms_topk:  # bounds NMS work whatever the network outputs
            top = s.topk(pre_nms_topk).indices
            b, s, cls = b[top], s[top], cls[top]
        keep = batched_nms(b, s, cls, iou_thresh)
        if max_dets is not None:
            keep = keep[:max_dets]
        out.append(Detections(geo.to_original(b[keep], box_mapping), s[keep], cls[keep]))
    return out


def to_coco_results(dets: Detections, image_id: int) -> list[dict]:
    """COCO results-json records (``bbox`` as x, y, width, height; 91-space category ids)."""
    out = []
    for (x0, y0, x1, y1), s, c in zip(dets.boxes.tolist(), dets.scores.tolist(), dets.labels.tolist()):
        out.append({"image_id": int(image_id), "category_id": COCO80_TO_91[int(c)],
                    "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                    "score": round(float(s), 5)})
    return out


def detect(model, images, *, net: int = 416, conf_thresh: float = 0.25, iou_thresh: float = 0.45,
           max_dets: int | None = 100, pre_nms_topk: int | None = 3000) -> list[Detections]:
    """Whole-network YOLOv3 inference on a list of images (arrays or PIL images); the caps bound
    the work as ``DEPLOYMENT`` does."""
    batch, geos = zip(*(letterbox(im, net) for im in images))
    with torch.no_grad():
        heads = model(torch.stack(batch))
    layers = [model.layers[i] for i in model.yolo_layers]
    return postprocess(heads, layers, list(geos), conf_thresh=conf_thresh, iou_thresh=iou_thresh, max_dets=max_dets,
                       pre_nms_topk=pre_nms_topk)
