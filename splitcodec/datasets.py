"""Datasets: the real photos shipped inside scikit-image (usable offline)."""

from __future__ import annotations

import numpy as np

__all__ = ["PHOTO_NAMES", "IMAGE_SUFFIXES", "shipped_photos", "photo_crops", "image_files", "ImageFolder",
           "ImageNetVal", "CocoDetection"]

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


IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # compared in lower case
IMAGE_EXTENSIONS = IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES)


def image_files(folder) -> list:
    """Every image file below ``folder`` (recursively, by suffix in any case), sorted by path."""
    from pathlib import Path

    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _open_rgb(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


class _LabelledFiles:
    """Items ``(preprocess(image), label)`` read on demand from ``self.samples``, a list of ``(path, label)``."""

    samples: list
    preprocess = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        img = _open_rgb(path)
        return (self.preprocess(img) if self.preprocess else img), label


class ImageFolder(_LabelledFiles):
    """A user's own images, unlabelled: every image below ``root``, recursively, sorted by path.  Items are
    ``(image, -1)``: fidelity against the float model (agreement, KL) needs no labels."""

    def __init__(self, root, limit: int | None = None):
        from pathlib import Path

        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        files = image_files(self.root)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {self.root}")
        self.samples = [(f, -1) for f in (files[:limit] if limit else files)]


class ImageNetVal(_LabelledFiles):
    """ImageNet-style validation set in either usual layout:

    * class sub-folders (``root/n01440764/*.JPEG``): labels are the sorted folder
      order, which is torchvision's class index when all 1000 folders are present;
    * a flat folder of images plus ``labels_file`` with lines ``filename label``
      (0-based class index, as in Caffe's ``val.txt``).

    Items are ``(preprocess(image), label)``; ``limit`` keeps the first N (sorted by file name).
    """

    def __init__(self, root, labels_file=None, preprocess=None, limit: int | None = None):
        from pathlib import Path

        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageNet folder not found: {self.root}")
        self.preprocess = preprocess
        subdirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        samples: list[tuple] = []
        if subdirs and labels_file is None:
            self.classes = [d.name for d in subdirs]
            for label, d in enumerate(subdirs):
                samples += [(p, label) for p in sorted(d.iterdir()) if p.suffix in IMAGE_EXTENSIONS]
        else:
            if labels_file is None:
                raise FileNotFoundError(
                    f"{self.root} has no class sub-folders; pass labels_file with lines 'filename label'")
            lf = Path(labels_file)
            if not lf.exists():
                raise FileNotFoundError(f"labels file not found: {lf}")
            self.classes = None
            missing = []
            for n, line in enumerate(lf.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                    raise ValueError(f"{lf}:{n}: expected 'filename label', got {line!r}")
                p = self.root / parts[0]
                if not p.exists():
                    missing.append(parts[0])
                samples.append((p, int(parts[1])))
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} image(s) listed in {lf} are not in {self.root}, e.g. {missing[:3]}")
            samples.sort(key=lambda s: s[0].name)
        if not samples:
            raise FileNotFoundError(f"no images found under {self.root}")
        self.samples = samples[:limit] if limit else samples


class CocoDetection:
    """COCO images plus their annotation json (e.g. val2017 + ``instances_val2017.json``).

    Items are ``(PIL image, image_id)``.  Missing folders, a missing or unreadable
    annotation file, and images the annotations list but the folder lacks are
    reported before any work starts.
    """

    def __init__(self, images_dir, ann_file, limit: int | None = None):
        import contextlib
        import io
        from pathlib import Path

        from pycocotools.coco import COCO

        self.images_dir, ann = Path(images_dir), Path(ann_file)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {self.images_dir}")
        if not ann.exists():
            raise FileNotFoundError(f"COCO annotation file not found: {ann}")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO(str(ann))
        except Exception as e:  # json errors, wrong structure
            raise ValueError(f"{ann} is not a COCO annotation file: {e}") from e
        ids = sorted(self.coco.getImgIds())
        self.ids = ids[:limit] if limit else ids
        missing = [self.coco.imgs[i]["file_name"] for i in self.ids
                   if not (self.images_dir / self.coco.imgs[i]["file_name"]).exists()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(self.ids)} images in {ann.name} are missing from {self.images_dir} "
                f"(e.g. {missing[:3]}): annotation file and image folder do not match")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        info = self.coco.imgs[self.ids[i]]
        return _open_rgb(self.images_dir / info["file_name"]), self.ids[i]
