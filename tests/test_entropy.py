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
