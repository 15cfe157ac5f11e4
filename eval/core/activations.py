"""Datasets for the studies and the on-disk cache of head activations.

A dataset is named by a spec string:

* ``photos[:N]`` — N augmented crops of the photos shipped with scikit-image
  (default 96).  There are no labels: accuracy is *fidelity*, agreement with
  the uncompressed model's top-1 (and its top-1 inside the top-5).
* ``imagenet:ROOT[:LABELS]`` — ImageNet validation images (class folders, or a
  flat folder plus a ``filename label`` file); top-1/top-5.
* ``coco:IMAGES:ANNOTATIONS`` — COCO images and annotation json; mAP@0.5.

The head runs once per sample; its activations, the uncompressed model's
outputs, labels and image sizes are cached in chunks under
``cache_dir/<key>/`` (the key hashes model, split, weights, dataset and
sample range).  A run that is interrupted resumes from the chunks already on
disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.core.common import log

CHUNK = 32
CACHE_VERSION = 1


@dataclass
class DatasetSpec:
    kind: str  # photos | folder | imagenet | coco
    args: tuple
    limit: int | None = None

    @classmethod
    def parse(cls, text: str, limit: int | None = None) -> "DatasetSpec":
        parts = text.split(":")
        kind = parts[0]
        if kind == "photos":
            n = int(parts[1]) if len(parts) > 1 and parts[1] else 96
            return cls("photos", (n,), limit)
        if kind == "folder":
            path = text.partition(":")[2]
            if not path:
                raise ValueError("folder dataset needs a path: folder:PATH (any images below it, recursively)")
            return cls("folder", (path,), limit)
        if kind == "imagenet":
            if len(parts) < 2:
                raise ValueError("imagenet dataset needs a path: imagenet:ROOT[:LABELS_FILE]")
            return cls("imagenet", tuple(parts[1:3]), limit)
        if kind == "coco":
            if len(parts) != 3:
                raise ValueError("coco dataset needs images and annotations: coco:IMAGES_DIR:ANNOTATIONS_JSON")
            return cls("coco", tuple(parts[1:3]), limit)
        raise ValueError(f"unknown --dataset {text!r}: use photos[:N], folder:PATH, imagenet:ROOT[:LABELS] or "
                         "coco:IMAGES:ANN")

    def open(self):
        """(items, task_kind): items[i] -> (image, label or image_id); checks paths first."""
        from splitcodec.datasets import CocoDetection, ImageFolder, ImageNetVal, photo_crops

        if self.kind == "photos":
            crops = photo_crops(self.args[0], seed=0)
            items = [(img, -1) for _, img in crops]
            return items[: self.limit] if self.limit else items
        if self.kind == "folder":
            return ImageFolder(self.args[0], limit=self.limit)
        if self.kind == "imagenet":
            root, labels = self.args[0], (self.args[1] if len(self.args) > 1 else None)
            return ImageNetVal(root, labels_file=labels, limit=self.limit)
        return CocoDetection(self.args[0], self.args[1], limit=self.limit)

    def identity(self) -> dict:
        ident = {"kind": self.kind, "args": list(self.args), "limit": self.limit}
        for a in self.args:
            if isinstance(a, str) and os.path.exists(a):
                st = os.stat(a)
                ident.setdefault("stat", []).append([a, st.st_size, int(st.st_mtime)])
        return ident


class ActivationCache:
    """Head activations and float-model outputs of a dataset, computed once."""

    def __init__(self, split, dataset: DatasetSpec, weights, cache_dir, *, device: str = "cpu"):
        self.split, self.dataset, self.device = split, dataset, device
        key = json.dumps({"v": CACHE_VERSION, "model": split.name, "split": split.split,
                          "weights": split.identity.weights_fingerprint, "dataset": dataset.identity()}, sort_keys=True)
        self.key = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.dir = Path(cache_dir) / f"{split.name}-{split.split}-{self.key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "key.json").write_text(key)
        self.items = dataset.open()
        self.n = len(self.items)
        if self.n == 0:
            raise ValueError(f"dataset {dataset} has no samples")
        self.task = getattr(split, "task", "classification")
        self.detection_settings = None  # None: Darknet's COCO validation (splitcodec.models.yolo.COCO_EVAL)

    def chunk_path(self, c: int) -> Path:
        return self.dir / f"chunk{c:05d}.npz"

    @property
    def chunks(self) -> int:
        return (self.n + CHUNK - 1) // CHUNK

    def build(self, indices=None, progress: bool = True) -> None:
        """Compute every missing chunk (resumable: finished chunks are kept)."""
        import torch

        wanted = sorted({i // CHUNK for i in (indices if indices is not None else range(self.n))})
        todo = [c for c in wanted if not self.chunk_path(c).exists()]
        if not todo:
            return
        it = todo
        if progress:
            from tqdm import tqdm

            it = tqdm(todo, desc=f"head activations ({self.split.name} {self.split.split})", unit="chunk", file=os.sys.stderr)
        for c in it:
            lo, hi = c * CHUNK, min(self.n, (c + 1) * CHUNK)
            images, targets, sizes = [], [], []
            for i in range(lo, hi):
                img, target = self.items[i]
                arr = np.asarray(img.convert("RGB")) if hasattr(img, "convert") else np.asarray(img)
                images.append(arr)
                targets.append(target)
                sizes.append((arr.shape[1], arr.shape[0]))
            with torch.no_grad():
                x = torch.stack([self.split.preprocess(im) for im in images])
                feats = self.split.head(x)
                out = self.split.tail(feats)
            data = {"features": feats.numpy().astype(np.float32), "targets": np.array(targets, np.int64),
                    "sizes": np.array(sizes, np.int64), "index": np.arange(lo, hi)}
            if isinstance(out, list):  # detector: keep raw heads
                for k, h in enumerate(out):
                    data[f"head{k}"] = h.numpy()
            else:
                data["logits"] = out.numpy()
            tmp = self.chunk_path(c).with_suffix(".tmp.npz")
            np.savez(tmp, **data)
            os.replace(tmp, self.chunk_path(c))  # a chunk is either complete or absent

    def load(self, c: int) -> dict:
        with np.load(self.chunk_path(c)) as z:
            return {k: z[k] for k in z.files}

    def iter_chunks(self, indices=None):
        """Chunks restricted to ``indices`` (all when None)."""
        keep = None if indices is None else set(indices)
        for c in range(self.chunks):
            lo, hi = c * CHUNK, min(self.n, (c + 1) * CHUNK)
            if keep is not None and not any(i in keep for i in range(lo, hi)):
                continue
            d = self.load(c)
            if keep is not None:
                m = np.array([i in keep for i in d["index"]])
                d = {k: v[m] for k, v in d.items()}
            yield d

    def features(self, indices) -> np.ndarray:
        """Activations of the given samples (for quantizer design / calibration)."""
        return np.concatenate([d["features"] for d in self.iter_chunks(indices)])


def check_fidelity_weights(weights, allow_random: bool) -> None:
    """Fidelity measured on random weights says nothing about a deployment: refused unless asked for."""
    from splitcodec.identity import RANDOM_WEIGHTS

    if weights == RANDOM_WEIGHTS and not allow_random:
        raise ValueError("fidelity on random weights measures nothing: pass trained weights (--weights DEFAULT or "
                         "--weights PATH), or --allow-random-weights to measure it anyway")


def open_cache(model: str, split: str, weights, dataset: str, *, limit=None, cache_dir=".cache/splitcodec-eval",
               device="cpu", allow_random: bool = False):
    """Load the model, check the dataset, and return an ``ActivationCache`` (nothing computed yet).  Random
    weights (``weights="random"``) only with ``allow_random``."""
    from splitcodec import models

    spec = DatasetSpec.parse(dataset, limit)
    check_fidelity_weights(weights, allow_random)
    s = models.split_model(model, split, weights=weights)
    if spec.kind == "coco" and s.task != "detection":
        raise ValueError(f"{model} is a classifier; a COCO dataset needs a detector (yolov3)")
    if spec.kind in ("imagenet", "photos", "folder") and s.task == "detection":
        raise ValueError(f"{model} is a detector; evaluate it on a coco: dataset")
    log(f"{model} split {s.split} {tuple(s.feature_shape)}; dataset {dataset}")
    return ActivationCache(s, spec, weights, cache_dir, device=device)
