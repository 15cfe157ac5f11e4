import numpy as np
import pytest

from splitcodec.entropy import code_length_bits, decode_indices, encode_indices, engine, trace_bins
from splitcodec.errors import TrailingBytesError, TruncatedPayloadError, UnknownIdError

from .conftest import relu_field
from .reference_engine import reference_payload


def _indices(rng, shape, levels, p=0.55):
    return np.minimum(rng.geometric(p, size=shape) - 1, levels - 1).astype(np.uint8)


@pytest.mark.parametrize("model", ["paper", "spatial"])
@pytest.mark.parametrize("levels", [2, 3, 4, 7, 16])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 7), (3, 1, 9), (1, 8, 1), (4, 6, 6)])
def test_kernel_matches_python_reference(rng, model, levels, shape):
    idx = _indices(rng, shape, levels)
    planes = [[list(map(int, row)) for row in plane] for plane in idx]
    assert encode_indices(idx, levels, model) == reference_payload(planes, levels, model)


def test_reference_parity_exercises_carries(rng):
    # long skewed runs make low overflow often; parity must survive carry propagation
    idx = (rng.random((2, 40, 40)) < 0.03).astype(np.uint8)
    planes = [[list(map(int, row)) for row in plane] for plane in idx]
    assert encode_indices(idx, 2, "spatial") == reference_payload(planes, 2, "spatial")


@pytest.mark.parametrize("model", ["paper", "spatial"])
@pytest.mark.parametrize("levels", [2, 3, 4, 5, 8, 64, 256])
def test_round_trip(rng, model, levels):
    idx = _indices(rng, (3, 13, 11), levels, p=0.2)
    data = encode_indices(idx, levels, model)
    np.testing.assert_array_equal(decode_indices(data, idx.shape, levels, model), idx)


def test_extreme_symbols_round_trip(rng):
    for levels in (2, 4, 256):
        for fill in (0, levels - 1):
            idx = np.full((2, 9, 9), fill, dtype=np.uint8)
            data = encode_indices(idx, levels, "spatial")
            np.testing.assert_array_equal(decode_indices(data, idx.shape, levels, "spatial"), idx)


def test_uniform_random_high_levels_grows_buffer(rng):
    # incompressible for truncated unary: forces the encoder to enlarge its buffer
    idx = rng.integers(0, 256, size=(1, 30, 30), dtype=np.uint8)
    data = encode_indices(idx, 256, "paper")
    assert len(data) > idx.size  # ~128 bins per index
    np.testing.assert_array_equal(decode_indices(data, idx.shape, 256, "paper"), idx)


def test_within_two_percent_of_ideal_code_length(rng):
    x = relu_field(rng, (64, 52, 52))
    idx = np.minimum(np.floor(x / 0.5 + 0.5), 3).astype(np.uint8)
    for model in ("paper", "spatial"):
        actual = 8 * len(encode_indices(idx, 4, model))
        bins, p0 = trace_bins(idx, 4, model)
        ideal = code_length_bits(bins, p0)
        assert ideal <= actual <= 1.02 * ideal


def test_spatial_beats_paper_on_correlated_data(rng):
    idx = np.minimum(np.floor(relu_field(rng, (32, 40, 40)) / 0.4 + 0.5), 7).astype(np.uint8)
    paper = len(encode_indices(idx, 8, "paper"))
    spatial = len(encode_indices(idx, 8, "spatial"))
    assert spatial < 0.95 * paper


def test_truncated_and_extended_payloads(rng):
    idx = _indices(rng, (2, 10, 10), 4)
    data = encode_indices(idx, 4, "spatial")
    with pytest.raises(TruncatedPayloadError):
        decode_indices(data[:-1], idx.shape, 4, "spatial")
    with pytest.raises(TruncatedPayloadError):
        decode_indices(data[:3], idx.shape, 4, "spatial")
    with pytest.raises(TrailingBytesError):
        decode_indices(data + b"\x00", idx.shape, 4, "spatial")


def test_unknown_model():
    with pytest.raises(UnknownIdError):
        encode_indices(np.zeros((1, 2, 2), np.uint8), 2, "nope")


# --- decoding cost is bounded by the payload (docs/bitstream.md §3) -----------------------------


def test_payload_capacity_bound_admits_the_cheapest_valid_streams_and_is_tight():
    # the fewest payload bytes per bin a valid stream can reach: one always-zero bin per element
    for elements in (1, 1000, 200_000, 2_000_000):
        data = encode_indices(np.zeros(elements, np.uint8), 2, "paper")
        assert elements <= engine.max_bins(len(data)), elements
    assert elements > 0.9 * engine.max_bins(len(data))  # the bound is within 10 % of what a stream reaches
    # the most bins per byte: N = 256, every index 255
    idx = np.full(300_000, 255, np.uint8)
    data = encode_indices(idx, 256, "spatial")
    bins, _ = trace_bins(idx, 256, "spatial")
    assert bins.size <= engine.max_bins(len(data))
    assert bins.size > 0.9 * engine.max_bins(len(data))


def test_payload_too_short_for_the_shape_is_rejected_before_allocating():
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(TruncatedPayloadError, match="at most"):
        decode_indices(b"\x00" * 8, (1 << 26,), 4, "spatial")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 16
    with pytest.raises(TruncatedPayloadError):
        decode_indices(b"\x00" * 3, (1,), 4, "spatial")  # under 4 bytes: no element fits


def test_decoding_needs_no_scratch_of_the_tensor_size():
    import tracemalloc

    for shape in [(1 << 20,), (4, 512, 512)]:
        idx = (np.arange(np.prod(shape)) % 3 == 0).astype(np.uint8).reshape(shape)
        data = encode_indices(idx, 2, "spatial")
        table = np.array([0.0, 1.0], np.float32)
        tracemalloc.start()
        values = decode_indices(data, shape, 2, "spatial", table=table, indices=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(values, table[idx])
        assert peak - values.nbytes <= 4 * (shape[-1] + 2) + 4096, (shape, peak)


# --- defaults, types and sub-buffers (pinned after mutation testing) --------------------------------

def _idx(shape=(3, 6, 7), levels=5, seed=0):
    return np.random.default_rng(seed).integers(0, levels, size=shape).astype(np.uint8)


def test_the_default_context_model_is_spatial():
    from splitcodec.entropy import coder

    idx = _idx()
    assert encode_indices(idx, 5) == encode_indices(idx, 5, "spatial") != encode_indices(idx, 5, "paper")
    b, p = trace_bins(idx, 5)
    b2, p2 = trace_bins(idx, 5, "spatial")
    np.testing.assert_array_equal(p, p2)
    assert b.dtype == np.uint8 and p.dtype == np.int32 and b.shape == p.shape
    x = np.random.default_rng(1).random(idx.shape).astype(np.float32) * 4
    rec = np.arange(5, dtype=np.float64)
    q = idx.copy()
    a = coder.encode_rdo(q, x, rec, 0.0, 4.0, 0.5, 5)
    q2 = idx.copy()
    assert a == coder.encode_rdo(q2, x, rec, 0.0, 4.0, 0.5, 5, "spatial")


def test_trace_bins_takes_any_integer_indices_of_any_shape():
    idx = _idx((2, 4, 5), levels=4)
    b, p = trace_bins(idx.astype(np.int64), 4, "paper")
    b8, p8 = trace_bins(idx, 4, "paper")
    np.testing.assert_array_equal(b, b8)
    np.testing.assert_array_equal(p, p8)
    b1, _ = trace_bins(idx.reshape(-1), 4, "paper")  # paper contexts ignore the layout
    np.testing.assert_array_equal(b1, b8)
    assert b.size == int(np.minimum(idx.astype(np.int64) + 1, 3).sum())
    assert code_length_bits(b, p) == pytest.approx(
        float(-np.sum(np.where(b == 0, np.log2(p / 2**15), np.log2(1 - p / 2**15)))), rel=1e-12)


def test_encoding_checks_indices_unless_told_not_to():
    idx = _idx(levels=5)
    bad = idx.copy()
    bad[0, 0, 0] = 5
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        encode_indices(bad, 5)
    with pytest.raises(ValueError, match="integers"):
        encode_indices(idx.astype(np.float32), 5)
    assert encode_indices(idx.astype(np.int32), 5) == encode_indices(idx, 5)  # any integer type


def test_decoding_a_payload_inside_a_larger_buffer():
    idx = _idx()
    payload = encode_indices(idx, 5, "spatial")
    buf = b"\xAA" * 7 + payload + b"\x55" * 5
    out = decode_indices(buf, idx.shape, 5, "spatial", start=7, end=7 + len(payload))
    np.testing.assert_array_equal(out, idx)
    assert out.dtype == np.uint8 and out.shape == idx.shape
    table = np.linspace(-1, 1, 5)
    i2, v2 = decode_indices(buf, idx.shape, 5, "spatial", start=7, end=7 + len(payload), table=table)
    np.testing.assert_array_equal(i2, idx)
    assert v2.dtype == np.float32 and v2.shape == idx.shape
    np.testing.assert_array_equal(v2, np.float32(table)[idx])
    v3 = decode_indices(payload, idx.shape, 5, "spatial", table=table, indices=False)
    np.testing.assert_array_equal(v3, v2)
    with pytest.raises(ValueError, match="bounds"):
        decode_indices(buf, idx.shape, 5, "spatial", start=7, end=len(buf) + 1)
    with pytest.raises(ValueError, match="table must have 5"):
        decode_indices(payload, idx.shape, 5, "spatial", table=np.zeros(4))
    with pytest.raises(ValueError, match="nothing to return"):
        decode_indices(payload, idx.shape, 5, "spatial", indices=False)
    # the capacity check counts only the payload's own bytes, not the buffer's
    with pytest.raises(TruncatedPayloadError):
        decode_indices(b"\0" * 64 + payload[:4], (1, 1, 20_000), 5, "spatial", start=64, end=68)


def test_the_capacity_bound_is_exclusive_of_the_bin_count():
    assert engine.max_bins(3) == 0 and engine.max_bins(0) == 0 and engine.max_bins(2) == 0
    assert engine.max_bins(4) == engine.MAX_BINS_PER_BYTE and engine.max_bins(10) == 7 * engine.MAX_BINS_PER_BYTE


def test_the_encoder_grows_its_buffer_until_the_stream_fits():
    from splitcodec.entropy import coder

    rng = np.random.default_rng(2)
    idx = rng.integers(0, 256, size=(1, 40, 40)).astype(np.uint8)  # incompressible: beyond the first guess
    assert coder._initial_capacity(idx.size, 256) < len(encode_indices(idx, 256, "paper")) * 2
    out = decode_indices(encode_indices(idx, 256, "paper"), idx.shape, 256, "paper")
    np.testing.assert_array_equal(out, idx)
    empty = np.zeros((0,), np.uint8)
    assert decode_indices(encode_indices(empty, 4, "paper"), (0,), 4, "paper").size == 0


def test_context_counts_and_state():
    from splitcodec.entropy import contexts

    assert contexts.n_contexts(contexts.context_model_id("paper"), 5) == 4
    assert contexts.n_contexts(contexts.context_model_id("spatial"), 5) == contexts.SPATIAL_CLASSES * 4
    assert contexts.n_contexts(contexts.TEMPORAL, 5) == contexts.TEMPORAL_CLASSES * contexts.SPATIAL_CLASSES * 4
    fast, slow = engine.new_state(6)
    assert fast.dtype == slow.dtype == np.int32 and fast.shape == (6,)
    assert np.all(fast == engine.PROB_INIT) and np.all(slow == engine.PROB_INIT)


def test_plane_geometry_stacks_leading_axes():
    from splitcodec.entropy.coder import plane_geometry

    assert plane_geometry(()) == (1, 1, 1)
    assert plane_geometry((5,)) == (1, 1, 5)
    assert plane_geometry((2, 3)) == (1, 2, 3)
    assert plane_geometry((4, 2, 3)) == (4, 2, 3)
    assert plane_geometry((2, 2, 2, 3)) == (4, 2, 3)


def test_trace_bins_checks_the_indices():
    with pytest.raises(ValueError):
        trace_bins(np.array([[5]]), 4)


def test_rdo_entry_point_checks_its_buffers():
    from splitcodec.entropy import coder

    idx = np.zeros((2, 3), np.uint8)
    x, rec = np.zeros((2, 3), np.float32), np.arange(4.0)
    coder.encode_rdo(idx.copy(), x, rec, 0.0, 3.0, 0.1, 4)
    ro = idx.copy()
    ro.flags.writeable = False
    for bad in (idx.astype(np.int64), np.zeros((3, 2), np.uint8).T, ro):
        with pytest.raises(ValueError, match="writable contiguous uint8"):
            coder.encode_rdo(bad, x, rec, 0.0, 3.0, 0.1, 4)
    with pytest.raises(ValueError, match="differ in size"):
        coder.encode_rdo(idx.copy(), np.zeros(5, np.float32), rec, 0.0, 3.0, 0.1, 4)
    with pytest.raises(ValueError, match="need 4"):
        coder.encode_rdo(idx.copy(), x, np.arange(3.0), 0.0, 3.0, 0.1, 4)


def test_rdo_entry_point_checks_weights_and_feedback(rng):
    from splitcodec.entropy import coder

    x = (rng.random((4, 5, 6)) * 3).astype(np.float32)
    idx = np.clip(np.rint(x), 0, 3).astype(np.uint8)
    rec = np.arange(4.0)
    run = lambda w, f=0.0: coder.encode_rdo(idx.copy(), x, rec, 0.0, 3.0, w, 4, feedback=f)
    for w in (-0.5, [0.5, -0.1, 0.5, 0.5], np.nan, [0.5, 0.5, np.inf, 0.5]):
        with pytest.raises(ValueError, match="finite and >= 0"):
            run(w)
    for f in (-0.01, 1.01, 1.5):
        with pytest.raises(ValueError, match="feedback"):
            run(0.5, f)
    with pytest.raises(ValueError, match="one RDO weight per plane"):
        run([0.5, 0.5])
    per_plane = np.array([0.1, 0.9, 0.4, 2.0]) / 2 ** 15  # weights are per 2^-15 bit
    # one weight per plane in any shape that holds `planes` values; a single weight is every plane's
    assert run(per_plane.reshape(2, 2)) == run(per_plane) != run(0.1 / 2 ** 15)
    w = 0.7 / 2 ** 15
    assert run(w) == run(np.full(4, w)) == run([[w]])
    assert run(w, 1.0) != run(w, 0.0)


def test_a_short_payload_is_refused_before_decoding_by_the_capacity_bound():
    payload = encode_indices(np.zeros((1, 1, 8), np.uint8), 4, "paper")
    with pytest.raises(TruncatedPayloadError, match="can code at most"):
        decode_indices(b"\0" * 64 + payload, (1, 100, 100), 4, "paper", start=64, end=64 + len(payload))
