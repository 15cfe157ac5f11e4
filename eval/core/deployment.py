"""The demo's deployment, in one place: the explorer's ≥ 99 % operating-point file (``make explore`` writes it), the
split it was measured on (checked against its deployment identity), and what a cloud-only deployment would send at
the same fidelity.  The demo (``demo-system``), the system benchmark (``bench-system``) and the camera study
(``video``) all start here, so none of them can run another point than the file's.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from eval.core.runner import UsageError

REPO = Path(__file__).resolve().parents[2]
DEMO_QUANTIZER = REPO / "docs" / "results" / "quantizer-explore-99.json"
JPEG_QUALITIES = tuple(range(10, 100, 5)) + (100,)


def demo_deployment(path: Path | None = None):
    """``(split model, QuantizerFile)`` of the demo's operating point: the file, its model and split with the
    weights it names, checked against the file's identity.  A missing or mismatched file is a ``UsageError``
    (one line naming the fix), never a fallback to another point."""
    from splitcodec import models
    from splitcodec.quantizer_file import check_file_identity, load_quantizer_file

    path = Path(path or DEMO_QUANTIZER)
    if not path.is_file():
        raise UsageError(f"the demo's operating point {path} is missing: restore it from git, or run `make explore`")
    qf = load_quantizer_file(path)
    if qf.identity is None:
        raise UsageError(f"{path} records no deployment identity: run `make explore` to re-create it")
    split = models.split_model(qf.identity.model, qf.identity.split, weights=qf.identity.weights)
    check_file_identity(qf, split.identity, mine="the model loaded here", fix="run `make explore` to re-create it")
    return split, qf


def describe(qf) -> str:
    """One line: which file, split and point, and what the explorer measured there."""
    m, i = qf.doc.get("metrics", {}), qf.identity
    fitted = qf.doc.get("fitted_on", {}).get("dataset", {})
    where = f"{fitted.get('kind', '?')}:{','.join(map(str, fitted.get('args', [])))}" if fitted else "?"
    return (f"{qf.path.name}: {i.model} split {i.split} {tuple(i.feature_shape)}, N = {qf.quantizer.levels}, clip "
            f"[{qf.quantizer.c_min:g}, {qf.quantizer.c_max:g}], weights {i.weights}@{i.weights_fingerprint[:8]}; "
            f"the explorer measured {m.get('bytes_per_frame', float('nan')):.0f} B/frame at agreement "
            f"{m.get('agreement', float('nan')):.3f}, KL {m.get('kl', float('nan')):.4f} on {where}")


def equal_fidelity_comparison(split, qf, images, *, cache_dir: str | None = ".cache/splitcodec-eval",
                              label: str = "photos") -> dict:
    """The codec at the file's point against the model input (what the head sees, as 8-bit RGB) coded as JPEG at
    the lowest quality whose top-1 agreement with the float model on ``images`` is at least the codec's and whose
    KL is no larger: what a cloud-only deployment would send at equal fidelity (the explorer's baseline).
    Cached by the deployment identity, the quantizer, the images' label and the package version."""
    import numpy as np
    import torch

    import splitcodec as sc
    from eval.core.evaluate import FIXED, fidelity_counts
    from eval.studies.explore import input_baselines

    key = hashlib.sha256(json.dumps([3, sc.__version__, split.identity.to_dict(), repr(qf.quantizer),
                                     qf.encoder.to_dict(), label, len(images), JPEG_QUALITIES]).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"equal-fidelity-{key}.json" if cache_dir else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    codec = sc.FeatureCodec(qf.quantizer, config=qf.encoder)
    with torch.no_grad():
        feats = split.head(torch.stack([split.preprocess(im) for im in images])).numpy()
        ref = split.tail(torch.from_numpy(feats)).numpy()
        streams = [codec.encode(f) for f in feats]
        dec = np.stack([sc.decode(s) for s in streams])
        mine = fidelity_counts(split.tail(torch.from_numpy(dec)).numpy(), ref)
    n = len(images)
    jpeg = [{"quality": r["quality"], "bytes": r["bytes_per_frame"], "agree": round(r["agreement"] * n), "kl": r["kl"]}
            for r in input_baselines(split, [(im, -1) for im in images], ref, {"jpeg": JPEG_QUALITIES})]
    codec_kl = math.ldexp(mine["kl"], -FIXED) / n
    match = next((j for j in jpeg if j["agree"] >= mine["agree1"] and j["kl"] <= codec_kl), None)
    doc = {"images": label, "photos": n, "split": split.split, "levels": qf.quantizer.levels,
           "clip": [qf.quantizer.c_min, qf.quantizer.c_max], "quantizer_file": qf.path.name,
           "codec_bytes": float(np.mean([len(s) for s in streams])), "codec_agree": mine["agree1"], "codec_kl": codec_kl,
           "float32_bytes": 4 * int(feats[0].size), "jpeg": jpeg, "jpeg_match": match}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    return doc
