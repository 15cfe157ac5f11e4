"""Rate control on recorded activations: EfficientNet-Lite0 (trained weights) at the demo's split over a camera pan
across two shipped photos, with a cut between them.  No network."""

import numpy as np
import pytest

import splitcodec as sc
from splitcodec.errors import QuantizerError
from splitcodec.ratecontrol import LAMBDA_GRID, RateController

torch = pytest.importorskip("torch")

FPS = 30


@pytest.fixture(scope="module")
def activations():
    """120 frames (4 s at 30 fps): 60 of a pan over one photo, a cut, 60 over another."""
    from splitcodec.datasets import shipped_photos
    from splitcodec.models import split_model

    frames = []
    for _, img in shipped_photos(("astronaut", "coffee")):
        side = min(img.shape[:2]) - 60
        frames += [img[i // 2:i // 2 + side, 2 * i:2 * i + side] for i in range(60)]
    split = split_model("efficientnet_lite0", "blocks.13", weights="DEFAULT")
    feats = np.concatenate([split.features(frames[i:i + 20]).numpy() for i in range(0, len(frames), 20)])
    return feats


@pytest.fixture(scope="module")
def codec(activations):
    q = sc.UniformQuantizer(float(np.percentile(activations, 0.1)), float(np.percentile(activations, 99.9)), 8)
    return sc.FeatureCodec(q.zero_level())


def natural_bytes_per_frame(codec, activations) -> float:
    enc = sc.SequenceEncoder(codec)
    return float(np.mean([len(enc.encode(x)) for x in activations]))


def window_rates(sizes, seconds=2.0, after_s=1.0):
    """bit/s of every ``seconds`` window (in frames, sliding by one) that starts after ``after_s``."""
    n = int(seconds * FPS)
    b = np.asarray(sizes[int(after_s * FPS):], dtype=np.float64)
    return np.convolve(b, np.ones(n), "valid") * 8 / seconds


@pytest.mark.parametrize("share", [0.4, 0.7])
def test_every_two_second_window_holds_the_target_and_the_buffer_never_overflows(codec, activations, share):
    target = share * natural_bytes_per_frame(codec, activations) * 8 * FPS
    rc = RateController(codec, bitrate=target, fps=FPS)
    decisions = [rc.encode(x) for x in activations]
    sizes = [0 if d.skipped else len(d.data) for d in decisions]
    rates = window_rates(sizes)
    assert rates.min() >= 0.9 * target and rates.max() <= 1.1 * target, (rates.min() / target, rates.max() / target)
    assert max(d.fullness for d in decisions) <= rc.buffer_bytes
    assert all(d.fullness <= rc.buffer_bytes and (d.skipped or len(d.data) <= rc.buffer_bytes) for d in decisions)
    assert any(d.rdo_lambda > 0 for d in decisions)  # the controller did work to hold the rate


def test_the_sent_frames_decode_as_one_sequence_with_n_changing_only_at_intra_frames(codec, activations):
    rate = 0.25 * natural_bytes_per_frame(codec, activations) * 8 * FPS  # tight: N steps down, frames are skipped
    rc = RateController(codec, bitrate=rate, fps=FPS, refresh_period=16)
    sent = [d for d in (rc.encode(x) for x in activations) if not d.skipped]
    dec = sc.SequenceDecoder()
    levels = []
    for d in sent:  # a skipped frame never reached the decoder: no ReferenceFrameError, ever
        dec.decode(d.data)
        h = sc.decode_header(d.data)
        assert h.levels == d.levels and h.predicted == (not d.intra)
        if levels and h.levels != levels[-1]:
            assert not h.predicted, "N changed on a predicted frame"
        levels.append(h.levels)
    assert min(levels) < 8 and min(levels) >= rc.min_levels == 6
    assert len(sent) < len(activations)  # this rate cannot carry every frame: some skipped, none overflowed


def test_a_new_bitrate_is_followed_within_two_seconds(codec, activations):
    natural = natural_bytes_per_frame(codec, activations) * 8 * FPS
    rc = RateController(codec, bitrate=0.8 * natural, fps=FPS)
    frames = np.concatenate([activations, activations[::-1]])
    sizes = []
    for i, x in enumerate(frames):
        if i == 120:
            rc.set_bitrate(0.4 * natural)
        d = rc.encode(x, at=i / FPS)
        sizes.append(0 if d.skipped else len(d.data))
    after = window_rates(sizes[120:], seconds=2.0, after_s=0.5)
    assert after.max() <= 1.1 * 0.4 * natural and after.min() >= 0.9 * 0.4 * natural


def test_capture_times_drain_the_buffer_for_frames_never_offered(codec, activations):
    rate = 0.5 * natural_bytes_per_frame(codec, activations) * 8 * FPS
    every, paced = RateController(codec, bitrate=rate, fps=FPS), RateController(codec, bitrate=rate, fps=FPS)
    for i, x in enumerate(activations[:40]):
        every.encode(x, at=i / FPS)
        if i % 2 == 0:  # half the frames, at their capture times: twice the bytes each may take
            paced.encode(x, at=i / FPS)
    lam_every = np.mean([every.encode(x, at=(40 + i) / FPS).rdo_lambda for i, x in enumerate(activations[40:60])])
    lam_paced = np.mean([paced.encode(x, at=(40 + 2 * i) / FPS).rdo_lambda
                         for i, x in enumerate(activations[40:60:2])])
    assert lam_paced < lam_every


def test_at_a_rate_the_stream_fits_nothing_changes(codec, activations):
    enc = sc.SequenceEncoder(codec, sequence_id=5)
    fixed = [enc.encode(x) for x in activations]
    rate = 3 * np.mean([len(s) for s in fixed]) * 8 * FPS
    rc = RateController(codec, bitrate=rate, fps=FPS, sequence_id=5)
    assert [rc.encode(x).data for x in activations] == fixed  # λ 0, the file's N, byte for byte


def test_pending_frames_are_not_sent_until_committed(codec, activations):
    enc = sc.SequenceEncoder(codec, sequence_id=1)
    first, pending = enc.encode_pending(activations[0])
    assert enc.frame_number == 0 and enc.next_is_intra
    enc.commit(pending)
    _, stale = enc.encode_pending(activations[1])
    enc.encode(activations[1])
    with pytest.raises(QuantizerError, match="not this encoder's next frame"):
        enc.commit(stale)
    dec = sc.SequenceDecoder()
    dec.decode(first)


@pytest.mark.parametrize("kwargs, match", [
    ({"bitrate": 0}, "bitrate must be a positive"), ({"bitrate": float("nan")}, "bitrate must be a positive"),
    ({"fps": -1}, "fps must be"), ({"bufsize_ms": "x"}, "bufsize_ms must be"),
    ({"lambda_max": 0}, "lambda_max"), ({"lambda_max": LAMBDA_GRID[-1] * 2}, "lambda_max"),
    ({"min_levels": 9}, "min_levels"), ({"min_levels": 1}, "min_levels"),
])
def test_bad_settings_are_refused(codec, kwargs, match):
    with pytest.raises(QuantizerError, match=match):
        RateController(codec, **{"bitrate": 1e5, "fps": 30, **kwargs})


def test_a_buffer_smaller_than_any_frame_grows_to_hold_the_cheapest_one(codec, activations):
    """A frame is sent whole or not at all: a buffer that holds none would send nothing, ever.  It grows to hold
    the cheapest frame (and says so), never overflows what it has grown to, and shrinks back once frames fit."""
    rc = RateController(codec, bitrate=8 * 1000, fps=FPS, bufsize_ms=100)  # a 100-byte buffer
    first = rc.encode(activations[0], at=0.0)
    assert first.skipped and first.cheapest > 100 and rc.grown and rc.buffer_bytes >= first.cheapest
    decisions = [rc.encode(x, at=(1 + i) / FPS) for i, x in enumerate(activations[1:60])]
    sent = [d for d in decisions if not d.skipped]
    assert sent and sent[0].intra  # the start, once the grown buffer had drained enough
    assert all(d.fullness <= d.buffer for d in decisions)
    assert all(len(d.data) <= d.buffer for d in sent)
    rc.set_bitrate(1e7)  # a link that fits: the nominal buffer holds the frames again
    assert not rc.grown


def test_a_periodic_intra_frame_with_no_room_is_deferred_and_the_stream_goes_on(codec, activations):
    cheapest = sc.SequenceEncoder(sc.FeatureCodec(codec.quantizer, config=codec.config.merged(
        rdo_lambda=LAMBDA_GRID[-1])))
    sizes = [len(cheapest.encode(x)) for x in activations[:4]]
    intra, predicted = sizes[0], max(sizes[1:])
    assert predicted < intra
    rc = RateController(codec, bitrate=4 * intra * 8 * FPS, fps=FPS, refresh_period=10, min_levels=8)
    first = rc.encode(activations[0], at=0.0)
    assert first.intra and not first.skipped
    # a buffer that holds the cheapest predicted frame but not the cheapest intra frame (emptied by a pause)
    rc.set_bitrate((predicted + intra) / 2 * 8 / (rc.bufsize_ms / 1e3))
    later = [rc.encode(x, at=1.0 + i / FPS) for i, x in enumerate(activations[1:40])]
    assert not any(d.intra for d in later if not d.skipped)  # every refresh was deferred, none overflowed
    assert sum(not d.skipped for d in later) > 20
    dec = sc.SequenceDecoder()
    for d in [first] + later:
        if not d.skipped:
            dec.decode(d.data)


def test_a_new_quantizer_starts_the_sequence_afresh(codec, activations):
    enc = sc.SequenceEncoder(codec)
    enc.encode(activations[0])
    enc.codec = sc.FeatureCodec(sc.UniformQuantizer(codec.quantizer.c_min, codec.quantizer.c_max, 5))
    assert not sc.decode_header(enc.encode(activations[1])).predicted
    assert sc.decode_header(enc.encode(activations[2])).predicted
