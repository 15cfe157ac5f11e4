"""Side by side with NNCodec (MPEG NNC, DeepCABAC), the strongest public peer, on the same tensors.

NNCodec pins numpy < 2 and its own torch, so it never lives in this environment: it runs in its own
interpreter (``--nncodec-python``; ``python3 -m venv /tmp/nnc && /tmp/nnc/bin/pip install nncodec``),
as a subprocess on ``.npy`` files, with this file's ``driver`` part (numpy + nncodec only).

Per row (split, N) on the same activations: our bits with the plain quantizer (uniform N, MSE-optimal
clip) and its MSE against the unclipped tensors; our best configuration at no more MSE (N, clip and the
RDO λ searched, uniform levels and levels refined with the encoder in the loop, ``splitcodec.rd``);
NNCodec coding *our indices* losslessly; NNCodec's best real stream at
no more MSE over plain/dependent quantization × lambda_scale ∈ {0, 0.5, 1, 2}, its qp searched; and the
encode/decode speeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = [{"use_dq": dq, "lambda_scale": ls} for dq in (False, True) for ls in (0.0, 0.5, 1.0, 2.0)]


# --- the driver: runs inside NNCodec's interpreter ---------------------------------------------------

def _driver() -> None:  # pragma: no cover - runs under the NNCodec interpreter
    import os

    import numpy as np
    from nncodec import nnc

    job = json.loads(sys.stdin.read())
    tmp = tempfile.mkdtemp()
    out = []

    def code(arrays, **kw):
        n, sq, te, td = 0, 0.0, 0.0, 0.0
        for a in arrays:
            t = time.perf_counter()
            bs = nnc.compress({"t": a}, bitstream_path=os.path.join(tmp, "b.nnc"), return_bitstream=True,
                              verbose=False, **kw)
            te += time.perf_counter() - t
            t = time.perf_counter()
            y = nnc.decompress(bs)["t"]
            td += time.perf_counter() - t
            n += len(bs)
            sq += float(((y.astype(np.float64) - a) ** 2).sum())
        return n, sq, te, td

    for row in job["rows"]:
        xs = [np.load(p) for p in row["tensors"]]
        elements = sum(x.size for x in xs)
        res = {"row": row["id"]}
        if row.get("indices"):
            ints = [np.load(p).astype(np.int32) for p in row["indices"]]
            n, _, te, td = code(ints)
            res["lossless_indices_bits"] = 8 * n / elements
        best = None
        for cfg in CONFIGS:
            lo, hi, found = -80, 20, None  # MSE grows with qp: the largest qp at or under the target
            while lo <= hi:
                qp = (lo + hi) // 2
                n, sq, te, td = code(xs, qp=qp, **cfg)
                if sq / elements <= row["target_mse"]:
                    found, lo = (qp, n, sq, te, td), qp + 1
                else:
                    hi = qp - 1
            if found and (best is None or found[1] < best[1]):
                best = (*found, cfg)
        if best:
            qp, n, sq, te, td, cfg = best
            res.update({"best_bits": 8 * n / elements, "best_mse": sq / elements, "best_qp": qp, "best_config": cfg,
                        "encode_mel_s": elements / te / 1e6, "decode_mel_s": elements / td / 1e6})
        out.append(res)
        print(json.dumps(res), file=sys.stderr, flush=True)
    print(json.dumps(out))


# --- this side ---------------------------------------------------------------------------------------

def side_by_side(nncodec_python: str, groups: dict, levels=(2, 4, 8, 16), lambdas=(0.0, 0.05, 0.1, 0.2, 0.4, 0.8),
                 photos: int = 2) -> list[dict]:
    """Rows for ``groups`` ({name: [(photo, tensor)]}), NNCodec run through ``nncodec_python``."""
    import numpy as np

    import splitcodec as sc


    rows, jobs = [], []
    with tempfile.TemporaryDirectory() as d:
        for name, tensors in groups.items():
            xs = [t for _, t in tensors[:photos]]
            elements = sum(x.size for x in xs)
            points = sc.rd.rd_points(xs, levels=tuple(range(2, 17)), lambdas=lambdas)
            for n in levels:
                q = sc.UniformQuantizer(*sc.clip.calibrated_clip(np.concatenate([x.ravel() for x in xs]), n), n)
                codec = sc.FeatureCodec(q)
                t = time.perf_counter()
                streams = [codec.encode(x) for x in xs]
                enc = elements / (time.perf_counter() - t) / 1e6
                t = time.perf_counter()
                dec_x = [sc.decode(s) for s in streams]
                dec = elements / (time.perf_counter() - t) / 1e6
                bits = 8 * sum(map(len, streams)) / elements
                mse = sum(float(((y.astype(np.float64) - x) ** 2).sum()) for x, y in zip(xs, dec_x)) / elements
                best = sc.rd.best_point(points, target_mse=mse)
                rid = f"{name} N={n}"
                paths, idx_paths = [], []
                for k, x in enumerate(xs):
                    p = Path(d) / f"{len(rows)}_{k}.npy"
                    np.save(p, x)
                    paths.append(str(p))
                    ip = Path(d) / f"{len(rows)}_{k}_idx.npy"
                    np.save(ip, q.quantize(x))
                    idx_paths.append(str(ip))
                jobs.append({"id": rid, "tensors": paths, "indices": idx_paths, "target_mse": mse})
                rows.append({"row": rid, "group": name, "levels": n, "shape": list(xs[0].shape), "photos": len(xs),
                             "ours_plain_bits": bits, "ours_plain_mse": mse, "ours_best_bits": best["bits_per_element"],
                             "ours_best_config": {k: best[k] for k in ("kind", "levels", "clip", "rdo_lambda", "rdo_lookahead",
                                                                           "reconstruction")
                                                      if k in best},
                             "ours_encode_mel_s": enc, "ours_decode_mel_s": dec})
        r = subprocess.run([nncodec_python, str(Path(__file__).resolve()), "--driver"], input=json.dumps({"rows": jobs}),
                           capture_output=True, text=True, timeout=7200)
        if r.returncode != 0:
            raise RuntimeError(f"the NNCodec driver failed: {r.stderr[-2000:]}")
    peer = {p["row"]: p for p in json.loads(r.stdout.strip().splitlines()[-1])}
    for row in rows:
        p = peer[row["row"]]
        row.update({"nncodec_lossless_on_our_indices_bits": p.get("lossless_indices_bits"),
                    "nncodec_best_bits": p.get("best_bits"), "nncodec_best_mse": p.get("best_mse"),
                    "nncodec_best_config": p.get("best_config"), "nncodec_best_qp": p.get("best_qp"),
                    "nncodec_encode_mel_s": p.get("encode_mel_s"), "nncodec_decode_mel_s": p.get("decode_mel_s")})
        if row["nncodec_best_bits"]:
            row["ours_best_over_nncodec"] = row["ours_best_bits"] / row["nncodec_best_bits"]
            row["ours_plain_over_nncodec"] = row["ours_plain_bits"] / row["nncodec_best_bits"]
    return rows


def summary(rows) -> dict:
    r = [x for x in rows if x.get("ours_best_over_nncodec")]
    if not r:
        return {}
    best = [x["ours_best_over_nncodec"] for x in r]
    plain = [x["ours_plain_over_nncodec"] for x in r]
    lossless = [x["nncodec_lossless_on_our_indices_bits"] / x["ours_plain_bits"] for x in r]
    return {"rows": len(r), "ours_best_over_nncodec_mean": sum(best) / len(best), "ours_best_over_nncodec_max": max(best),
            "ours_plain_over_nncodec_mean": sum(plain) / len(plain), "ours_plain_over_nncodec_max": max(plain),
            "nncodec_lossless_over_ours_mean": sum(lossless) / len(lossless)}


def markdown(rows, s) -> str:
    lines = ["| tensor | N | ours plain b/e | ours best b/e (kind N, λ) | NNCodec lossless on our indices | NNCodec best b/e "
             "(dq, λ-scale) | ours best / NNCodec | enc M/s ours, NNCodec | dec M/s ours, NNCodec |",
             "|---|---|---|---|---|---|---|---|---|"]
    for x in rows:
        c, pc = x["ours_best_config"], x.get("nncodec_best_config") or {}
        lines.append(
            f"| {x['group']} | {x['levels']} | {x['ours_plain_bits']:.3f} | {x['ours_best_bits']:.3f} "
            f"({c.get('kind', 'uniform')} {c['levels']}, "
            f"{c['rdo_lambda']:g}) | {x['nncodec_lossless_on_our_indices_bits']:.3f} | "
            f"{x['nncodec_best_bits']:.3f} ({'DQ' if pc.get('use_dq') else 'plain'}, {pc.get('lambda_scale', 0):g}) | "
            f"{x['ours_best_over_nncodec']:.3f} | {x['ours_encode_mel_s']:.0f}, {x['nncodec_encode_mel_s']:.1f} | "
            f"{x['ours_decode_mel_s']:.0f}, {x['nncodec_decode_mel_s']:.1f} |")
    lines.append("")
    lines.append(f"Ours (best configuration at no more MSE) / NNCodec's best real stream: {s['ours_best_over_nncodec_mean']:.3f} "
                 f"on average, {s['ours_best_over_nncodec_max']:.3f} at worst (plain quantizer: "
                 f"{s['ours_plain_over_nncodec_mean']:.3f} / {s['ours_plain_over_nncodec_max']:.3f}); NNCodec coding our "
                 f"indices losslessly needs {s['nncodec_lossless_over_ours_mean']:.3f}× our bits on average.")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--driver" in sys.argv:
        _driver()
