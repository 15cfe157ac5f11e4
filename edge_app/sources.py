"""Frame sources: image files, folders (recursively), video files, cameras, the shipped photos.

``check_inputs`` validates every input before any model loads (a missing path, an empty folder, a video that
will not open: one line, exit 2).  ``frames`` then yields ``(name, image)``, where an image that cannot be read
(not an image, truncated, larger than ``MAX_PIXELS``) is an :class:`UnreadableFrame`: that frame's error row,
and the run goes on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
MAX_PIXELS = 50_000_000  # an image larger than this (e.g. 8000x6250) is refused before it is decoded


class InputError(ValueError):
    """An input that cannot be used at all (exit 2)."""


@dataclass(frozen=True)
class UnreadableFrame:
    """An input frame that could not be read: reported as that frame's error, the run goes on."""

    reason: str


def _cv2():
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own complaints: the error is one line here
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    try:
        import cv2
    except ImportError:
        raise InputError("video files and cameras need OpenCV: pip install opencv-python-headless") from None
    return cv2


def check_inputs(args) -> None:
    """Every input exists and can be opened as what it looks like; ``InputError`` (one line) otherwise."""
    from splitcodec.datasets import IMAGE_SUFFIXES, image_files

    for item in args.inputs:
        path = Path(item)
        if item.isdigit() and not path.exists():
            _cv2()  # a camera is opened when the run reaches it
        elif path.is_dir():
            if not image_files(path):
                raise InputError(f"no images in folder {item} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        elif not path.exists():
            raise InputError(f"input not found: {item}")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            cap = _cv2().VideoCapture(str(path))
            opened = cap.isOpened()
            cap.release()
            if not opened:
                raise InputError(f"cannot open video {item} (not a video OpenCV can read)")


def video_fps(path) -> float | None:
    """The frame rate a video file declares (None when OpenCV cannot tell)."""
    cap = _cv2().VideoCapture(str(path))
    try:
        fps = float(cap.get(_cv2().CAP_PROP_FPS)) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return fps if fps > 0 else None


class Paced:
    """A file source released as a camera would: frame k at ``start + k / fps``.  A frame whose slot has passed
    by the time the edge asks for the next one (more than one interval late) is dropped by the clock — counted in
    ``skipped`` — never queued; a frame asked for early is waited for.  ``capture_time[name]`` is when the
    camera would have taken it (``time.monotonic``), what ``latency_ms`` counts from.  ``clock``/``sleep`` are
    injectable for tests."""

    def __init__(self, source, fps: float, *, clock=None, sleep=None):
        import time

        if not fps > 0:
            raise ValueError(f"--fps must be > 0, got {fps:g}")
        self.source, self.interval = source, 1.0 / fps
        self.clock, self.sleep = clock or time.monotonic, sleep or time.sleep
        self.skipped: list[str] = []
        self.capture_time: dict[str, float] = {}

    def __iter__(self):
        start = None
        for k, (name, image) in enumerate(self.source):
            now = self.clock()
            start = now if start is None else start
            due = start + k * self.interval
            if now > due + self.interval:  # the camera has already moved on to a later frame
                self.skipped.append(name)
                continue
            if now < due:
                self.sleep(due - now)
            self.capture_time[name] = due
            yield name, image


def read_image(path):
    """An H×W×3 uint8 RGB array, or :class:`UnreadableFrame` saying why not."""
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    return UnreadableFrame(f"{w}x{h} image is larger than the edge reads ({MAX_PIXELS} pixels)")
                return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        return UnreadableFrame("not an image file")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return UnreadableFrame(f"cannot decode: {str(e)[:120]}")


def frames(args):
    """(name, H×W×3 uint8 RGB or UnreadableFrame) for every input."""
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
                yield str(f), read_image(f)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video(str(path), path.name)
        else:
            yield str(path), read_image(path)


def _video(source, name):
    cap = _cv2().VideoCapture(source)
    if not cap.isOpened():
        raise InputError(f"cannot open video source {source!r}")
    i = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield f"{name}#{i}", bgr[..., ::-1].copy()
            i += 1
    finally:
        cap.release()
