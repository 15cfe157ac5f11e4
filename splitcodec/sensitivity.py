"""How much each channel of a split tensor matters to what the network behind the split outputs.

The weights steer rate-distortion optimised encoding towards the task
(``FeatureCodec(q, rdo_lambda=λ, channel_weights=w)``): the encoder then minimises
``w[c] · (x - x̂)² / Δ² + λ · bits``, so a channel the output hardly depends on is coded coarsely.

For a small error ε in the features the change of the tail's loss is, to second order,
``½ εᵀ F ε`` with F the Fisher information of the output distribution.  Its diagonal,
averaged over a channel's positions and over calibration samples, is the channel weight:

* classification: ``F ≈ E[g²]``, g the gradient of ``-log p(ŷ | x)`` with ŷ the tail's own top-1
  prediction (no labels needed);
* any other output (detection heads): the gradient of ``v · tail(x)`` for a fixed random unit-variance
  ``v``, so ``E[g²]`` is the diagonal of ``JᵀJ``, the output's squared-error sensitivity.

>>> import torch, numpy as np, splitcodec as sc
>>> tail = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 4))
>>> with torch.no_grad():
...     _ = tail[1].weight.mul_(torch.tensor([1.0] * 9 + [0.01] * 9))  # channel 1 barely matters
>>> w = sc.sensitivity.channel_sensitivity(tail, np.ones((5, 2, 3, 3), np.float32))
>>> bool(w[0] > 100 * w[1]), round(float(w.mean()), 6)
(True, 1.0)
"""

from __future__ import annotations

import numpy as np

from .errors import QuantizerError

__all__ = ["channel_sensitivity"]

FLOOR = 1e-3  # relative to the mean: every weight stays > 0 (the codec needs positive weights)


def channel_sensitivity(tail, features, *, task: str = "classification", batch: int = 8, power: float = 1.0,
                        seed: int = 0) -> np.ndarray:
    """Per-channel weights (mean 1) of the split ``features`` (N, C, H, W) for the torch module ``tail``.

    ``power`` tempers the spread (weights ∝ sensitivity ** power; 0 gives all ones); weights below
    ``FLOOR`` times the mean are raised to it.  The tail is run in eval mode on the CPU tensors given."""
    import torch

    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 4 or x.shape[0] == 0:
        raise QuantizerError(f"features must be a non-empty (N, C, H, W) batch, got shape {x.shape}")
    if task not in ("classification", "output"):
        raise ValueError("task must be 'classification' or 'output'")
    if not power >= 0:
        raise ValueError("power must be >= 0")
    was_training = tail.training
    tail.eval()
    total = np.zeros(x.shape[1], dtype=np.float64)
    gen = torch.Generator().manual_seed(seed)
    probe = None
    try:
        for start in range(0, x.shape[0], batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch])).requires_grad_(True)
            out = tail(xb)
            if task == "classification":
                logp = torch.log_softmax(out.reshape(out.shape[0], -1).double(), dim=1)
                loss = -logp.gather(1, logp.argmax(1, keepdim=True)).sum()
            else:
                outs = out if isinstance(out, (list, tuple)) else [out]
                if probe is None:
                    probe = [torch.randn(o.shape[1:], generator=gen, dtype=o.dtype) for o in outs]
                loss = sum((o * v).sum() for o, v in zip(outs, probe))
            (grad,) = torch.autograd.grad(loss, xb)
            total += (grad.double() ** 2).sum(dim=(0, 2, 3)).numpy()
    finally:
        tail.train(was_training)
    if not np.all(np.isfinite(total)) or total.max() <= 0:
        raise QuantizerError("the tail's output does not depend on these features (all gradients are zero)")
    w = (total / total.mean()) ** power
    w = np.maximum(w / w.mean(), FLOOR)
    return w / w.mean()
