import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import splitcodec as sc
from splitcodec.errors import QuantizerError

from .conftest import relu_field

LEVELS = [2, 3, 4, 5, 7, 8, 16, 64]
SHAPES = [(1,), (37,), (3, 5), (4, 6, 7), (2, 3, 4, 5), (16, 13, 13)]
CLIPS = [(0.0, 2.0), (-1.5, 3.25), (-0.8, 3.5), (-4.0, -1.0)]


@pytest.mark.parametrize("model", ["paper", "spatial"])
@pytest.mark.parametrize("levels", LEVELS)
def test_round_trip_exact_over_shapes_and_clips(rng, model, levels):
    for shape in SHAPES:
        for c_min, c_max in CLIPS:
            x = (rng.normal(size=shape) * 2).astype(np.float32)
            q = sc.UniformQuantizer(c_min, c_max, levels)
            y = sc.decode(sc.FeatureCodec(q, model).encode(x))
            assert y.dtype == np.float32 and y.shape == shape
            np.testing.assert_array_equal(y, q.dequantize(q.quantize(x)))


@pytest.mark.parametrize("fill", [0.0, 1.0, -3.0, 100.0])
def test_all_zero_and_constant_tensors(fill):
    x = np.full((8, 10, 10), fill, dtype=np.float32)
    for levels in (2, 4, 16):
        q = sc.UniformQuantizer(-1.0, 2.0, levels)
        data = sc.FeatureCodec(q).encode(x)
        np.testing.assert_array_equal(sc.decode(data), q(x))
    # a constant tensor costs almost nothing beyond header and flush
    assert len(sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4)).encode(np.zeros((64, 32, 32), np.float32))) < 60


def test_values_exactly_at_ties_round_trip():
    q = sc.UniformQuantizer(-1.0, 3.0, 5)
    x = np.array([[[-0.5, 0.5, 1.5, 2.5, -1.0, 3.0]]], dtype=np.float32)
    y = sc.decode(sc.FeatureCodec(q).encode(x))
    assert y.reshape(-1).tolist() == [0.0, 1.0, 2.0, 3.0, -1.0, 3.0]


@pytest.mark.parametrize("method", ["conventional", "modified"])
def test_designed_quantizers_round_trip(rng, method):
    x = relu_field(rng, (8, 20, 20), scale=2.0)
    q = sc.design_ecq(x, 5, 0.02, 0.0, 3.0, method=method)
    data = sc.FeatureCodec(q).encode(x)
    h = sc.decode_header(data)
    assert h.quantizer_kind_name == "table" and h.levels == 5
    np.testing.assert_array_equal(sc.decode(data), q.dequantize(q.quantize(x)))


def test_lloyd_max_round_trip(rng):
    x = relu_field(rng, (4, 16, 16))
    q = sc.lloyd_max(x, 6, 0.0, 2.0)
    np.testing.assert_array_equal(sc.decode(sc.FeatureCodec(q, "paper").encode(x)), q(x))


def test_torch_input_and_batch_shape(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(relu_field(rng, (2, 8, 12, 12)))
    q = sc.UniformQuantizer(0.0, 1.5, 8)
    y = sc.decode(sc.FeatureCodec(q).encode(x))
    assert y.shape == (2, 8, 12, 12)
    np.testing.assert_array_equal(y, q(x.numpy()))


def test_header_is_sixteen_bytes_for_uniform_3d():
    x = np.zeros((256, 52, 52), np.float32)
    for clip in [(0.0, 2.0), (-0.5, 3.5), (0.0, 2600.0)]:
        data = sc.FeatureCodec(sc.UniformQuantizer(*clip, 4)).encode(x)
        h = sc.decode_header(data)
        assert h.size == 16
        assert h.shape == (256, 52, 52) and h.levels == 4 and h.clip == clip
        assert h.context_model_name == "spatial" and not h.single_precision
    # a clip value not exact in half precision is sent in single precision, never rounded
    data = sc.FeatureCodec(sc.UniformQuantizer(-0.8, 3.5, 4)).encode(x)
    h = sc.decode_header(data)
    assert h.size == 20 and h.single_precision and h.clip == (float(np.float32(-0.8)), 3.5)


def test_header_records_context_model(rng):
    x = relu_field(rng, (2, 5, 5))
    q = sc.UniformQuantizer(0.0, 1.0, 3)
    assert sc.decode_header(sc.FeatureCodec(q, "paper").encode(x)).context_model_name == "paper"


def test_encode_rejects_bad_tensors():
    codec = sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4))
    with pytest.raises(QuantizerError):
        codec.encode(np.zeros((0, 3), np.float32))
    with pytest.raises(QuantizerError):
        codec.encode(np.zeros((1, 1, 1, 1, 1), np.float32))
    with pytest.raises(QuantizerError):
        codec.encode(np.array([1.0, np.nan], np.float32))
    with pytest.raises(TypeError):
        sc.FeatureCodec("uniform")


@given(
    arrays(np.float32, array_shapes(min_dims=1, max_dims=4, max_side=9),
           elements=st.floats(-10, 10, width=32)),
    st.integers(2, 256),
    st.sampled_from(["paper", "spatial"]),
)
def test_round_trip_property(x, levels, model):
    q = sc.UniformQuantizer(-2.0, 5.0, levels)
    np.testing.assert_array_equal(sc.decode(sc.FeatureCodec(q, model).encode(x)), q(x))


@pytest.mark.no_mutation
def test_codec_imports_neither_torch_nor_grpc():
    import subprocess
    import sys

    code = ("import sys, numpy as np, splitcodec as sc; "
            "sc.decode(sc.FeatureCodec(sc.UniformQuantizer(0, 1, 4)).encode(np.ones((2, 3, 3), np.float32))); "
            "print(sorted(m for m in ('torch', 'grpc', 'google.protobuf', 'cloud_app', 'edge_app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("levels,bad", [(256, [256, 257]), (4, [-1, 0]), (4, [0.0, 1.5]), (4, [1, 4])])
def test_encode_indices_checks_values_before_casting(levels, bad):
    codec = sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, levels))
    with pytest.raises(sc.QuantizerError, match="integers|in \\[0"):
        codec.encode_indices(np.array(bad))
    ok = np.array([0, levels - 1], dtype=np.int64)
    np.testing.assert_array_equal(sc.decode_indices(codec.encode_indices(ok))[0], ok)


# --- pinned after mutation testing -----------------------------------------------------------------

def test_rdo_lambda_is_dimensionless_scaling_the_tensor_and_clip_changes_nothing(rng):
    x = relu_field(rng, (4, 12, 12), scale=1.0)
    for lam in (0.05, 0.4, 3.0):
        base = sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0, 8), "spatial", rdo_lambda=lam)
        big = sc.FeatureCodec(sc.UniformQuantizer(0.0, 16.0, 8), "spatial", rdo_lambda=lam)
        a, ia = base.encode(x, return_indices=True)
        b, ib = big.encode(x * np.float32(8), return_indices=True)
        np.testing.assert_array_equal(ia, ib)  # (x - x̂)²/Δ² + λ·bits does not depend on the scale
        plain = sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0, 8), "spatial").encode(x, return_indices=True)[1]
        assert not np.array_equal(ia, plain)  # and λ > 0 changes the choice


def test_a_small_rdo_lambda_already_changes_the_stream_and_zero_does_not(rng):
    x = relu_field(rng, (2, 16, 16))
    q = sc.UniformQuantizer(0.0, 2.0, 4)
    plain = sc.FeatureCodec(q, "spatial").encode(x)
    assert sc.FeatureCodec(q, "spatial", rdo_lambda=0.0).encode(x) == plain
    assert sc.FeatureCodec(q, "spatial", rdo_lambda=0.9).encode(x) != plain


def test_codec_from_file_takes_the_files_context_model_and_lambda(tmp_path):
    from splitcodec.quantizer_file import save_quantizer

    q = sc.UniformQuantizer(0.0, 3.0, 8)
    bare = save_quantizer(tmp_path / "bare.json", q)
    c = sc.FeatureCodec.from_file(bare)
    assert c.context_model == sc.FeatureCodec(q, "spatial").context_model and c.rdo_lambda == 0.0
    assert c.quantizer == q
    full = save_quantizer(tmp_path / "full.json", q, context_model="paper", rdo_lambda=0.5)
    c = sc.FeatureCodec.from_file(full)
    assert c.context_model == sc.FeatureCodec(q, "paper").context_model and c.rdo_lambda == 0.5
    assert sc.FeatureCodec.from_file(full, context_model="spatial").context_model == sc.FeatureCodec(q).context_model


def test_codec_repr_names_quantizer_model_and_lambda():
    q = sc.UniformQuantizer(0.0, 1.0, 4)
    assert repr(sc.FeatureCodec(q, "paper")) == f"FeatureCodec({q!r}, context_model='paper')"
    assert repr(sc.FeatureCodec(q, "spatial", rdo_lambda=0.25)) == \
        f"FeatureCodec({q!r}, context_model='spatial', rdo_lambda=0.25)"
    full = sc.FeatureCodec(q, "spatial", rdo_lambda=0.5, channel_weights=[1, 2, 3], error_feedback=0.75,
                           rdo_lookahead=True)
    assert repr(full) == (f"FeatureCodec({q!r}, context_model='spatial', rdo_lambda=0.5, channel_weights=<3 values>, "
                          "error_feedback=0.75, rdo_lookahead=True)")
    assert repr(sc.FeatureCodec(q, rdo_lambda=0.5, error_feedback=0.5)).endswith("rdo_lambda=0.5, error_feedback=0.5)")
    assert repr(sc.FeatureCodec(q, error_feedback=0.5, error_diffusion="plane")).endswith(
        "context_model='spatial', error_feedback=0.5, error_diffusion='plane')")


def test_channel_weights_are_kept_as_float64_whatever_they_came_as():
    q = sc.UniformQuantizer(0.0, 1.0, 4)
    for given in ([1, 2, 3], np.array([1, 2, 3], np.int32), np.array([1, 2, 3], np.float32), (1.0, 2.0, 3.0)):
        w = sc.FeatureCodec(q, rdo_lambda=0.5, channel_weights=given).channel_weights
        assert w.dtype == np.float64 and w.tolist() == [1.0, 2.0, 3.0]


def test_bits_per_element_counts_the_whole_stream(rng):
    x = relu_field(rng, (3, 8, 8))
    c = sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0, 4))
    assert c.bits_per_element(x) == 8 * len(c.encode(x)) / x.size
    assert c.bits_per_element(x.tolist()) == c.bits_per_element(x)


def test_quantizer_from_header_rebuilds_the_encoders_quantizer():
    for q in (sc.UniformQuantizer(-1.5, 2.5, 6),
              sc.ScalarQuantizer.from_levels([0.0, 0.25, 1.0, 3.0])):
        data = sc.FeatureCodec(q).encode(np.linspace(-2, 3, 30, dtype=np.float32))
        h = sc.decode_header(data)
        back = sc.quantizer_from_header(h)
        assert back == q and back.kind == q.kind
        lv = sc.codec.reconstruction_levels(h)
        assert lv.dtype == np.float32
        np.testing.assert_array_equal(lv, q.reconstruction)


def test_header_and_index_decoding_honour_max_elements():
    data = sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4)).encode(np.zeros((4, 10, 10), np.float32))
    for fn in (sc.decode_header, sc.decode_indices, sc.decode):
        fn(data, max_elements=400)
        with pytest.raises(sc.errors.TensorTooLargeError):
            fn(data, max_elements=399)


def test_rdo_weight_is_lambda_times_step_squared_in_cost_units(rng):
    from splitcodec.entropy import coder

    x = relu_field(rng, (2, 10, 10))
    q = sc.UniformQuantizer(0.0, 2.0, 6)
    lam = 0.2
    data, idx = sc.FeatureCodec(q, "spatial", rdo_lambda=lam).encode(x, return_indices=True)
    mine = q.quantize(x).astype(np.uint8)
    payload = coder.encode_rdo(mine, x, q.reconstruction.astype(np.float64), 0.0, 2.0,
                               lam * q.step ** 2 / (1 << coder.COST_FRACTION_BITS), 6, "spatial")
    assert data.endswith(payload) and np.array_equal(mine, idx)


def test_a_scalar_travels_as_a_one_element_vector():
    c = sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4))
    out = sc.decode(c.encode(np.float32(0.7)))  # the stream's rank is at least 1 (docs/bitstream.md)
    assert out.shape == (1,) and out[0] == np.float32(c.quantizer.reconstruction[2])


def test_a_missing_codec_attribute_names_the_codec_and_options_read_through():
    c = sc.FeatureCodec(sc.UniformQuantizer(0.0, 1.0, 4), config=sc.EncoderConfig(rdo_lambda=0.25))
    assert c.rdo_lambda == 0.25 and c.error_diffusion == "row"
    with pytest.raises(AttributeError, match="'FeatureCodec' object has no attribute 'nope'"):
        c.nope
