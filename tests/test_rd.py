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
    from splitcodec.calibration import save_quantizer

    q = sc.UniformQuantizer(0.0, 2.0, 6)
    path = save_quantizer(tmp_path / "q.json", q, context_model="paper", rdo_lambda=0.25)
    codec = sc.FeatureCodec.from_file(path)
    assert codec.rdo_lambda == 0.25 and codec.context_model == 0


def test_rd_frontier_and_operating_point_search(rng):
    x = relu_field(rng, (8, 16, 16), scale=2.0)
    pts = sc.rd.rd_points([x], levels=(2, 4, 8), lambdas=(0.0, 0.3))
    assert len(pts) >= 2 * 3 * 2 and {p["rdo_lambda"] for p in pts} == {0.0, 0.3}
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
