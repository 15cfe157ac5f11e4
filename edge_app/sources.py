"""Frame sources: image files, folders (recursively), video files, cameras, the shipped photos."""

from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def frames(args):
    """(name, H×W×3 uint8 RGB) for every input."""
    import numpy as np
    from PIL import Image

    if args.photos:
        from splitcodec.datasets import shipped_photos

        yield from shipped_photos()
    for item in args.inputs:
        path = Path(item)
        if item.isdigit() and not path.exists():
            yield from _video(int(item), f"camera{item}")
        elif path.is_dir():
            from splitcodec.datasets import image_files

            for f in image_files(path):
                yield str(f), np.asarray(Image.open(f).convert("RGB"))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video(str(path), path.name)
        elif path.exists():
            yield str(path), np.asarray(Image.open(path).convert("RGB"))
        else:
            raise FileNotFoundError(f"input not found: {item}")


def _video(source, name):
    try:
        import cv2
    except ImportError:
        raise SystemExit("video files and cameras need OpenCV: pip install opencv-python-headless") from None
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise SystemExit(f"cannot open video source {source!r}")
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        yield f"{name}#{i}", bgr[..., ::-1].copy()
        i += 1
    cap.release()
