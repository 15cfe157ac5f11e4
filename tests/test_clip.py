import numpy as np
import pytest

import splitcodec as sc
from splitcodec import clip


def _half_exact(v):
    return float(np.float16(v)) == v


def test_low_clip_is_zero_for_relu_outputs_else_a_half_exact_low_quantile():
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(size=5000), 0).astype(np.float32)
    signed = rng.normal(size=5000).astype(np.float32)
    assert clip.low_clip(relu) == 0.0 and clip.low_clips(relu) == [0.0]
    lo = clip.low_clip(signed)
    assert lo == float(np.float16(np.quantile(signed, clip.SIGNED_LOW_QUANTILES[0]))) and _half_exact(lo) and lo < -2
    lows = clip.low_clips(signed)
    assert lows == sorted(lows) and len(lows) == len(clip.SIGNED_LOW_QUANTILES) and lows[0] == lo


def test_calibrated_clip_and_candidates_share_the_rule():
    x = np.random.default_rng(1).normal(size=(8, 16, 16)).astype(np.float32)
    lo, hi = clip.calibrated_clip(x, 8)
    assert lo == clip.low_clip(x) and hi == sc.mse_optimal_clip(x, 8, lo)
    cands = clip.clip_candidates(x, 8, lo)
    assert hi in cands and cands == sorted(set(cands)) and all(c > lo and _half_exact(c) for c in cands)
    assert len(cands) <= 1 + len(clip.HIGH_QUANTILES)
    assert clip.clip_candidates(x, 8, 100.0) == []  # nothing above c_min: no candidate (mse_optimal_clip would raise)


def test_rd_search_grid_uses_the_same_lower_ends():
    x = np.random.default_rng(2).normal(size=(4, 12, 12)).astype(np.float32)
    grid = sc.rd.clip_grid(x, 4)
    assert {lo for lo, _ in grid} <= set(clip.low_clips(x)) and all(hi > lo for lo, hi in grid)


@pytest.mark.parametrize("text, want", [("4", (0.0, 4.0)), ("0.5:6", (0.5, 6.0)), ("-1.5:4", (-1.5, 4.0)),
                                        (" 2 ", (0.0, 2.0))])
def test_parse_clip_range(text, want):
    assert clip.parse_clip_range(text) == want


@pytest.mark.parametrize("text, match", [("a", "expected C_MAX or C_MIN:C_MAX"), ("1:2:3", "expected"),
                                         ("4:1", "C_MIN < C_MAX"), ("-1", "C_MIN < C_MAX"), ("0:inf", "finite"),
                                         ("0,4", "expected C_MAX")])
def test_parse_clip_range_rejects_with_the_grammar(text, match):
    with pytest.raises(ValueError, match=match):
        clip.parse_clip_range(text)


def test_parse_clip_list():
    assert clip.parse_clip_list("4,0.5:6,") == [(0.0, 4.0), (0.5, 6.0)]
    with pytest.raises(ValueError, match="at least one"):
        clip.parse_clip_list(" , ")


def test_the_low_end_is_zero_for_any_non_negative_tensor_and_a_low_quantile_otherwise():
    from splitcodec.clip import SIGNED_LOW_QUANTILES, low_clip, low_clips

    relu = np.concatenate([[0.0], np.linspace(0.5, 3.0, 9999)]).astype(np.float32)  # one zero, then positives
    positive = np.linspace(0.5, 3.0, 1000).astype(np.float32)  # no zero at all: still clipped at 0
    for x in (relu, positive):
        assert low_clip(x) == 0.0 and low_clips(x) == [0.0]
    signed = np.linspace(-2.0, 2.0, 4001).astype(np.float32)
    lo = low_clip(signed)
    assert lo < 0 and lo == pytest.approx(np.quantile(signed, SIGNED_LOW_QUANTILES[0]), abs=2e-3)
    assert len(low_clips(signed)) == len(SIGNED_LOW_QUANTILES) and max(low_clips(signed)) < 0


def test_a_clip_range_must_be_increasing():
    from splitcodec.clip import parse_clip_range

    assert parse_clip_range("0.5:2") == (0.5, 2.0)
    for bad in ("1:1", "2:1"):
        with pytest.raises(ValueError):
            parse_clip_range(bad)


def test_clip_candidates_are_the_mse_optimum_and_high_quantiles_of_the_samples_above_c_min():
    from splitcodec.clip import HIGH_QUANTILES, _half, clip_candidates, mse_optimal_clip

    rng = np.random.default_rng(4)
    x = np.where(rng.random(20000) < 0.9, 0.0, rng.exponential(0.2, 20000)).astype(np.float32)  # mostly exact zeros
    above = x[x > 0]
    want = sorted({_half(c) for c in [mse_optimal_clip(x, 4, 0.0), *np.quantile(above, HIGH_QUANTILES)]})
    assert clip_candidates(x, 4) == clip_candidates(x, 4, 0.0) == want  # the zeros do not pull the quantiles down
    assert all(c > 0 for c in want) and min(want) < 1.0  # (a default c_min of 1 would drop these)


def test_candidates_that_round_onto_c_min_are_skipped_not_the_end_of_the_search():
    from splitcodec.clip import mse_optimal_clip

    # most samples sit just above c_min = 1, where half precision rounds them onto 1 itself
    x = np.concatenate([np.linspace(1.0001, 1.0004, 900), np.linspace(1.5, 3.0, 100)]).astype(np.float32)
    c = mse_optimal_clip(x, 4, 1.0)
    assert 1.0 < c <= 3.0
