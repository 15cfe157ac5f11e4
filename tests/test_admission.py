"""What the server admits and the status each refusal gets: cloud_app/admission.py (no network)."""

import dataclasses
from types import SimpleNamespace

import pytest

grpc = pytest.importorskip("grpc")

from cloud_app import admission  # noqa: E402
from cloud_app.admission import (Abort, Envelope, Limits, check_inflight, check_size, check_token,  # noqa: E402
                                 default_max_levels, status_for)
from splitcodec import errors  # noqa: E402
from splitcodec.inference import FeatureShapeError  # noqa: E402

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def md(*values, key="authorization"):
    return [(key, v) for v in values]


def test_auth_accepts_exactly_one_bearer_header_with_the_token():
    check_token(md("Bearer s3cret"), "s3cret")
    check_token(md("bearer s3cret"), "s3cret")  # the scheme is case-insensitive
    check_token(md("BEARER  s3cret"), "s3cret")  # surrounding blanks of the token are not part of it
    check_token(md("Bearer s3cret", key="Authorization"), "s3cret")  # header names are case-insensitive
    check_token([("x-other", "1")] + md("Bearer s3cret"), "s3cret")


@pytest.mark.parametrize("metadata, why", [
    ([], "missing bearer token"),
    (None, "missing bearer token"),
    ([("x-other", "Bearer s3cret")], "missing bearer token"),
    (md("Bearer wrong"), "wrong bearer token"),
    (md("Bearer s3cret", "Bearer s3cret"), "more than one authorization header"),
    (md("Bearer wrong", "Bearer s3cret"), "more than one authorization header"),
    (md("Basic s3cret"), "wrong bearer token"),
    (md("s3cret"), "wrong bearer token"),
    (md("Bearer s3cret2"), "wrong bearer token"),
    (md("Bearer"), "wrong bearer token"),
])
def test_auth_refusals_are_unauthenticated_and_say_why(metadata, why):
    with pytest.raises(Abort) as e:
        check_token(metadata, "s3cret")
    assert e.value.code == UNAUTH and e.value.message == why and e.value.retry_after_ms is None


def test_no_token_configured_means_open():
    check_token([], None)
    check_token(md("Bearer anything"), None)


@pytest.mark.parametrize("error, code", [
    (errors.TensorTooLargeError("too big"), EXHAUSTED),
    (errors.ChecksumError("crc"), INVALID),
    (errors.TruncatedPayloadError("short"), INVALID),
    (errors.BadMagicError("magic"), INVALID),
    (FeatureShapeError("shape"), INVALID),
])
def test_library_errors_map_to_their_status(error, code):
    a = status_for(error)
    assert a.code == code and str(error) in a.message and not a.tarpit and a.retry_after_ms is None
    if code == INVALID:
        assert a.message.startswith(type(error).__name__ + ": ")  # the class tells the client what was wrong


def test_a_lost_reference_is_failed_precondition_naming_the_error():
    a = status_for(errors.ReferenceFrameError("no reference frame held"))
    assert a.code == grpc.StatusCode.FAILED_PRECONDITION and not a.tarpit
    assert a.message == "ReferenceFrameError: no reference frame held"  # the client then sends an intra frame


def test_errors_that_are_not_the_callers_fault_map_to_no_status():
    assert status_for(RuntimeError("tail crashed")) is None
    assert status_for(ValueError("plain")) is None


def test_message_size_limit_is_inclusive():
    lim = Limits(max_message_bytes=100)
    check_size(100, lim)
    with pytest.raises(Abort) as e:
        check_size(101, lim)
    assert e.value.code == EXHAUSTED and "101" in e.value.message and "100" in e.value.message


def test_inflight_limit_refuses_at_the_limit_with_a_retry_hint():
    lim = Limits(max_inflight=3)
    check_inflight(2, lim)
    for n in (3, 4):
        with pytest.raises(Abort) as e:
            check_inflight(n, lim)
        assert e.value.code == EXHAUSTED and e.value.retry_after_ms == admission.INFLIGHT_RETRY_MS > 0
        assert not e.value.tarpit


class FakeTail:
    def __init__(self, levels=8, error=None):
        self.split = SimpleNamespace(name="m", split="s")
        self.levels, self.error, self.seen = levels, error, []

    def check_header(self, data):
        self.seen.append(data)
        if self.error is not None:
            raise self.error
        return SimpleNamespace(levels=self.levels)


def test_envelope_admits_up_to_max_levels():
    for n in (2, 16):
        h = Envelope(FakeTail(levels=n), max_levels=16).admit(b"stream")
        assert h.levels == n
    with pytest.raises(Abort) as e:
        Envelope(FakeTail(levels=17), max_levels=16).admit(b"stream")
    assert e.value.code == INVALID and "N=17" in e.value.message and "at most 16" in e.value.message


@pytest.mark.parametrize("error, code", [
    (errors.TensorTooLargeError("too big"), EXHAUSTED),
    (errors.InvalidHeaderError("bad"), INVALID),
    (FeatureShapeError("transposed"), INVALID),
])
def test_envelope_maps_header_errors(error, code):
    tail = FakeTail(error=error)
    with pytest.raises(Abort) as e:
        Envelope(tail, 16).admit(b"hdr")
    assert e.value.code == code and tail.seen == [b"hdr"]


def test_envelope_lets_other_errors_through():
    with pytest.raises(RuntimeError):
        Envelope(FakeTail(error=RuntimeError("bug")), 16).admit(b"x")


def test_default_max_levels_is_the_largest_n_in_use_and_at_least_the_floor():
    floor = admission.DEFAULT_MAX_LEVELS_FLOOR
    assert floor == 16
    assert default_max_levels({}) == floor
    assert default_max_levels({("no_such_model", "paper"): None}) == floor
    assert default_max_levels({("efficientnet_lite0", "paper"): None}) == 24  # its known operating point
    spec = SimpleNamespace(levels=64)
    assert default_max_levels({}, [spec, SimpleNamespace(levels=None)]) == 64
    assert default_max_levels({}, [SimpleNamespace(levels=4)]) == floor


def test_limit_defaults_match_the_documented_ones():
    lim = Limits()
    assert (lim.max_message_bytes, lim.max_levels, lim.max_inflight, lim.max_queue_ms, lim.decode_workers,
            lim.stream_idle_s, lim.max_stream_frames) == (None, None, 64, 150.0, 2, 60.0, 1_000_000)
    assert (lim.max_concurrent_rpcs, lim.max_streams_per_connection, lim.connection_idle_s, lim.connection_age_s,
            lim.max_anonymous_streams, lim.anonymous_stream_s) == (256, 100, 300.0, 3600.0, 16, 300.0)
    assert set(admission.LIMIT_HELP) == {f.name for f in dataclasses.fields(Limits)}  # every limit has its flag's help


def test_message_limit_is_sized_from_the_envelope():
    tails = {("m", "s"): SimpleNamespace(feature_shape=(672, 14, 14))}
    # 131712 elements at ceil(log2 24) = 5 bits, twice, plus header room
    assert admission.default_max_message_bytes(tails, 24) == 2 * 131712 * 5 // 8 + 4096
    big = {("m", "s"): SimpleNamespace(feature_shape=(672, 28, 28)), ("m", "t"): SimpleNamespace(feature_shape=(8, 8))}
    assert admission.default_max_message_bytes(big, 2) == 2 * 526848 // 8 + 4096  # the largest served split
    assert admission.default_max_message_bytes({("m", "s"): SimpleNamespace(feature_shape=(4, 4))}, 8) == 64 << 10
    huge = {("m", "s"): SimpleNamespace(feature_shape=(512, 512, 512))}
    assert admission.default_max_message_bytes(huge, 256) == 16 << 20
    # N = 17 needs 5 bits (indices 0..16), N = 16 only 4
    assert admission.default_max_message_bytes(tails, 17) == 2 * 131712 * 5 // 8 + 4096
    assert admission.default_max_message_bytes(tails, 16) == 2 * 131712 * 4 // 8 + 4096
    assert admission.default_max_message_bytes({}, 24) == 64 << 10  # nothing served: the floor


def _request(**kw):
    from splitcodec.wire import pb

    return pb.InferRequest(**kw)


@pytest.mark.parametrize("fields,ok", [
    ({}, True), ({"top_k": admission.MAX_TOP_K}, True), ({"top_k": admission.MAX_TOP_K + 1}, False),
    ({"original_size": {"width": 640, "height": 480}}, True), ({"original_size": {"width": 0, "height": 480}}, False),
    ({"original_size": {"width": 640, "height": admission.MAX_IMAGE_SIDE + 1}}, False),
    ({"original_size": {"width": admission.MAX_IMAGE_SIDE, "height": 1}}, True),
    ({"original_size": {"width": 1, "height": admission.MAX_IMAGE_SIDE}}, True),
    ({"original_size": {"width": 640, "height": 0}}, False),
    ({"original_size": {"width": admission.MAX_IMAGE_SIDE + 1, "height": 480}}, False),
])
def test_request_fields(fields, ok):
    req = _request(**fields)
    if ok:
        admission.check_request(req)
    else:
        with pytest.raises(Abort) as e:
            admission.check_request(req)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert ("top_k=" if "top_k" in fields else "original_size ") in e.value.message


def test_original_size_of_a_request():
    assert admission.original_size(_request()) is None
    assert admission.original_size(_request(original_size={"width": 3, "height": 2})) == (3, 2)


def test_head_identity_must_equal_the_tails_or_the_frame_is_failed_precondition():
    from splitcodec.identity import DeploymentIdentity
    from splitcodec.wire import identity_message, pb

    tail = DeploymentIdentity("m", "s", (4, 2, 2), "DEFAULT", "0123456789abcdef", 32, {"kind": "imagenet"})
    admission.check_head(pb.InferRequest(), tail)  # no identity sent: the name and shape checks only
    admission.check_head(pb.InferRequest(head=identity_message(tail)), tail)  # the same deployment
    for other, needle in ((dataclasses.replace(tail, weights_fingerprint="fedcba9876543210", weights="w.pth"),
                           "weights DEFAULT@01234567 vs w.pth@fedcba98"),
                          (dataclasses.replace(tail, split="t"), "split s vs t"),
                          (dataclasses.replace(tail, feature_shape=(4, 2, 3)), "feature shape (4, 2, 2) vs (4, 2, 3)"),
                          (dataclasses.replace(tail, input_size=64), "input size 32 vs 64"),
                          (dataclasses.replace(tail, preprocess={"kind": "darknet"}), "preprocessing")):
        with pytest.raises(Abort) as e:
            admission.check_head(pb.InferRequest(head=identity_message(other)), tail)
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and needle in e.value.message
        assert "this server's tail (m:s (4, 2, 2) weights DEFAULT@01234567)" in e.value.message
    bad = identity_message(tail)
    bad.weights_fingerprint = ""
    with pytest.raises(Abort) as e:
        admission.check_head(pb.InferRequest(head=bad), tail)
    assert e.value.code == INVALID and "incomplete deployment identity" in e.value.message
    assert e.value.message.endswith("fingerprint or shape)")  # the whole reason (~100 characters), not cut at 64
