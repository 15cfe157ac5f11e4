"""Frames of a sequence (bitstream v2): exact round trips, and a wrong or missing reference never decodes."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import splitcodec as sc
from splitcodec import bitstream
from splitcodec.entropy import coder
from splitcodec.errors import InvalidHeaderError, ReferenceFrameError, UnknownIdError

from .reference_engine import RefContext, reference_payload

Q = sc.UniformQuantizer(0.0, 2.0, 5)


def _frames(n, shape=(3, 5, 6), seed=0, step=0.05):
    """A slowly changing scene: each frame the previous one plus a little noise."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
    out = []
    for _ in range(n):
        out.append(x.copy())
        x = np.maximum(x + step * rng.normal(size=shape), 0).astype(np.float32)
    return out


def _dequantized(q, idx):
    return q.dequantize(idx)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 7), levels=st.integers(2, 9),
       shape=st.sampled_from([(1, 1, 1), (2, 3, 4), (4, 1, 7), (2, 2, 3, 3), (9,)]),
       step=st.sampled_from([0.0, 0.02, 0.3, 2.0]), refresh=st.lists(st.booleans(), min_size=7, max_size=7),
       period=st.sampled_from([None, 1, 2, 5]), lam=st.sampled_from([0.0, 0.1, 1.0]),
       temporal=st.booleans(), carry=st.booleans(), model=st.sampled_from(["paper", "spatial"]))
def test_any_sequence_round_trips_exactly(seed, n, levels, shape, step, refresh, period, lam, temporal, carry, model):
    q = sc.UniformQuantizer(-0.5, 2.5, levels)
    enc = sc.SequenceEncoder(sc.FeatureCodec(q, model, rdo_lambda=lam), refresh_period=period, temporal=temporal,
                             carry_state=carry)
    dec = sc.SequenceDecoder()
    since_intra = 0
    for i, x in enumerate(_frames(n, shape, seed, step)):
        if refresh[i]:
            enc.refresh()
        data, idx = enc.encode(x, return_indices=True)
        h = sc.decode_header(data)
        expect_intra = i == 0 or refresh[i] or (period is not None and since_intra >= period)
        assert h.predicted == (not expect_intra)
        assert (h.version, h.frame_number, h.sequence) == (2, i, enc.sequence_id)
        since_intra = 1 if expect_intra else since_intra + 1
        np.testing.assert_array_equal(dec.decode(data), _dequantized(q, idx))
        if lam == 0:  # plain quantization: the indices are the quantizer's whatever the frame type
            np.testing.assert_array_equal(idx, q.quantize(x))


def test_a_static_scene_costs_a_fraction_of_intra():
    frames = _frames(12, (8, 12, 12), seed=3, step=0.01)
    codec = sc.FeatureCodec(Q)
    enc = sc.SequenceEncoder(codec)
    intra = sum(len(codec.encode(x)) for x in frames[1:])
    streams = [enc.encode(x) for x in frames]
    assert sum(map(len, streams[1:])) < 0.5 * intra


def test_kernels_match_the_reference_engine_for_predicted_frames():
    frames = _frames(4, (3, 6, 7), seed=5, step=0.2)
    enc = sc.SequenceEncoder(sc.FeatureCodec(Q), refresh_period=None)
    ctxs = None
    prev = None
    for i, x in enumerate(frames):
        data, idx = enc.encode(x, return_indices=True)
        h = sc.decode_header(data)
        planes = idx.tolist()
        if i == 0:
            assert h.context_model == 1
            assert data[h.size:] == reference_payload(planes, Q.levels, "spatial")
        else:
            assert h.context_model == 2 and h.carry_state == (i > 1)
            if i == 1:
                ctxs = [RefContext() for _ in range(28 * (Q.levels - 1))]
            assert data[h.size:] == reference_payload(planes, Q.levels, "temporal", prev, ctxs)
        prev = planes


def _sequence(n=4, **kw):
    enc = sc.SequenceEncoder(sc.FeatureCodec(Q), **kw)
    return enc, [enc.encode(x) for x in _frames(n)]


def test_a_lost_frame_is_detected_and_the_state_kept():
    _, s = _sequence(5, refresh_period=None)
    dec = sc.SequenceDecoder()
    dec.decode(s[0])
    dec.decode(s[1])
    with pytest.raises(ReferenceFrameError, match="predicts from frame 2; the reference held is frame 1"):
        dec.decode(s[3])
    assert dec.reference.frame_number == 1  # unchanged
    dec.decode(s[2])  # the lost frame turns up: decoding continues
    dec.decode(s[3])


def test_reordered_frames_and_a_missing_start_are_detected():
    _, s = _sequence(4)
    dec = sc.SequenceDecoder()
    with pytest.raises(ReferenceFrameError, match="holds none"):
        dec.decode(s[1])
    dec.decode(s[0])
    with pytest.raises(ReferenceFrameError, match="frame was lost or reordered"):
        dec.decode(s[2])


def test_another_sequence_or_another_frame_with_the_same_number_is_detected():
    _, a = _sequence(3, sequence_id=5)
    _, b = _sequence(3, sequence_id=6)
    dec = sc.SequenceDecoder()
    dec.decode(a[0])
    with pytest.raises(ReferenceFrameError, match="sequence 00000006 predicts from its own sequence"):
        dec.decode(b[1])
    # the same sequence id and frame numbers, but other content: only the reference CRC tells them apart
    enc = sc.SequenceEncoder(sc.FeatureCodec(Q), sequence_id=5)
    other = [enc.encode(x) for x in _frames(3, seed=9)]
    with pytest.raises(ReferenceFrameError, match="was predicted from a frame with CRC"):
        dec.decode(other[1])
    dec.decode(a[1])  # the right frame still decodes after both refusals
    assert dec.reference.frame_number == 1


def test_after_a_loss_an_intra_refresh_resynchronises():
    enc = sc.SequenceEncoder(sc.FeatureCodec(Q), refresh_period=None)
    frames = _frames(6)
    s = [enc.encode(x) for x in frames[:3]]
    enc.refresh()  # the receiver reported the loss of s[1]
    s += [enc.encode(x) for x in frames[3:]]
    dec = sc.SequenceDecoder()
    dec.decode(s[0])
    for lost in (s[2],):
        with pytest.raises(ReferenceFrameError):
            dec.decode(lost)
    assert not sc.decode_header(s[3]).predicted
    for data, x in zip(s[3:], frames[3:]):
        np.testing.assert_array_equal(dec.decode(data), Q(x))


def test_plain_decode_reads_intra_frames_and_refuses_predicted_ones():
    _, s = _sequence(2)
    np.testing.assert_array_equal(sc.decode(s[0]), Q(_frames(1)[0]))
    for f in (sc.decode, sc.decode_indices):
        with pytest.raises(ReferenceFrameError, match="SequenceDecoder"):
            f(s[1])


def test_a_version_1_stream_decodes_and_leaves_no_reference():
    dec = sc.SequenceDecoder()
    _, s = _sequence(2)
    dec.decode(s[0])
    v1 = sc.FeatureCodec(Q).encode(_frames(1)[0])
    dec.decode(v1)
    assert dec.reference is None
    with pytest.raises(ReferenceFrameError):
        dec.decode(s[1])


def test_a_shape_change_makes_an_intra_frame():
    enc = sc.SequenceEncoder(sc.FeatureCodec(Q))
    enc.encode(_frames(1, (3, 5, 6))[0])
    assert not sc.decode_header(enc.encode(_frames(1, (3, 5, 7))[0])).predicted


def test_a_changed_quantizer_is_refused(monkeypatch):
    """A predicted frame must keep its reference's quantizer: a decoder given one that does not (same
    sequence, frame number and reference CRC) refuses it."""
    _, s = _sequence(2)
    h = sc.decode_header(s[1])
    other = dataclasses.replace(h, clip=(0.0, 3.0))
    payload = s[1][h.size:]
    forged = bitstream.write_header(other, payload) + payload
    dec = sc.SequenceDecoder()
    dec.decode(s[0])
    with pytest.raises(ReferenceFrameError, match="changes the quantizer"):
        dec.decode(forged)


def test_headers_that_break_the_frame_rules_are_rejected():
    _, s = _sequence(2)
    h = sc.decode_header(s[0])
    frame_at = h.size - 4 - 4 - 1 - 1  # crc32, sequence, frame number (1 byte), frame
    assert s[0][frame_at] == 0
    for value, error in ((0x04, "reserved frame bits"), (0x02, "cannot carry")):
        bad = bytearray(s[0])
        bad[frame_at] = value
        with pytest.raises(InvalidHeaderError, match=error):
            sc.decode(bytes(bad))
    temporal_intra = bytearray(s[0])
    temporal_intra[2] = (temporal_intra[2] & ~3) | 2
    with pytest.raises(InvalidHeaderError, match="predicted frames only"):
        sc.decode(bytes(temporal_intra))
    v1 = bytearray(sc.FeatureCodec(Q).encode(_frames(1)[0]))
    v1[2] = (v1[2] & ~3) | 2  # the temporal model does not exist in version 1
    with pytest.raises(UnknownIdError, match="version 1"):
        sc.decode(bytes(v1))


def test_coder_entry_points_check_reference_and_state():
    idx = Q.quantize(_frames(1)[0])
    with pytest.raises(ValueError, match="needs the reference"):
        coder.encode_indices(idx, Q.levels, "temporal")
    with pytest.raises(ValueError, match="has 3 indices"):
        coder.encode_indices(idx, Q.levels, "temporal", ref=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="only the temporal"):
        coder.encode_indices(idx, Q.levels, "spatial", ref=idx)
    with pytest.raises(ValueError, match="must hold"):
        coder.encode_indices(idx, Q.levels, "spatial", state=(np.zeros(3, np.int32), np.zeros(3, np.int32)))


def test_encoder_config_refuses_the_temporal_model():
    with pytest.raises(sc.QuantizerError, match="SequenceEncoder"):
        sc.EncoderConfig(context_model="temporal")


def test_each_side_holds_one_reference():
    enc = sc.SequenceEncoder(sc.FeatureCodec(Q))
    dec = sc.SequenceDecoder()
    for x in _frames(20):
        dec.decode(enc.encode(x))
    assert enc._ref.indices.size == dec._ref.indices.size == _frames(1)[0].size
    assert len(vars(dec)) == 2  # max_elements and the one reference: nothing accumulates
