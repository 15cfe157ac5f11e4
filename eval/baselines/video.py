"""The model input streamed as video: x264 (H.264) and x265 (HEVC) through PyAV, and per-frame JPEG.

PyAV's wheels bundle FFmpeg with libx264 and libx265 (x86_64 and aarch64), so nothing outside pip is needed;
``ffmpeg`` on PATH is not used.  Frames are the model's exact preprocessed input (H×W×3 uint8 RGB), converted
to 4:2:0 YUV as a camera stream is (or kept 4:4:4), coded as one elementary stream with a keyframe every ``gop`` frames, and
decoded back to RGB.  Bytes per frame = elementary-stream bytes / frames.
"""

from __future__ import annotations

import io
import re
from fractions import Fraction

import numpy as np

CODECS = {"x264": ("libx264", "h264"), "x265": ("libx265", "hevc")}
# live streaming (what a camera sends) and one slower preset for each codec
PRESETS = {"veryfast/zerolatency": {"preset": "veryfast", "tune": "zerolatency"},
           "medium": {"preset": "medium"}}
# 4:2:0 is what a camera streams; 4:4:4 (x264 High 4:4:4, x265 Main 4:4:4) keeps full colour, so the CRF sweep
# can reach near-lossless fidelity (4:2:0 costs fidelity even at CRF 0)
CHROMA = {"4:2:0": "yuv420p", "4:4:4": "yuv444p"}


class VideoCodecUnavailable(RuntimeError):
    """PyAV (pip install av) or its encoder is missing."""


def _av():
    try:
        import av
    except ImportError:
        raise VideoCodecUnavailable("the x264/x265 baselines need PyAV: pip install 'splitcodec[video]' "
                                    "(or pip install av)") from None
    return av


def encoder_build(codec: str, stream: bytes) -> str:
    """The encoder's own version string, as it writes it into the stream (x264 and x265 both put one in a
    user-data SEI of the first access unit), with PyAV's and libavcodec's versions."""
    av = _av()
    pattern = rb"x264 - core \d+( r\d+ [0-9a-f]+)?" if codec == "x264" else rb"x265 \(build \d+\) - [^:\s]+"
    m = re.search(pattern, stream[:4096])
    lib = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    return f"{m.group().decode() if m else codec + ' (version not found in the stream)'}; PyAV {av.__version__}, " \
           f"libavcodec {lib}"


def code_video(frames: list[np.ndarray], codec: str, crf: int, preset: str, *, gop: int = 64, fps: int = 30,
               chroma: str = "4:2:0"):
    """Encode H×W×3 uint8 frames as one ``codec`` stream ("x264" or "x265") at ``crf`` with the ``preset``
    settings (a key of PRESETS) in ``chroma`` (a key of CHROMA); returns (decoded frames, stream bytes,
    encoder build string)."""
    pix = CHROMA[chroma]
    av = _av()
    name, decoder = CODECS[codec]
    try:
        enc = av.CodecContext.create(name, "w")
    except Exception as e:  # noqa: BLE001 - PyAV raises its own error types for a missing encoder
        raise VideoCodecUnavailable(f"this PyAV build has no {name} encoder: {e}") from None
    h, w = frames[0].shape[:2]
    enc.width, enc.height, enc.pix_fmt = w, h, pix
    enc.time_base, enc.framerate, enc.gop_size = Fraction(1, fps), Fraction(fps), gop
    opts = {"crf": str(crf), **PRESETS[preset]}
    if codec == "x265":
        opts["x265-params"] = f"log-level=error:keyint={gop}:min-keyint={gop}"
    else:
        opts["x264-params"] = f"keyint={gop}:min-keyint={gop}"
    enc.options = opts
    packets = _encode(av, enc, frames, pix)
    out = _decode(av, decoder, packets, len(frames), codec)
    stream = b"".join(packets)
    return out, stream, encoder_build(codec, stream)


def _encode(av, enc, frames, pix: str) -> list[bytes]:
    """The packets of ``frames`` (H×W×3 uint8 RGB, converted to ``pix``) through the opened encoder."""
    packets = []
    for i, rgb in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format=pix)
        f.pts = i
        packets += [bytes(p) for p in enc.encode(f)]
    return packets + [bytes(p) for p in enc.encode(None)]


def _decode(av, decoder: str, packets: list[bytes], count: int, codec: str) -> list[np.ndarray]:
    """The frames of ``packets`` as RGB, checked to be ``count``."""
    dec = av.CodecContext.create(decoder, "r")
    out = []
    for p in packets:
        out += [f.to_ndarray(format="rgb24") for f in dec.decode(av.Packet(p))]
    out += [f.to_ndarray(format="rgb24") for f in dec.decode(None)]
    if len(out) != count:
        raise RuntimeError(f"{codec} returned {len(out)} frames for {count}")
    return out


def code_video_vbv(frames: list[np.ndarray], bitrate: float, bufsize_s: float, *, fps: int = 30, gop: int = 64):
    """x264 as a live stream over a link: average ``bitrate`` (bit/s), ``maxrate`` the same and a VBV buffer of
    ``bufsize_s`` seconds of it (veryfast, zerolatency, 4:2:0): what a camera's encoder does to hold a link.
    Returns (decoded frames, bytes of each frame's access unit, encoder build string)."""
    av = _av()
    enc = av.CodecContext.create("libx264", "w")
    h, w = frames[0].shape[:2]
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base, enc.framerate, enc.gop_size = Fraction(1, fps), Fraction(fps), gop
    enc.bit_rate = int(bitrate)
    enc.options = {**PRESETS["veryfast/zerolatency"], "maxrate": str(int(bitrate)),
                   "bufsize": str(int(bitrate * bufsize_s)), "x264-params": f"keyint={gop}:min-keyint={gop}"}
    packets = _encode(av, enc, frames, "yuv420p")
    if len(packets) != len(frames):  # zerolatency: one access unit per frame, no reordering
        raise RuntimeError(f"x264 returned {len(packets)} access units for {len(frames)} frames")
    out = _decode(av, "h264", packets, len(frames), "x264")
    return out, [len(p) for p in packets], encoder_build("x264", b"".join(packets))


def code_jpeg(rgb: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """One frame as a JPEG (Pillow/libjpeg, 4:2:0 as Pillow's default); (decoded frame, bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), buf.tell()


def read_frames(path: str, limit: int) -> tuple[list[np.ndarray], float]:
    """The first ``limit`` frames of a video file as H×W×3 uint8 RGB, and its frame rate."""
    av = _av()
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        fps = float(st.average_rate or 30)
        out = []
        for f in c.decode(st):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) >= limit:
                break
    return out, fps
