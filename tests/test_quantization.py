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


def test_binarization_of_nothing_and_out_of_range():
    assert sc.binarize(np.array([], dtype=np.uint8), 4).size == 0
    assert sc.binarization.bin_count([], 4) == 0
    for bad in ([-1], [4], [1.5]):
        with pytest.raises(ValueError):
            sc.binarization.bin_count(bad, 4)
        with pytest.raises(ValueError):
            sc.binarize(bad, 4)


# --- tests named after the behaviour the audit's surviving mutants changed --------------------------

def test_codeword_lengths_are_truncated_unary():
    assert codeword_lengths(4).tolist() == [1, 2, 3, 3]
    assert codeword_lengths(2).tolist() == [1, 1]
    assert codeword_lengths(256)[-2:].tolist() == [255, 255]


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
