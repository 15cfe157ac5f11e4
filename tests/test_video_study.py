"""`python -m eval video` end to end on a small clip it writes itself, and the x264/x265 baseline."""

import csv
import json
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
av = pytest.importorskip("av")
pytest.importorskip("matplotlib")

from eval.baselines import video as vb  # noqa: E402
from eval.core.runner import main  # noqa: E402
import splitcodec as sc  # noqa: E402
from splitcodec.datasets import shipped_photos  # noqa: E402


def _pan(n=6, size=160):
    img = np.asarray(shipped_photos(("chelsea",))[0][1])
    return [np.ascontiguousarray(img[10:10 + size, 4 * i:4 * i + size]) for i in range(n)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A slow pan over a photo, written as an H.264 mp4 (what a camera recording is)."""
    path = tmp_path_factory.mktemp("video") / "pan.mp4"
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=10)
        st.width = st.height = 160
        st.pix_fmt = "yuv420p"
        st.options = {"crf": "12"}
        for i, f in enumerate(_pan()):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def test_video_study_rows_equal_fidelity_csv_plot(capsys, clip, tmp_path):
    out, csv_path, png = tmp_path / "v.json", tmp_path / "v.csv", tmp_path / "v.png"
    assert main(["video", "--video", str(clip), "--frames", "6", "--levels", "10", "--lambdas", "0.1",
                 "--crfs", "0,24", "--jpeg-qualities", "60", "--refresh-period", "4", "--output", str(out),
                 "--csv", str(csv_path), "--plot", str(png)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {**json.loads(out.read_text())}
    rows = doc["rows"]
    assert {r["method"] for r in rows} == {"intra", "temporal", "temporal-contexts", "temporal-state", "x264", "x265",
                                           "jpeg"}
    assert all(r["frames"] == 6 and r["video"] == "pan.mp4" for r in rows)
    at = {r["method"]: r for r in rows if r["setting"] == "quantizer-file"}
    assert at["intra"]["intra_frames"] == 6 and at["temporal"]["intra_frames"] == 2  # frames 0 and 4
    # the same indices either way (no RDO at the file's point): the same fidelity, fewer bytes
    assert at["temporal"]["kl"] == at["intra"]["kl"] and at["temporal"]["agreement"] == at["intra"]["agreement"]
    assert at["temporal"]["bytes_per_frame"] < 0.8 * at["intra"]["bytes_per_frame"]
    x264 = {r["crf"]: r for r in rows if r["method"] == "x264" and r["preset"] == "medium" and r["chroma"] == "4:4:4"}
    assert x264[0]["bytes_per_frame"] > x264[24]["bytes_per_frame"] and x264[0]["kl"] < x264[24]["kl"]
    assert doc["encoders"]["x264"].startswith("x264 - core") and doc["encoders"]["x265"].startswith("x265 (build")
    (clip_doc,) = doc["clips"]
    eq = clip_doc["equal_fidelity"]
    target = next(k for k in eq if "intra at" in k)
    assert eq[target]["best"]["intra"]["kl"] <= at["intra"]["kl"]
    assert eq[target]["best"]["temporal"]["bytes_per_frame"] <= at["temporal"]["bytes_per_frame"]
    ratio = eq[target]["ratios"]["temporal / intra"]
    assert ratio == eq[target]["best"]["temporal"]["bytes_per_frame"] / eq[target]["best"]["intra"]["bytes_per_frame"]
    # every quantizer also shifted so that 0 is a level, for intra and temporal alike; the ratio without them beside
    zero = [r for r in rows if r.get("zero_level")]
    settings = {m: {r["setting"] for r in zero if r["method"] == m} for m in ("intra", "temporal")}
    assert settings["intra"] == settings["temporal"] == {"zero-level", "zero-level λ=0.1", "N=10 zero-level",
                                                         "N=10 zero-level λ=0.1"}
    for r in zero:
        q = sc.UniformQuantizer(r["c_min"], r["c_max"], r["levels"])
        assert 0.0 in q.dequantize(np.arange(r["levels"], dtype=np.uint8)).tolist()
    plain = [r for r in rows if r["method"] in ("intra", "temporal") and not r.get("zero_level")]
    assert all(0.0 not in sc.UniformQuantizer(r["c_min"], r["c_max"], r["levels"]).dequantize(
        np.arange(r["levels"], dtype=np.uint8)).tolist() for r in plain)  # the demo's range has none
    no_zero = eq[target]["ratios"]["temporal / intra, no zero-level"]
    best_plain = {m: min((r for r in plain if r["method"] == m and r["kl"] <= at["intra"]["kl"]),
                         key=lambda r: (r["bytes_per_frame"], r["kl"])) for m in ("intra", "temporal")}
    assert no_zero == best_plain["temporal"]["bytes_per_frame"] / best_plain["intra"]["bytes_per_frame"]
    cands = clip_doc["context_candidates"]["payload_bytes_per_frame"]
    chosen = cands["clamp(R-k+1, 0, 3) (chosen)"]
    assert chosen["carried"] < cands["spatial (intra)"]["carried"]
    assert 0 < clip_doc["speed"]["encode_speed_ratio"] and 0 < clip_doc["speed"]["decode_speed_ratio"]
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and table[0]["method"] == "intra"
    assert png.stat().st_size > 10_000


def test_video_study_usage_errors(capsys, clip, tmp_path):
    assert main(["video", "--video", str(tmp_path / "none.mp4")]) == 2
    assert main(["video", "--video", str(clip), "--frames", "1"]) == 2
    assert main(["video", "--video", str(clip), "--baselines", "vp9"]) == 2
    assert "error:" in capsys.readouterr().err


def test_video_codecs_round_trip_the_frames():
    frames = _pan(5)
    for codec in vb.CODECS:
        full, _, _ = vb.code_video(frames, codec, 0, "medium", gop=4, chroma="4:4:4")
        lossless, stream, build = vb.code_video(frames, codec, 0, "medium", gop=4)
        coarse, small, _ = vb.code_video(frames, codec, 35, "veryfast/zerolatency", gop=4)
        assert len(lossless) == len(coarse) == 5 and lossless[0].shape == frames[0].shape
        err = lambda dec: np.mean([np.abs(a.astype(int) - b) for a, b in zip(dec, frames)])  # noqa: E731
        assert err(lossless) < 3 and err(lossless) < err(coarse)  # 4:2:0 costs a little even at CRF 0
        assert err(full) < err(lossless) and err(full) < 1  # 4:4:4 at CRF 0: only the RGB -> YUV rounding
        assert len(small) < len(stream) / 4 and codec in build


def test_read_frames_stops_at_the_limit(clip):
    frames, fps = vb.read_frames(clip, 4)
    assert len(frames) == 4 and frames[0].shape == (160, 160, 3) and fps == 10


def test_x264_with_a_vbv_holds_its_rate_frame_by_frame(clip):
    """The link benchmark's x264: one access unit per frame, and a 4-frame window at most the rate's bytes plus
    the 200 ms buffer (what maxrate + bufsize promise)."""
    frames, _ = vb.read_frames(clip, 6)
    frames = [np.ascontiguousarray(f) for f in frames] * 2
    rate = 40e3
    decoded, sizes, build = vb.code_video_vbv(frames, rate, 0.2, fps=10, gop=6)
    assert len(decoded) == len(sizes) == 12 and decoded[0].shape == frames[0].shape
    assert "x264" in build
    for i in range(len(sizes) - 4):
        assert sum(sizes[i:i + 4]) * 8 <= rate * 0.4 + rate * 0.2 + 2000  # 4 frames at 10 fps + the buffer
