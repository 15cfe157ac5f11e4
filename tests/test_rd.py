"""Rate-distortion optimised encoding: the streams stay ordinary, λ = 0 is the plain codec byte for byte,
the encoder reports exactly what the decoder will reconstruct, and the operating-point search."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import splitcodec as sc

from .conftest import relu_field
from .test_golden import _cases


@given(
    x=arrays(np.float32, array_shapes(min_dims=1, max_dims=4, max_side=9),
             elements=st.floats(-2, 6, width=32, allow_nan=False)),
    levels=st.integers(2, 20),
    lam=st.floats(0.01, 3.0),
    model=st.sampled_from(["paper", "spatial"]),
    table=st.booleans(),
)
def test_rdo_round_trip_is_exactly_the_chosen_indices(x, levels, lam, model, table):
    q = sc.UniformQuantizer(-1.0, 4.0, levels)
    if table:  # a non-uniform table: denser near -1
        q = sc.ScalarQuantizer.from_levels(-1.0 + 5.0 * np.linspace(0, 1, levels) ** 1.5, -1.0, 4.0)
    data, idx = sc.FeatureCodec(q, model, rdo_lambda=lam).encode(x, return_indices=True)
    np.testing.assert_array_equal(sc.decode(data), q.dequantize(idx))
    plain = q.quantize(x).astype(np.int64)
    chosen = idx.astype(np.int64)
    assert np.all((chosen == 0) | (np.abs(chosen - plain) <= 1))  # candidates: 0 and the plain index ± 1


@pytest.mark.parametrize("name", sorted(_cases()))
def test_lambda_zero_is_the_plain_codec_byte_for_byte(name):
    codec, x = _cases()[name]
    again = sc.FeatureCodec(codec.quantizer, codec.context_model, rdo_lambda=0.0)
    assert again.encode(x) == codec.encode(x)


def test_larger_lambda_spends_fewer_bits_for_more_distortion(rng):
    x = relu_field(rng, (16, 24, 24), scale=2.0)
    q = sc.UniformQuantizer(0.0, 3.0, 8)
    sizes, errors = [], []
    for lam in (0.0, 0.1, 0.4, 1.6):
        data = sc.FeatureCodec(q, rdo_lambda=lam).encode(x)
        sizes.append(len(data))
        errors.append(float(((sc.decode(data) - np.clip(x, 0, 3)) ** 2).mean()))
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < 0.8 * sizes[0]
    assert errors == sorted(errors)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x", None])
def test_rdo_lambda_must_be_a_finite_non_negative_number(bad):
    with pytest.raises(sc.QuantizerError, match="rdo_lambda"):
        sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4), rdo_lambda=bad)


def test_rdo_lambda_travels_in_calibration_files(tmp_path):
    from splitcodec.quantizer_file import save_quantizer

    q = sc.UniformQuantizer(0.0, 2.0, 6)
    path = save_quantizer(tmp_path / "q.json", q, context_model="paper", rdo_lambda=0.25)
    codec = sc.FeatureCodec.from_file(path)
    assert codec.rdo_lambda == 0.25 and codec.context_model == 0


def test_rd_frontier_and_operating_point_search(rng):
    x = relu_field(rng, (8, 16, 16), scale=2.0)
    pts = sc.rd.rd_points([x], levels=(2, 4, 8), lambdas=(0.0, 0.3), refine=1)
    uniform = [p for p in pts if p["kind"] == "uniform"]
    assert len(uniform) >= 2 * 3 * 2 and {p["rdo_lambda"] for p in uniform} == {0.0, 0.3}
    assert {p["kind"] for p in pts} == {"uniform", "refined"}
    front = sc.rd.rd_frontier(pts)
    for p in pts:  # nothing off the front beats a front point on both axes
        assert any(f["bits_per_element"] <= p["bits_per_element"] and f["mse"] <= p["mse"] for f in front)
    target = front[len(front) // 2]["mse"]
    best = sc.rd.best_point(pts, target_mse=target)
    assert best["mse"] <= target and all(p["bits_per_element"] >= best["bits_per_element"]
                                         for p in pts if p["mse"] <= target)
    budget = sc.rd.best_point(pts, max_bits=best["bits_per_element"])
    assert budget["mse"] <= best["mse"]
    assert sc.rd.best_point(pts, target_mse=0.0) is None or sc.rd.best_point(pts, target_mse=0.0)["mse"] == 0.0
    with pytest.raises(ValueError):
        sc.rd.best_point(pts)


def test_coarse_n_with_rdo_reaches_the_rates_only_n2_reached(rng):
    """Without RDO only N = 2 goes below about half a bit per element; with it N = 4 and 8 go there too,
    and the operational frontier at those rates is made of RDO points, coarse N among them."""
    xs = [relu_field(rng, (16, 24, 24), scale=2.0) for _ in range(2)]
    pts = sc.rd.rd_points(xs, levels=(2, 4, 8), lambdas=(0.0, 1.0, 4.0), refine=0)
    plain = [p for p in pts if p["rdo_lambda"] == 0]
    floor2 = min(p["bits_per_element"] for p in plain if p["levels"] == 2)
    assert all(p["bits_per_element"] > floor2 for p in plain if p["levels"] >= 4)
    coarse_rdo = [p for p in pts if p["levels"] >= 4 and p["rdo_lambda"] > 0]
    assert sum(p["bits_per_element"] < floor2 for p in coarse_rdo) >= 3
    low = [p for p in sc.rd.rd_frontier(pts) if p["bits_per_element"] < floor2]
    assert all(p["rdo_lambda"] > 0 for p in low) and any(p["levels"] >= 4 for p in low)


def _signed_field(rng, shape=(6, 20, 20)):
    """Signed, heavy-tailed, spatially correlated: like a linear bottleneck's output."""
    x = rng.laplace(size=shape).astype(np.float32) * 3
    return (x + np.roll(x, 1, axis=-1) + np.roll(x, 1, axis=-2)).astype(np.float32)


@pytest.mark.parametrize("lam", [0.0, 0.2, 0.8])
def test_every_rd_point_is_reproduced_by_its_codec(rng, lam):
    xs = [_signed_field(rng), relu_field(rng, (4, 12, 12), scale=2.0)]
    pts = sc.rd.rd_points(xs, levels=(3, 6), lambdas=(lam,), refine=2)
    assert any(p["kind"] == "refined" for p in pts)
    for p in pts:
        codec = sc.rd.point_codec(p)
        streams = [codec.encode(x) for x in xs]
        n = sum(x.size for x in xs)
        assert 8 * sum(map(len, streams)) / n == p["bits_per_element"]
        sq = sum(float(((sc.decode(s).astype(np.float64) - x) ** 2).sum()) for s, x in zip(streams, xs))
        assert sq / n == pytest.approx(p["mse"], rel=1e-12)
        if p["kind"] == "refined":
            header = sc.decode_header(streams[0])
            np.testing.assert_array_equal(header.levels_table, np.float32(p["reconstruction"]))


def test_refinement_without_rdo_is_lloyd_its_error_never_grows(rng):
    x = _signed_field(rng)
    q = sc.UniformQuantizer(float(x.min()) / 2, float(x.max()) / 2, 5)
    steps = sc.rd.refine_levels(q, [x], 0.0, iterations=4)
    assert len(steps) == 4
    mse0 = float(((q.dequantize(q.quantize(x)) - x.astype(np.float64)) ** 2).mean())
    errors = [mse0] + [s["mse"] for s in steps]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(errors, errors[1:])) and errors[-1] < 0.9 * mse0
    prev = q
    for s in steps:  # each step's levels are the means of the elements the previous levels quantized to them
        idx = prev.quantize(x).ravel()
        means = np.bincount(idx, weights=x.ravel().astype(np.float64)) / np.bincount(idx)
        np.testing.assert_array_equal(s["quantizer"].reconstruction, means.astype(np.float32))
        assert s["rdo_lambda"] == 0.0
        prev = s["quantizer"]


def test_refinement_keeps_the_weight_of_a_bit_fixed(rng):
    x = relu_field(rng, (6, 16, 16), scale=2.0)
    q = sc.UniformQuantizer(0.0, 3.0, 6)
    for s in sc.rd.refine_levels(q, [x], 0.4, iterations=2):
        rec = s["quantizer"].reconstruction.astype(np.float64)
        spacing = (rec[-1] - rec[0]) / (len(rec) - 1)
        assert s["rdo_lambda"] * spacing ** 2 == pytest.approx(0.4 * (3.0 / 5) ** 2, rel=1e-9)


def test_refinement_stops_when_a_level_goes_unused(rng):
    x = relu_field(rng, (4, 10, 10), scale=0.2)  # nothing reaches the upper levels of [0, 50]
    assert sc.rd.refine_levels(sc.UniformQuantizer(0.0, 50.0, 8), [x], 0.1) == []
    with pytest.raises(sc.QuantizerError, match="no tensors"):
        sc.rd.refine_levels(sc.UniformQuantizer(0.0, 1.0, 4), [])


def test_refined_levels_beat_the_uniform_frontier_on_signed_data(rng):
    """The reason refinement exists: on a signed heavy-tailed tensor its frontier is below the uniform one."""
    xs = [_signed_field(rng, (8, 24, 24))]
    pts = sc.rd.rd_points(xs, levels=(2, 3, 4, 6), lambdas=(0.0, 0.2, 0.8), refine=2)
    uniform = sc.rd.rd_frontier([p for p in pts if p["kind"] == "uniform"])
    both = sc.rd.rd_frontier(pts)
    ratios = [sc.rd.best_point(both, target_mse=u["mse"])["bits_per_element"] / u["bits_per_element"]
              for u in uniform[: len(uniform) // 2]]  # the low-rate half
    assert min(ratios) < 0.9 and max(ratios) <= 1.0


# --- task-aware encoding: channel weights and error feedback -------------------------------------------

def _per_channel_error(q, idx, x):
    return ((q.dequantize(idx).astype(np.float64) - np.clip(x, q.c_min, q.c_max)) ** 2).mean(axis=(-2, -1))


def test_unit_channel_weights_are_plain_rdo_byte_for_byte(rng):
    x = relu_field(rng, (5, 12, 12), scale=2.0)
    q = sc.UniformQuantizer(0.0, 3.0, 8)
    assert (sc.FeatureCodec(q, rdo_lambda=0.3, channel_weights=np.ones(5)).encode(x)
            == sc.FeatureCodec(q, rdo_lambda=0.3).encode(x))


def test_channel_weights_move_the_error_between_channels(rng):
    x = np.concatenate([relu_field(rng, (1, 2, 16, 16), scale=2.0)] * 2)  # (2, 2, H, W): a batch of two
    q = sc.UniformQuantizer(0.0, 3.0, 8)
    _, even = sc.FeatureCodec(q, rdo_lambda=0.4).encode(x, return_indices=True)
    data, skew = sc.FeatureCodec(q, rdo_lambda=0.4, channel_weights=[20.0, 0.05]).encode(x, return_indices=True)
    e_even, e_skew = _per_channel_error(q, even, x), _per_channel_error(q, skew, x)
    for b in range(2):  # the weights apply to channel c of every batch item
        assert e_skew[b, 0] < e_even[b, 0] and e_skew[b, 1] > 2 * e_even[b, 1]
    np.testing.assert_array_equal(sc.decode(data), q.dequantize(skew))


@pytest.mark.parametrize("bad", [[1.0, 0.0], [1.0, -1.0], [1.0, float("nan")], [[1.0, 1.0]], [], "ab", [1.0, float("inf")]])
def test_channel_weights_must_be_positive_finite_and_one_dimensional(bad):
    with pytest.raises(sc.QuantizerError, match="channel_weights"):
        sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4), rdo_lambda=0.1, channel_weights=bad)


def test_channel_weights_need_rdo_and_matching_channels(rng):
    q = sc.UniformQuantizer(0, 1, 4)
    with pytest.raises(sc.QuantizerError, match="rdo_lambda > 0"):
        sc.FeatureCodec(q, channel_weights=[1.0, 2.0])
    codec = sc.FeatureCodec(q, rdo_lambda=0.1, channel_weights=[1.0, 2.0])
    for shape in [(3, 4, 4), (2, 3, 4, 4), (4, 4), (8,)]:
        with pytest.raises(sc.QuantizerError, match="channel_weights has 2 values"):
            codec.encode(np.zeros(shape, np.float32))
    assert "channel_weights=<2 values>" in repr(codec)


def test_lookahead_changes_choices_and_needs_rdo(rng):
    x = relu_field(rng, (6, 20, 20), scale=2.0)
    q = sc.UniformQuantizer(0.0, 3.0, 6)
    greedy = sc.FeatureCodec(q, rdo_lambda=0.5).encode(x, return_indices=True)[1]
    codec = sc.FeatureCodec(q, rdo_lambda=0.5, rdo_lookahead=True)
    ahead = codec.encode(x, return_indices=True)[1]
    assert (greedy != ahead).any() and "rdo_lookahead=True" in repr(codec)
    one_column = x[:, :, :1]  # no right neighbour anywhere: nothing to look ahead at
    np.testing.assert_array_equal(sc.FeatureCodec(q, rdo_lambda=0.5).encode(one_column, return_indices=True)[1],
                                  codec.encode(one_column, return_indices=True)[1])
    with pytest.raises(sc.QuantizerError, match="rdo_lambda > 0"):
        sc.FeatureCodec(q, rdo_lookahead=True)
    with pytest.raises(sc.QuantizerError, match="True or False"):
        sc.FeatureCodec(q, rdo_lambda=0.5, rdo_lookahead="yes")


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), "x", None])
def test_error_feedback_is_a_number_in_0_1(bad):
    with pytest.raises(sc.QuantizerError, match="error_feedback"):
        sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4), error_feedback=bad)


@given(
    x=arrays(np.float32, array_shapes(min_dims=1, max_dims=4, max_side=9),
             elements=st.floats(-2, 6, width=32, allow_nan=False)),
    levels=st.integers(2, 20),
    lam=st.sampled_from([0.0, 0.05, 0.5]),
    feedback=st.sampled_from([0.0, 0.3, 1.0]),
    lookahead=st.booleans(),
    model=st.sampled_from(["paper", "spatial"]),
    diffusion=st.sampled_from(["row", "plane"]),
)
def test_encoder_options_round_trip_is_exactly_the_chosen_indices(x, levels, lam, feedback, lookahead, model, diffusion):
    q = sc.UniformQuantizer(-1.0, 4.0, levels)
    codec = sc.FeatureCodec(q, model, rdo_lambda=lam, error_feedback=feedback, rdo_lookahead=lookahead and lam > 0,
                            error_diffusion=diffusion if feedback else "row")
    data, idx = codec.encode(x, return_indices=True)
    np.testing.assert_array_equal(sc.decode(data), q.dequantize(idx))
    plain = q.quantize(x).astype(np.int64)
    chosen = idx.astype(np.int64)
    assert np.all((chosen == 0) | (np.abs(chosen - plain) <= 1))


def test_full_error_feedback_keeps_each_planes_summed_error_within_a_step(rng):
    q = sc.UniformQuantizer(0.0, 4.0, 5)  # step 1
    x = rng.uniform(0.05, 0.45, size=(3, 10, 10)).astype(np.float32)  # all rounds to 0: a biased plain quantizer
    x[1] += 2.0
    plain = q.dequantize(q.quantize(x)) - x
    _, idx = sc.FeatureCodec(q, error_feedback=1.0).encode(x, return_indices=True)
    shaped = q.dequantize(idx).astype(np.float64) - x
    assert np.all(np.abs(plain.sum(axis=(1, 2))) > 10)
    assert np.all(np.abs(shaped.sum(axis=(1, 2))) <= 1.0 + 1e-5)
    _, half = sc.FeatureCodec(q, error_feedback=0.5).encode(x, return_indices=True)
    assert 1.0 < np.abs((q.dequantize(half) - x).sum(axis=(1, 2))).max() < np.abs(plain.sum(axis=(1, 2))).min()


def _diffused_reference(x, q, feedback, diffusion):
    """Error feedback without RDO, one element at a time: the target is clip(x) plus the error passed on by the
    element on the left (row: the previous one in raster order, across row ends) and, in 2-D, the one above; the
    index is the nearest level among 0 and the plain index ± 1 (the lowest on a tie)."""
    rec = q.reconstruction.astype(np.float64)
    plain = q.quantize(x).astype(np.int64)
    out = np.zeros(x.shape, np.int64)
    for p in range(x.shape[0]):
        carry, above = 0.0, np.zeros(x.shape[2])
        for i in range(x.shape[1]):
            below = np.zeros(x.shape[2])
            if diffusion == "plane":
                carry = 0.0
            for j in range(x.shape[2]):
                v = min(max(float(x[p, i, j]), q.c_min), q.c_max) + carry + above[j]
                k0 = plain[p, i, j]
                cands = [k for k in range(min(k0 + 1, q.levels - 1) + 1) if k == 0 or k >= k0 - 1]
                k = min(cands, key=lambda k: ((v - rec[k]) ** 2, k))
                out[p, i, j] = k
                err = v - rec[k]
                carry = feedback * err if diffusion == "row" else feedback / 2 * err
                below[j] = feedback / 2 * err if diffusion == "plane" else 0.0
            above = below
    return out


@pytest.mark.parametrize("diffusion", ["row", "plane"])
@pytest.mark.parametrize("feedback", [0.5, 1.0])
def test_error_feedback_follows_its_definition_element_by_element(rng, diffusion, feedback):
    q = sc.UniformQuantizer(0.0, 3.0, 7)
    x = (np.maximum(rng.normal(0.4, 1.0, size=(3, 7, 9)), 0) ** 1.3).astype(np.float32)
    _, idx = sc.FeatureCodec(q, error_feedback=feedback, error_diffusion=diffusion).encode(x, return_indices=True)
    np.testing.assert_array_equal(idx, _diffused_reference(x, q, feedback, diffusion))


def _box3(a):
    """Mean over every 3×3 window of each plane."""
    return np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(-2, -1)).mean(axis=(-2, -1))


def test_error_diffusion_in_a_plane_leaves_less_low_frequency_error(rng):
    q = sc.UniformQuantizer(0.0, 4.0, 5)  # step 1: coarse against values mostly below it
    x = _box3(rng.gamma(0.8, 0.6, size=(8, 26, 26))).astype(np.float32)
    low = {}
    for diffusion in ("row", "plane"):
        _, idx = sc.FeatureCodec(q, error_feedback=1.0, error_diffusion=diffusion).encode(x, return_indices=True)
        low[diffusion] = np.abs(_box3(q.dequantize(idx).astype(np.float64) - x)).mean()
    plain = np.abs(_box3(q(x).astype(np.float64) - x)).mean()
    assert low["plane"] < 0.8 * low["row"] < 0.8 * plain


def test_error_diffusion_is_row_or_plane_and_needs_feedback():
    q = sc.UniformQuantizer(0.0, 1.0, 4)
    for bad in ("2d", "", None, "Plane"):
        with pytest.raises(sc.QuantizerError, match="error_diffusion must be one of"):
            sc.FeatureCodec(q, error_feedback=0.5, error_diffusion=bad)
    with pytest.raises(sc.QuantizerError, match="error_feedback > 0"):
        sc.FeatureCodec(q, error_diffusion="plane")
    assert sc.FeatureCodec(q, error_feedback=0.5).error_diffusion == "row"


def test_task_aware_settings_travel_in_calibration_files(tmp_path):
    from splitcodec.quantizer_file import save_quantizer

    q = sc.UniformQuantizer(0.0, 2.0, 6)
    path = save_quantizer(tmp_path / "q.json", q, rdo_lambda=0.25, channel_weights=[0.5, 1.5], error_feedback=0.5,
                          rdo_lookahead=True, error_diffusion="plane")
    codec = sc.FeatureCodec.from_file(path)
    assert codec.error_feedback == 0.5 and codec.channel_weights.tolist() == [0.5, 1.5] and codec.rdo_lookahead
    assert codec.error_diffusion == "plane"
    plain = sc.FeatureCodec.from_file(save_quantizer(tmp_path / "p.json", q))
    assert plain.error_feedback == 0.0 and plain.channel_weights is None and not plain.rdo_lookahead
    assert plain.error_diffusion == "row"
