import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import splitcodec as sc
from splitcodec.binarization import codeword_lengths
from splitcodec.errors import QuantizerError
from splitcodec.quantization import ScalarQuantizer, UniformQuantizer, design_ecq, envelope_thresholds


# ---------------------------------------------------------------- uniform, eq. (1)

def test_eq1_values_and_clipping():
    q = sc.UniformQuantizer(-1.0, 3.0, 5)  # step 1
    x = np.array([-5, -1, -0.49, 0.2, 1.0, 2.6, 3.0, 7.0], dtype=np.float32)
    assert q.quantize(x).tolist() == [0, 0, 1, 1, 2, 4, 4, 4]
    assert q.reconstruction.tolist() == [-1, 0, 1, 2, 3]


def test_halfway_cases_round_away_from_zero():
    q = sc.UniformQuantizer(-1.0, 3.0, 5)
    ties = np.array([-0.5, 0.5, 1.5, 2.5], dtype=np.float32)  # t = 0.5, 1.5, 2.5, 3.5
    assert q.quantize(ties).tolist() == [1, 2, 3, 4]
    assert np.round(np.array([0.5, 2.5])).tolist() == [0.0, 2.0]  # what numpy would have done


def test_just_below_half_rounds_down():
    q = sc.UniformQuantizer(0.0, 1.0, 2)
    assert q.quantize(np.array([np.nextafter(np.float32(0.5), np.float32(0))])).tolist() == [0]
    assert q.quantize(np.array([0.5], dtype=np.float32)).tolist() == [1]


def test_infinities_clip_and_nan_is_an_error():
    q = sc.UniformQuantizer(0.0, 2.0, 4)
    assert q.quantize(np.array([-np.inf, np.inf])).tolist() == [0, 3]
    with pytest.raises(QuantizerError, match="NaN"):
        q.quantize(np.array([0.0, np.nan]))


@pytest.mark.parametrize("args", [(1.0, 1.0, 4), (2.0, 1.0, 4), (0.0, 1.0, 1), (0.0, 1.0, 257),
                                  (0.0, np.inf, 4), (np.nan, 1.0, 4), (0.0, 1.0, 2.5)])
def test_invalid_parameters(args):
    with pytest.raises(QuantizerError):
        sc.UniformQuantizer(*args)


def test_dequantize_rejects_out_of_range_indices():
    q = sc.UniformQuantizer(0.0, 1.0, 4)
    with pytest.raises(QuantizerError):
        q.dequantize(np.array([0, 4]))
    with pytest.raises(QuantizerError):
        q.dequantize(np.array([0.5]))


@pytest.mark.no_mutation
def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    q = sc.UniformQuantizer(0.0, 2.0, 3)
    t = torch.tensor([[0.1, 0.6, 1.9]], dtype=torch.float64)
    assert q.quantize(t).tolist() == [[0, 1, 2]]


@given(
    arrays(np.float32, st.integers(1, 200), elements=st.floats(-1e6, 1e6, width=32)),
    st.integers(2, 256),
    st.floats(-100, 100, width=32),
    st.floats(0.015625, 100, width=32),
)
def test_uniform_properties(x, levels, c_min, width):
    c_max = float(np.float32(c_min + width))
    if not c_max > c_min:
        return
    q = sc.UniformQuantizer(c_min, c_max, levels)
    idx = q.quantize(x)
    assert idx.dtype == np.uint8 and int(idx.max()) <= levels - 1
    # monotone
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(idx[order].astype(int)) >= 0)
    # eq. (1) against exact rational arithmetic
    from fractions import Fraction
    for v, i in zip(x[:20], idx[:20]):
        c = min(max(Fraction(float(v)), Fraction(q.c_min)), Fraction(q.c_max))
        t = (c - Fraction(q.c_min)) / (Fraction(q.c_max) - Fraction(q.c_min)) * (levels - 1)
        exact = math.floor(t + Fraction(1, 2))
        assert abs(int(i) - exact) <= (1 if abs(t - math.floor(t) - Fraction(1, 2)) < 1e-9 else 0)
    # thresholds agree with quantize (away from the thresholds themselves)
    rec = q.dequantize(idx)
    assert np.all((rec >= q.c_min) & (rec <= q.c_max))


# ---------------------------------------------------------------- ECQ and Lloyd-Max

def _brute_force_index(x, levels, rates, lam):
    cost = (x[:, None].astype(np.float64) - levels[None, :].astype(np.float64)) ** 2 + lam * rates[None, :]
    return np.argmin(cost, axis=1)


def test_lloyd_max_gaussian_matches_known_levels():
    x = np.random.default_rng(0).normal(size=400_000)
    q2 = sc.lloyd_max(x, 2, -8, 8)
    np.testing.assert_allclose(q2.reconstruction, [-math.sqrt(2 / math.pi), math.sqrt(2 / math.pi)], atol=0.01)
    q4 = sc.lloyd_max(x, 4, -8, 8)
    np.testing.assert_allclose(q4.reconstruction, [-1.510, -0.4528, 0.4528, 1.510], atol=0.02)
    np.testing.assert_allclose(q4.thresholds, [-0.9816, 0.0, 0.9816], atol=0.02)


def test_lloyd_max_on_uniform_data_is_uniform():
    x = np.random.default_rng(1).uniform(0, 1, 300_000)
    q = sc.lloyd_max(x, 5, 0, 1)
    np.testing.assert_allclose(q.reconstruction, (np.arange(5) + 0.5) / 5, atol=0.01)


@pytest.mark.parametrize("method", ["conventional", "modified"])
@pytest.mark.parametrize("levels", [2, 3, 4, 8])
def test_ecq_cost_non_increasing_and_thresholds_consistent(method, levels):
    rng = np.random.default_rng(levels)
    x = np.maximum(rng.normal(0.2, 1.0, 50_000), 0) ** 1.3
    q = sc.design_ecq(x, levels, lam=0.05, c_min=0.0, c_max=3.0, method=method)
    h = np.array(q.cost_history)
    assert np.all(np.diff(h) <= 1e-12 * h[0])
    # quantizing via thresholds == argmin of the Lagrangian cost, sample by sample
    xc = np.clip(x, 0.0, 3.0).astype(np.float32)
    via_thresholds = q.quantize(xc)
    brute = _brute_force_index(xc, q.reconstruction, q.rates, q.lam)
    cost = lambda i: (xc - q.reconstruction[i].astype(np.float64)) ** 2 + q.lam * np.where(
        np.isfinite(q.rates[i]), q.rates[i], 1e300)
    # where the two differ, the costs must tie exactly (boundary samples)
    assert np.allclose(cost(via_thresholds), cost(brute), rtol=0, atol=1e-9)
    assert np.all(np.diff(q.thresholds) >= 0)


def test_modified_ecq_pins_outer_levels_and_uses_codeword_lengths():
    x = np.random.default_rng(3).gamma(0.6, 1.0, 100_000)
    q = sc.design_ecq(x, 4, lam=0.1, c_min=0.0, c_max=4.0, method="modified")
    assert q.reconstruction[0] == 0.0 and q.reconstruction[-1] == 4.0
    np.testing.assert_array_equal(q.rates, codeword_lengths(4))
    assert 0.0 < q.reconstruction[1] < q.reconstruction[2] < 4.0


def test_threshold_sign_follows_added_rate_term():
    # With J = D + λR and b_1 > b_0, the boundary between levels 0 and 1 moves *up*
    # from the midpoint (cheap index 0 wins more samples); under Algorithm 1 the more
    # probable level likewise grows its cell.
    x = np.random.default_rng(4).gamma(0.5, 1.0, 100_000)
    q = sc.design_ecq(x, 3, lam=0.2, c_min=0.0, c_max=3.0, method="modified")
    mid = (q.reconstruction[0] + q.reconstruction[1]) / 2
    assert q.thresholds[0] > mid
    expected = mid + q.lam * (q.rates[1] - q.rates[0]) / (2 * (q.reconstruction[1] - q.reconstruction[0]))
    assert q.thresholds[0] == pytest.approx(expected, rel=1e-6)
    qc = sc.design_ecq(x, 3, lam=0.2, c_min=0.0, c_max=3.0, method="conventional")
    p = 2.0 ** -qc.rates  # the probabilities the thresholds were derived from
    assert p[0] > p[1]
    np.testing.assert_allclose(p, qc.probabilities, atol=1e-3)
    mid = (qc.reconstruction[0] + qc.reconstruction[1]) / 2
    expected = mid - qc.lam * (math.log2(p[1]) - math.log2(p[0])) / (2 * (qc.reconstruction[1] - qc.reconstruction[0]))
    assert qc.thresholds[0] > mid
    assert qc.thresholds[0] == pytest.approx(expected, rel=1e-6)


def test_larger_lambda_lowers_the_rate():
    x = np.random.default_rng(5).gamma(0.7, 1.0, 100_000)
    fam = sc.sweep_lambda(x, 4, 0.0, 4.0, lams=[0.0, 0.05, 0.2, 1.0])
    by_lam = sorted(fam, key=lambda q: q.lam)
    rates = [q.rate for q in by_lam]
    assert all(a >= b - 1e-12 for a, b in zip(rates, rates[1:]))
    assert rates[0] > rates[-1]


def test_empty_bins_are_deterministic():
    # two clusters and 6 levels under a big λ: conventional ECQ kills bins
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(0, 0.01, 5000), rng.normal(5, 0.01, 5000)])
    a = sc.design_ecq(x, 6, lam=5.0, method="conventional")
    b = sc.design_ecq(x, 6, lam=5.0, method="conventional")
    np.testing.assert_array_equal(a.reconstruction, b.reconstruction)
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    assert (a.probabilities == 0).sum() >= 1
    assert np.all(np.diff(a.reconstruction) >= 0)
    # a dead level is never produced by quantize
    used = np.unique(a.quantize(x))
    assert set(used) <= set(np.flatnonzero(a.probabilities > 0))


def test_envelope_handles_a_level_that_never_wins():
    lv = np.array([0.0, 1.0, 2.0])
    thr = envelope_thresholds(lv, np.array([0.0, 100.0, 0.0]), lam=1.0)
    assert thr[0] == thr[1] == pytest.approx(1.0)
    thr = envelope_thresholds(lv, np.array([0.0, np.inf, 0.0]), lam=1.0)
    assert thr[0] == thr[1] == pytest.approx(1.0)


def test_design_rejects_bad_input():
    with pytest.raises(QuantizerError):
        sc.design_ecq([1.0, np.nan], 2, 0.1, 0, 1)
    with pytest.raises(QuantizerError):
        sc.design_ecq([1.0, 2.0], 2, 0.1, method="modified")
    with pytest.raises(QuantizerError):
        sc.design_ecq([1.0, 2.0], 2, -1.0, 0, 1)
    with pytest.raises(QuantizerError):
        sc.design_ecq([], 2, 0.1, 0, 1)


def test_design_scales_to_millions_of_samples():
    x = np.random.default_rng(7).gamma(0.5, 1.0, 2_000_000).astype(np.float32)
    q = sc.design_ecq(x, 8, lam=0.02, c_min=0.0, c_max=4.0)
    assert q.levels == 8 and len(q.cost_history) >= 2


# --- tables are strictly increasing; nothing reorders them (docs/bitstream.md §1) -------------------

@pytest.mark.parametrize("levels", [[1.0, 0.0], [1.0, 1.0], [-0.0, 0.0], [0.0, 2.0, 1.0]])
def test_table_levels_must_be_strictly_increasing(levels):
    thr = np.zeros(len(levels) - 1)
    with pytest.raises(QuantizerError, match="strictly increasing"):
        ScalarQuantizer(levels, thr, -1.0, 3.0)
    with pytest.raises(QuantizerError, match="strictly increasing"):
        ScalarQuantizer.from_levels(levels)


def test_from_levels_keeps_the_given_order():
    q = ScalarQuantizer.from_levels([-1.0, 0.25, 2.0])
    np.testing.assert_array_equal(q.reconstruction, np.array([-1.0, 0.25, 2.0], np.float32))


def test_designed_levels_that_coincide_are_moved_apart_minimally():
    # samples on two values only: with N = 6 most bins are empty and collapse onto neighbours
    x = np.repeat(np.array([0.5, 2.0], np.float32), 500)
    for method in ("conventional", "modified"):
        q = design_ecq(x, 6, 0.0 if method == "conventional" else 0.01, 0.0, 3.0, method=method)
        assert np.all(np.diff(q.reconstruction) > 0), (method, q.reconstruction)
        np.testing.assert_array_equal(sc.decode(sc.FeatureCodec(q).encode(x)), q(x))


def test_uniform_levels_follow_the_spec_formula():
    # docs/bitstream.md §1: step first, then c_min + k * step, in double, rounded to float32
    lo, hi, n = float(np.float32(6.737916e-08)), float(np.float32(6.478021)), 256
    step = (hi - lo) / (n - 1)
    expected = np.array([np.float32(lo + k * step) for k in range(n)], np.float32)
    expected[0], expected[-1] = lo, hi
    np.testing.assert_array_equal(UniformQuantizer(lo, hi, n).reconstruction, expected)
    np.testing.assert_array_equal(sc.codec.reconstruction_levels(
        sc.decode_header(sc.FeatureCodec(UniformQuantizer(lo, hi, n)).encode(np.zeros(3, np.float32)))), expected)


@pytest.mark.parametrize("c_min,c_max,levels", [(0.0, 1e-40, 200), (-3e38, 3e38, 4), (0.0, 1e-45, 2)])
def test_uniform_ranges_that_overflow_single_precision_are_refused(c_min, c_max, levels):
    with pytest.raises(QuantizerError, match="single"):
        UniformQuantizer(c_min, c_max, levels)


# --- tests named after the behaviour the audit's surviving mutants changed --------------------------

def test_algorithm2_interior_levels_are_the_centroids_of_their_cells():
    x = np.abs(np.random.default_rng(5).normal(size=20_000)).astype(np.float32)
    q = design_ecq(x, 6, 0.02, 0.0, 3.0, method="modified")
    xc = np.clip(x.astype(np.float64), 0.0, 3.0)
    idx = q.quantize(x)
    for k in range(1, q.levels - 1):  # the pinned ends are not centroids
        cell = xc[idx == k]
        if cell.size:
            assert q.reconstruction[k] == pytest.approx(cell.mean(), rel=1e-3), k  # the initial levels are ~10 % off


def test_eq1_runs_in_single_precision():
    # among many values, those whose index differs when t = (x - c_min) * (N-1)/(c_max - c_min) is computed
    # in double instead of float32: eq. (1) must give the float32 answer (the stream's bytes depend on it)
    lo, hi, n = np.float32(0.1), np.float32(2.3), 8
    q = UniformQuantizer(float(lo), float(hi), n)
    x = np.random.default_rng(0).uniform(0.1, 2.3, 2_000_000).astype(np.float32)
    scale = np.float32((n - 1) / (float(hi) - float(lo)))
    t32 = (x - lo) * scale
    f32 = np.floor(t32) + ((t32 - np.floor(t32)) >= np.float32(0.5))
    t64 = (x.astype(np.float64) - float(lo)) * ((n - 1) / (float(hi) - float(lo)))
    f64 = np.floor(t64) + ((t64 - np.floor(t64)) >= 0.5)
    differ = f32 != f64
    assert differ.sum() > 0, "the probe values must separate the two precisions"
    np.testing.assert_array_equal(q.quantize(x[differ]), f32[differ].astype(np.uint8))


@pytest.mark.parametrize("make", [lambda: UniformQuantizer(-1.0, 2.5, 8),
                                  lambda: design_ecq(np.linspace(0, 3, 1001), 5, 0.05, 0.0, 3.0)])
def test_thresholds_agree_with_quantize_on_both_sides(make):
    # the thresholds a quantizer reports (and a calibration file stores) are where quantize changes index
    q = make()
    eps = 1e-3 * float(np.min(np.diff(q.reconstruction)))
    for k, t in enumerate(q.thresholds):
        below, above = q.quantize(np.array([t - eps, t + eps], np.float32))
        assert (below, above) == (k, k + 1), (k, t)


# --- the support region (mse_optimal_clip) ---------------------------------------------------------

def _uniform_mse(x, c_min, c_max, n):
    q = UniformQuantizer(c_min, c_max, n)
    return float(np.mean((x.astype(np.float64) - q(x)) ** 2))


def test_mse_optimal_clip_is_the_best_candidate_quantile():
    x = np.abs(np.random.default_rng(3).normal(size=5000)).astype(np.float32)
    for n in (2, 4, 8):
        for half in (True, False):
            c = sc.mse_optimal_clip(x, n, half_exact=half, candidates=32)
            above = x[x > 0]
            cands = np.unique(np.quantile(above, np.linspace(0.3, 1.0, 32)))
            if half:
                cands = np.float16(cands).astype(np.float64)
                assert float(np.float16(c)) == c  # the header stays compact
            best = min(_uniform_mse(x, 0.0, float(k), n) for k in cands if k > 0)
            assert _uniform_mse(x, 0.0, c, n) == pytest.approx(best, rel=0, abs=0)
            assert c in set(cands.tolist())
            assert np.quantile(above, 0.3) * 0.999 <= c <= x.max() * 1.001
    # a coarser quantizer clips lower (the paper's observation)
    assert sc.mse_optimal_clip(x, 2) < sc.mse_optimal_clip(x, 16)


def test_mse_optimal_clip_with_a_negative_floor_and_non_finite_samples():
    rng = np.random.default_rng(4)
    x = rng.normal(size=4000).astype(np.float32)
    c = sc.mse_optimal_clip(np.concatenate([x, [np.inf, -np.inf, np.nan]]).astype(np.float32), 8, -1.0)
    assert c == sc.mse_optimal_clip(x, 8, -1.0) and c > -1.0


def test_mse_optimal_clip_subsamples_deterministically():
    x = np.abs(np.random.default_rng(5).standard_cauchy(size=20_000)).astype(np.float32)
    a = sc.mse_optimal_clip(x, 4, max_samples=2000, seed=1)
    assert a == sc.mse_optimal_clip(x, 4, max_samples=2000, seed=1)
    full = sc.mse_optimal_clip(x, 4, max_samples=1 << 20)
    assert full == sc.mse_optimal_clip(x, 4, max_samples=x.size)  # at the limit: no subsampling
    sub = np.random.default_rng(1).choice(x, 2000, replace=False)
    assert a == sc.mse_optimal_clip(sub, 4, max_samples=2000)


def test_mse_optimal_clip_refuses_samples_with_nothing_above_the_floor():
    with pytest.raises(QuantizerError, match="no samples above"):
        sc.mse_optimal_clip(np.zeros(10, np.float32), 4)
    with pytest.raises(QuantizerError, match="no samples above"):
        sc.mse_optimal_clip(np.full(10, np.nan, np.float32), 4)
    # samples above the floor but none whose half-precision value is: no clip can be chosen
    with pytest.raises(QuantizerError, match="could not find"):
        sc.mse_optimal_clip(np.full(10, 1e-9, np.float32), 4)


# --- value semantics and input handling (pinned after mutation testing) ----------------------------

def test_quantizer_equality_compares_every_part_of_the_mapping():
    base = ScalarQuantizer([0.0, 1.0, 2.0], [0.5, 1.5], 0.0, 2.0)
    assert base == ScalarQuantizer([0.0, 1.0, 2.0], [0.5, 1.5], 0.0, 2.0)
    assert base != ScalarQuantizer([0.0, 1.0, 2.0], [0.5, 1.25], 0.0, 2.0)  # thresholds
    assert base != ScalarQuantizer([0.0, 1.0, 2.0], [0.5, 1.5], -0.5, 2.0)  # c_min
    assert base != ScalarQuantizer([0.0, 1.0, 2.0], [0.5, 1.5], 0.0, 2.5)  # c_max
    assert base != ScalarQuantizer([0.0, 0.9, 2.0], [0.5, 1.5], 0.0, 2.0)  # reconstruction
    assert base != ScalarQuantizer([0.0, 2.0], [1.0], 0.0, 2.0)  # levels
    u = UniformQuantizer(0.0, 2.0, 3)
    same_mapping = ScalarQuantizer(u.reconstruction, u.thresholds, 0.0, 2.0)
    assert u != same_mapping and same_mapping != u  # kind differs (the header differs)
    assert u == UniformQuantizer(0.0, 2.0, 3) and u != UniformQuantizer(0.0, 2.0, 4)
    assert u != "uniform" and base != None  # noqa: E711


def test_mse_is_the_mean_squared_reconstruction_error_in_double():
    x = np.array([0.1, 0.9, 1.6, 3.0, -1.0], np.float32)
    q = UniformQuantizer(0.0, 2.0, 3)
    rec = q(x).astype(np.float64)
    assert q.mse(x) == pytest.approx(float(np.mean((x.astype(np.float64) - rec) ** 2)), rel=1e-15)
    assert q.mse(x) == pytest.approx((0.1**2 + 0.1**2 + 0.4**2 + 1.0 + 1.0) / 5, rel=1e-6)
    assert q.mse([0.0, 1.0, 2.0]) == 0.0


class _TensorLike:
    """What a torch tensor offers the codec: detach() and cpu() then numpy()."""

    def __init__(self, a):
        self.a, self.calls = a, []

    def detach(self):
        self.calls.append("detach")
        return self

    def cpu(self):
        self.calls.append("cpu")
        return self

    def numpy(self):
        return self.a


def test_tensor_like_inputs_are_detached_and_converted_to_float32():
    t = _TensorLike(np.array([[0.2, 1.7]], np.float64))
    q = UniformQuantizer(0.0, 2.0, 3)
    np.testing.assert_array_equal(q.quantize(t), [[0, 2]])
    assert t.calls == ["detach", "cpu"]
    a = sc.quantization._as_float32([[1.0, 2.0], [3.0, 4.0]])
    assert a.dtype == np.float32 and a.shape == (2, 2) and a.flags.c_contiguous
    half_only = type("HalfTensor", (), {"detach": lambda self: self})()  # has detach but no cpu: not a tensor
    with pytest.raises((TypeError, ValueError)):
        sc.quantization._as_float32(half_only)


def test_scalar_quantizer_flattens_and_rounds_its_tables():
    q = ScalarQuantizer([[0.0, 1.0], [2.0, 3.0]], [[0.5, 1.5, 2.5]], 0.0, 3.0)
    assert q.levels == 4 and q.reconstruction.shape == (4,) and q.thresholds.shape == (3,)
    assert q.reconstruction.dtype == np.float32 and q.thresholds.dtype == np.float64
    q = ScalarQuantizer([0.0, 0.1, 1.0], np.array([0.05, 0.55], np.float32), 0.0, 1.0)
    assert q.reconstruction[1] == np.float32(0.1) and q.thresholds[0] == np.float64(np.float32(0.05))
    f = ScalarQuantizer.from_levels([[0.0, 0.1], [0.7, 1.0]])
    assert f.levels == 4 and f.reconstruction.dtype == np.float32
    # midpoints computed in double from the float32 levels
    assert f.thresholds[0] == (np.float64(np.float32(0.0)) + np.float64(np.float32(0.1))) / 2
    assert (f.c_min, f.c_max) == (0.0, 1.0)
    g = ScalarQuantizer.from_levels([0.0, 0.5, 1.0], c_min=-1.0, c_max=2.0)
    assert (g.c_min, g.c_max) == (-1.0, 2.0)


def test_scalar_quantizer_refuses_nan_or_decreasing_thresholds():
    for thr in ([0.5, np.nan], [np.nan, 1.5], [1.5, 0.5]):
        with pytest.raises(QuantizerError, match="thresholds"):
            ScalarQuantizer([0.0, 1.0, 2.0], thr, 0.0, 2.0)
    ScalarQuantizer([0.0, 1.0, 2.0], [1.0, 1.0], 0.0, 2.0)  # equal thresholds: an empty cell is fine


def test_clip_must_be_finite_at_both_ends():
    for lo, hi in [(0.0, np.inf), (-np.inf, 1.0), (np.nan, 1.0), (0.0, np.nan), (1e39, 2e39)]:
        with pytest.raises(QuantizerError, match="finite"):
            UniformQuantizer(lo, hi, 4)
        with pytest.raises(QuantizerError, match="finite"):
            ScalarQuantizer([0.0, 1.0], [0.5], lo, hi)


def test_uniform_quantizer_top_index_is_n_minus_one():
    q = UniformQuantizer(0.0, 1.0, 5)
    np.testing.assert_array_equal(q.quantize(np.array([2.0, 1.0, 0.99, 1e30], np.float32)), [4, 4, 4, 4])


def test_ecq_result_keeps_how_it_was_designed():
    x = np.abs(np.random.default_rng(8).normal(size=3000)).astype(np.float32)
    r = design_ecq(x, 4, 0.05, 0.0, 2.5, method="modified")
    assert r.method == "modified" and r.lam == 0.05
    assert r.rates.dtype == np.float64 and r.probabilities.dtype == np.float64
    # the design's distortion is that of the clipped samples (clipping error is the support region's)
    assert isinstance(r.distortion, float) and r.distortion == pytest.approx(r.mse(np.clip(x, 0, 2.5)), rel=1e-9)
    assert r.cost_history[-1] == pytest.approx(r.cost, rel=1e-12)
    assert r.cost == pytest.approx(r.distortion + 0.05 * r.rate)
    assert r.probabilities.sum() == pytest.approx(1.0)


@given(st.lists(st.floats(-4, 4, allow_nan=False), min_size=2, max_size=7, unique=True),
       st.lists(st.floats(0.5, 9), min_size=7, max_size=7), st.floats(0, 3), st.integers(0, 6))
def test_envelope_thresholds_pick_the_cheapest_level(levels, rates, lam, never):
    lv = np.sort(np.array(levels))
    r = np.array(rates[: lv.size])
    if lam > 0 and never < lv.size and lv.size > 2:
        r[never] = np.inf  # a level that is never chosen
    thr = sc.quantization.envelope_thresholds(lv, r, lam)
    assert thr.shape == (lv.size - 1,) and np.all(np.diff(thr) >= 0)
    xs = np.linspace(lv[0] - 1, lv[-1] + 1, 401)
    cost = (xs[:, None] - lv[None, :]) ** 2 + (lam * r[None, :] if lam > 0 else 0.0)
    best = cost.min(axis=1)
    chosen = np.searchsorted(thr, xs, side="right")
    np.testing.assert_allclose(cost[np.arange(xs.size), chosen], best, rtol=0, atol=1e-9)


def test_envelope_thresholds_with_equal_levels_and_rate_free_design():
    # two equal levels: the cheaper one takes the whole cell; the other gets an empty interval
    thr = sc.quantization.envelope_thresholds(np.array([0.0, 1.0, 1.0, 2.0]), np.array([1.0, 3.0, 1.0, 1.0]), 0.5)
    assert thr[1] == thr[0] and thr[2] == pytest.approx(1.5)
    thr0 = sc.quantization.envelope_thresholds(np.array([0.0, 1.0, 3.0]), np.array([9.0, 1.0, 1.0]), 0.0)
    np.testing.assert_allclose(thr0, [0.5, 2.0])  # λ = 0: the rates do not matter


# --- design inputs, λ grids and empty cells (pinned after mutation testing) -------------------------

def test_design_inputs_are_checked():
    x = np.abs(np.random.default_rng(9).normal(size=500)).astype(np.float32)
    with pytest.raises(QuantizerError, match="method"):
        design_ecq(x, 4, 0.1, 0.0, 2.0, method="other")
    for lam in (-0.1, np.inf, np.nan):
        with pytest.raises(QuantizerError, match="lam"):
            design_ecq(x, 4, lam, 0.0, 2.0)
    design_ecq(x, 4, 0.0, 0.0, 2.0)  # λ = 0 is allowed
    with pytest.raises(QuantizerError, match="no samples"):
        design_ecq(np.zeros(0, np.float32), 4, 0.1, 0.0, 2.0)
    with pytest.raises(QuantizerError, match="NaN"):
        design_ecq(np.array([0.1, np.nan], np.float32), 4, 0.1, 0.0, 2.0)
    with pytest.raises(QuantizerError, match="c_min and c_max"):
        design_ecq(x, 4, 0.1, None, 2.0, method="modified")
    with pytest.raises(QuantizerError, match="c_min and c_max"):
        design_ecq(x, 4, 0.1, 0.0, None, method="modified")


def test_conventional_design_takes_the_clip_range_from_the_finite_samples():
    x = np.array([0.5, 1.0, 3.0, np.inf, -np.inf, 2.0], np.float32)
    q = design_ecq(x, 3, 0.0, method="conventional")
    assert (q.c_min, q.c_max) == (0.5, 3.0)
    q = design_ecq(np.array([np.inf, -np.inf], np.float32), 2, 0.0, method="conventional")
    assert (q.c_min, q.c_max) == (0.0, 1.0)  # no finite sample: the unit range
    q = design_ecq(np.full(4, 2.0, np.float32), 2, 0.0, method="conventional")
    assert (q.c_min, q.c_max) == (2.0, 3.0)  # one value: a unit-wide range above it
    q = design_ecq(np.array([0.0, 1.0, 5.0], np.float32), 2, 0.0, None, 2.0, method="conventional")
    assert (q.c_min, q.c_max) == (0.0, 2.0)  # an explicit end is kept; samples are clipped to it


def test_initial_levels_are_sorted_checked_and_pinned_by_the_modified_design():
    x = np.abs(np.random.default_rng(10).normal(size=2000)).astype(np.float32)
    with pytest.raises(QuantizerError, match="4 values"):
        design_ecq(x, 4, 0.01, 0.0, 3.0, init_levels=[0.1, 0.2, 0.3])
    a = design_ecq(x, 4, 0.01, 0.0, 3.0, method="conventional", init_levels=[[2.0, 0.5], [1.0, 0.1]], max_iter=1)
    b = design_ecq(x, 4, 0.01, 0.0, 3.0, method="conventional", init_levels=[0.1, 0.5, 1.0, 2.0], max_iter=1)
    assert a == b  # any shape, any order
    m = design_ecq(x, 4, 0.01, 0.0, 3.0, method="modified", init_levels=[0.3, 0.5, 1.0, 2.0], max_iter=1)
    assert m.reconstruction[0] == 0.0 and m.reconstruction[-1] == 3.0
    np.testing.assert_array_equal(m.rates, codeword_lengths(4))
    np.testing.assert_allclose(design_ecq(x, 4, 0.0, 0.0, 3.0, method="conventional", max_iter=0).reconstruction,
                               np.float32(np.linspace(0.0, 3.0, 4)))


def test_default_lambdas_are_a_geometric_grid_scaled_to_the_clipped_variance():
    x = np.array([0.0, 1.0, 2.0, 10.0], np.float32)
    lams = sc.quantization.default_lambdas(x, 0.0, 2.0)
    var = np.var(np.clip(x.astype(np.float64), 0.0, 2.0))
    assert lams.shape == (8,)
    np.testing.assert_allclose(lams, var * np.geomspace(1e-3, 1.0, 8), rtol=1e-12)
    np.testing.assert_allclose(sc.quantization.default_lambdas(x, 0.0, 2.0, count=3), var * np.array([1e-3, 10 ** -1.5, 1]))
    const = sc.quantization.default_lambdas(np.ones(5, np.float32), 0.0, 3.0, count=2)
    np.testing.assert_allclose(const, 9 / 12 * np.array([1e-3, 1.0]))  # zero variance: a uniform's over the range


def test_sweep_lambda_designs_one_quantizer_per_lambda_sorted_by_rate():
    x = np.abs(np.random.default_rng(11).normal(size=3000)).astype(np.float32)
    lams = [0.5, 0.0, 0.05]
    fam = sc.sweep_lambda(x, 4, 0.0, 2.5, lams, method="conventional")
    assert [q.method for q in fam] == ["conventional"] * 3
    assert sorted(q.lam for q in fam) == sorted(lams)
    assert [q.rate for q in fam] == sorted(q.rate for q in fam) and fam[0].lam == 0.5 and fam[-1].lam == 0.0
    for q in fam:
        assert q == design_ecq(x, 4, q.lam, 0.0, 2.5, method="conventional")
    default = sc.sweep_lambda(x, 4, 0.0, 2.5, max_iter=5)
    assert sorted(q.lam for q in default) == pytest.approx(sorted(sc.quantization.default_lambdas(x, 0.0, 2.5)))
    assert all(q.method == "modified" for q in default)


def test_empty_cells_get_a_level_between_their_neighbours():
    fill = sc.quantization._fill_empty
    lv = np.array([0.0, 5.0, 2.0, 3.0])
    placed = np.array([True, False, True, True])
    out = fill(lv, placed, np.array([1.0, 1.5, 2.5]), 0.0, 4.0)
    assert out[1] == 1.0 and np.all(np.diff(out) >= 0)  # its collapsed interval's point, 1.0
    out = fill(lv, placed, np.array([-np.inf, 1.5, 2.5]), 0.0, 4.0)
    assert out[1] == 0.0  # an interval at -inf: the left neighbour
    out = fill(np.array([9.0, 1.0, 2.0]), np.array([False, True, True]), np.array([np.inf, 1.5]), -1.0, 4.0)
    assert out[0] == 1.0  # the first cell at +inf: the next placed level
    out = fill(np.array([0.0, 1.0, 7.0]), np.array([True, True, False]), np.array([0.5, 9.0]), 0.0, 4.0)
    assert out[2] == 4.0  # clamped to the clip end
    out = fill(np.array([0.0, 1.0, 7.0]), np.array([True, True, False]), np.array([0.5, np.inf]), 0.0, 4.0)
    assert out[2] == 4.0  # an interval at +inf: the right end
    out = fill(np.array([0.0, 9.0, 9.0, 3.0]), np.array([True, False, False, True]), np.array([0.5, 2.0, 2.5]), 0.0, 4.0)
    np.testing.assert_array_equal(out, [0.0, 0.5, 2.0, 3.0])  # the next placed level bounds both
    np.testing.assert_array_equal(lv, [0.0, 5.0, 2.0, 3.0])  # the input is not modified
    out = fill(np.array([7.0]), np.array([False]), np.zeros(0), 0.5, 4.0)
    assert out[0] == 0.5  # one level, no thresholds: the low end


def test_coinciding_levels_are_moved_apart_by_the_fewest_float32_steps():
    f = sc.quantization._strictly_increasing
    up = np.nextafter(np.float32(0), np.float32(1))
    np.testing.assert_array_equal(f(np.float32([0, 0, 0, 1])), np.float32([0, up, np.nextafter(up, np.float32(1)), 1]))
    one_down = np.nextafter(np.float32(1), np.float32(0))
    np.testing.assert_array_equal(f(np.float32([0, 1, 1, 1])), np.float32([0, np.nextafter(one_down, np.float32(0)),
                                                                           one_down, 1]))
    np.testing.assert_array_equal(f(np.float32([0, 0.5, 0.5, 0.7, 0.7, 1])),
                                  np.float32([0, 0.5, np.nextafter(np.float32(0.5), np.float32(1)), 0.7,
                                              np.nextafter(np.float32(0.7), np.float32(1)), 1]))
    keep = np.float32([0, 0.25, 0.5, 1])
    np.testing.assert_array_equal(f(keep), keep)


def test_scalar_quantizer_repr_shows_its_table():
    q = ScalarQuantizer([0.0, 0.123456, 1.0], [0.05, 0.5], 0.0, 1.0)
    assert repr(q) == "ScalarQuantizer(levels=3, c_min=0.0, c_max=1.0, reconstruction=[0.     0.1235 1.    ])"
    r = design_ecq(np.linspace(0, 1, 50, dtype=np.float32), 2, 0.0, 0.0, 1.0)
    assert repr(r).startswith("ECQResult(levels=2, c_min=0.0, c_max=1.0, reconstruction=[0. 1.])")


def test_lloyd_max_is_ecq_without_rate_on_the_given_clip():
    x = np.abs(np.random.default_rng(12).normal(size=3000)).astype(np.float32)
    q = sc.lloyd_max(x, 4, 0.25, 2.0)
    assert (q.c_min, q.c_max) == (0.25, 2.0) and q.lam == 0.0 and q.method == "conventional"
    assert q == design_ecq(x, 4, 0.0, 0.25, 2.0, method="conventional")
    coarse = sc.lloyd_max(x, 4, 0.25, 2.0, tol=0.5)
    assert coarse == design_ecq(x, 4, 0.0, 0.25, 2.0, method="conventional", tol=0.5)
    assert len(coarse.cost_history) < len(q.cost_history)  # the tolerance reaches the design
    short = sc.lloyd_max(x, 4, 0.25, 2.0, max_iter=1)
    assert len(short.cost_history) <= 2 and short != q


def test_default_lambdas_clip_at_both_ends():
    x = np.array([0.0, 1.0, 2.0, 10.0], np.float32)
    var = np.var(np.clip(x.astype(np.float64), 1.0, 2.0))
    np.testing.assert_allclose(sc.quantization.default_lambdas(x, 1.0, 2.0, count=2), var * np.array([1e-3, 1.0]))
    const = sc.quantization.default_lambdas(np.ones(5, np.float32), 1.0, 3.0, count=2)  # all at c_min: zero variance
    np.testing.assert_allclose(const, 4 / 12 * np.array([1e-3, 1.0]))


def test_sweep_lambda_passes_design_options_and_its_clip_on():
    x = np.abs(np.random.default_rng(13).normal(size=2000)).astype(np.float32) + 1.0
    fam = sc.sweep_lambda(x, 3, 1.5, 3.0, max_iter=1)
    lams = sc.quantization.default_lambdas(x, 1.5, 3.0)
    assert sorted(q.lam for q in fam) == pytest.approx(sorted(lams))
    for q in fam:
        assert q == design_ecq(x, 3, q.lam, 1.5, 3.0, max_iter=1)


def test_mse_optimal_clip_defaults():
    x = np.random.default_rng(14).exponential(size=300_000).astype(np.float32)
    assert sc.mse_optimal_clip(x, 4) == sc.mse_optimal_clip(x, 4, candidates=64, max_samples=1 << 18, seed=0)


@given(st.floats(-1e4, 1e4), st.floats(1e-3, 1e4), st.integers(2, 256), st.floats(-0.49, 0.49))
def test_zero_level_puts_a_level_at_zero_with_the_same_step_and_a_small_shift(centre, width, levels, where):
    step = width / (levels - 1)
    # a range whose nearest level to 0 is at most half a step away (``where`` of a step)
    k = min(int(abs(centre) / step), levels - 1)
    lo = -k * step + where * step
    q = UniformQuantizer(lo, lo + width, levels)
    z = q.zero_level()
    rec = z.dequantize(np.arange(levels, dtype=np.uint8))
    assert 0.0 in rec.tolist()
    assert z.levels == levels
    assert abs(z.step - q.step) * (levels - 1) <= q.step / 64
    assert abs(z.c_min - q.c_min) <= q.step / 2 + q.step / 64


def test_zero_level_with_256_levels_moves_no_level_by_a_sixty_fourth_of_a_step():
    rng = np.random.default_rng(5)
    for frac, width in zip(rng.uniform(0, 1, 40), rng.uniform(1, 80, 40)):
        q = UniformQuantizer(-frac * width, (1 - frac) * width, 256)
        z = q.zero_level()
        moved = (z.reconstruction.astype(np.float64) - q.reconstruction) - (z.c_min - q.c_min)  # beyond the shift
        assert 0.0 in z.reconstruction.tolist()
        assert np.max(np.abs(moved)) <= q.step / 64 + 1e-6 * width and abs(z.c_min - q.c_min) <= q.step / 2 + q.step / 64


def test_zero_level_keeps_half_exact_ranges_half_exact_and_refuses_a_far_zero():
    z = UniformQuantizer(-22.59375, 13.296875, 8).zero_level()  # the demo's point: zero between levels 4 and 5
    assert (z.c_min, z.c_max) == (-20.5, 15.375)
    assert len(sc.FeatureCodec(z).encode(np.zeros((2, 3, 3), np.float32))) < len(
        sc.FeatureCodec(UniformQuantizer(-20.51, 15.38, 8)).encode(np.zeros((2, 3, 3), np.float32)))
    same = UniformQuantizer(-1.0, 2.0, 4)  # 0 is already level 1
    assert same.zero_level() is same
    # exactly half a step away on either side still shifts; a little more is refused
    assert UniformQuantizer(0.5, 3.5, 4).zero_level() == UniformQuantizer(0.0, 3.0, 4)
    assert UniformQuantizer(-3.5, -0.5, 4).zero_level() == UniformQuantizer(-3.0, 0.0, 4)
    for lo, hi in ((0.5078125, 3.5078125), (-3.5078125, -0.5078125)):
        with pytest.raises(QuantizerError, match="half a step"):
            UniformQuantizer(lo, hi, 4).zero_level()
    with pytest.raises(QuantizerError, match="half a step"):
        UniformQuantizer(2.0, 5.0, 4).zero_level()
    with pytest.raises(QuantizerError, match="half a step"):
        UniformQuantizer(-9.0, -3.0, 3).zero_level()
