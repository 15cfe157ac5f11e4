"""Channel sensitivity of the network behind the split: the weights of task-aware RDO."""

import numpy as np
import pytest
import torch

import splitcodec as sc


def _tail(gains, classes=5, seed=0):
    """A linear classifier over (C, 3, 3) features whose channel c is scaled by gains[c]."""
    torch.manual_seed(seed)
    c = len(gains)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(c * 9, classes))
    with torch.no_grad():
        net[1].weight.mul_(torch.tensor(np.repeat(gains, 9), dtype=torch.float32))
    return net


def test_weights_follow_how_much_each_channel_moves_the_output(rng):
    feats = rng.normal(size=(12, 3, 3, 3)).astype(np.float32)
    w = sc.sensitivity.channel_sensitivity(_tail([1.0, 0.1, 3.0]), feats, batch=5)
    assert w.shape == (3,) and w.mean() == pytest.approx(1.0)
    assert w[2] > w[0] > w[1]
    # for a linear tail the gradient scales with the gain: squared, the ratio is about gain²
    assert 3 < w[2] / w[0] < 30 and 30 < w[0] / w[1] < 300


def test_power_tempers_the_spread_and_ignored_channels_get_the_floor(rng):
    feats = rng.normal(size=(6, 3, 3, 3)).astype(np.float32)
    tail = _tail([1.0, 0.0, 2.0])
    full = sc.sensitivity.channel_sensitivity(tail, feats)
    half = sc.sensitivity.channel_sensitivity(tail, feats, power=0.5)
    flat = sc.sensitivity.channel_sensitivity(tail, feats, power=0.0)
    np.testing.assert_allclose(flat, 1.0)
    assert full[2] / full[0] == pytest.approx((half[2] / half[0]) ** 2, rel=1e-6)
    assert full[1] == pytest.approx(sc.sensitivity.FLOOR * full.mean(), rel=0.01) and full.min() > 0


def test_any_output_through_a_random_probe(rng):
    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.a, self.b = torch.nn.Conv2d(2, 4, 1), torch.nn.Conv2d(2, 3, 1)
            with torch.no_grad():
                self.a.weight[:, 1].zero_()
                self.b.weight[:, 1].mul_(0.01)

        def forward(self, x):
            return [self.a(x), self.b(x)]

    feats = rng.normal(size=(4, 2, 5, 5)).astype(np.float32)
    w = sc.sensitivity.channel_sensitivity(TwoHeads(), feats, task="output")
    assert w[0] > 100 * w[1]
    again = sc.sensitivity.channel_sensitivity(TwoHeads(), feats, task="output")
    np.testing.assert_array_equal(w, again)  # the probe is seeded


def test_the_tail_is_left_as_it_was(rng):
    tail = _tail([1.0, 1.0]).train()
    sc.sensitivity.channel_sensitivity(tail, rng.normal(size=(2, 2, 3, 3)).astype(np.float32))
    assert tail.training and all(p.grad is None for p in tail.parameters())


def test_refusals(rng):
    tail = _tail([1.0, 1.0])
    with pytest.raises(sc.QuantizerError, match=r"\(N, C, H, W\)"):
        sc.sensitivity.channel_sensitivity(tail, np.zeros((2, 3, 3), np.float32))
    with pytest.raises(sc.QuantizerError, match=r"\(N, C, H, W\)"):
        sc.sensitivity.channel_sensitivity(tail, np.zeros((0, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="task"):
        sc.sensitivity.channel_sensitivity(tail, np.ones((1, 2, 3, 3), np.float32), task="nope")
    with pytest.raises(ValueError, match="power"):
        sc.sensitivity.channel_sensitivity(tail, np.ones((1, 2, 3, 3), np.float32), power=-1)
    dead = _tail([0.0, 0.0])
    with pytest.raises(sc.QuantizerError, match="does not depend"):
        sc.sensitivity.channel_sensitivity(dead, np.ones((1, 2, 3, 3), np.float32))


def test_weights_plug_into_the_codec(rng):
    feats = np.abs(rng.normal(size=(3, 3, 3, 3))).astype(np.float32)
    w = sc.sensitivity.channel_sensitivity(_tail([1.0, 0.1, 3.0]), feats)
    q = sc.UniformQuantizer(0.0, 2.0, 8)
    data, idx = sc.FeatureCodec(q, rdo_lambda=0.2, channel_weights=w).encode(feats[0], return_indices=True)
    np.testing.assert_array_equal(sc.decode(data), q.dequantize(idx))
