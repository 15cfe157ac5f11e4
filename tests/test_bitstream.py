import struct

import numpy as np
import pytest

import splitcodec as sc
from splitcodec import bitstream
from splitcodec import errors as E

from .streams import resign, sample_stream


def _hsize(data):
    return sc.decode_header(data).size


def test_bad_magic():
    data = sample_stream()
    with pytest.raises(E.BadMagicError, match="0xcf"):
        sc.decode(b"\x00" + data[1:])


def test_unsupported_version():
    data = bytearray(sample_stream())
    data[1] = 3
    with pytest.raises(E.UnsupportedVersionError, match="version 3"):
        sc.decode(bytes(data))


@pytest.mark.parametrize("flags_patch,exc", [
    (lambda f: (f & ~3) | 2, E.UnknownIdError),  # context model id 2
    (lambda f: (f & ~3) | 3, E.UnknownIdError),
    (lambda f: (f & ~0xC) | (2 << 2), E.UnknownIdError),  # quantizer kind 2
    (lambda f: f | 0x80, E.InvalidHeaderError),  # reserved bit
])
def test_flag_fields(flags_patch, exc):
    data = bytearray(sample_stream())
    data[2] = flags_patch(data[2])
    with pytest.raises(exc):
        sc.decode(bytes(data))


def test_levels_out_of_range():
    data = bytearray(sample_stream())
    data[3] = 0  # N = 1
    with pytest.raises(E.InvalidHeaderError, match="N=1"):
        sc.decode(bytes(data))


def _stream_with_header(shape, clip=(0.0, 1.0), levels=4, payload=b"\x00\x00\x00\x00"):
    h = bitstream.Header(1, bitstream.QUANTIZER_UNIFORM, levels, shape, clip=clip)
    return bitstream.write_header(h, payload) + payload


def test_huge_shape_rejected_before_allocation():
    data = _stream_with_header((1 << 20, 1 << 20, 1 << 10))  # 2^50 elements
    with pytest.raises(E.TensorTooLargeError, match="allowed"):
        sc.decode(data)


def test_max_elements_is_configurable():
    data = sample_stream(shape=(4, 8, 8))
    with pytest.raises(E.TensorTooLargeError):
        sc.decode(data, max_elements=255)
    assert sc.decode(data, max_elements=256).shape == (4, 8, 8)


def test_zero_dimension_rejected():
    data = bytearray(_stream_with_header((4, 8, 8)))
    data[8 + 1] = 0  # second dim (after magic, version, flags, N, 2 half floats, first dim)
    with pytest.raises(E.InvalidHeaderError, match="dimension"):
        sc.decode(resign(bytes(data), 16))


def test_invalid_clip_in_stream():
    for clip in [(1.0, 1.0), (2.0, 1.0)]:
        h = struct.pack("<BBBB", 0xCF, 1, 1 | (2 << 4), 3) + struct.pack("<2e", *clip) + bytes([2, 2, 2])
        data = h + struct.pack("<I", 0) + b"\x00" * 4
        with pytest.raises(E.InvalidHeaderError, match="clip"):
            sc.decode(data)
    h = struct.pack("<BBBB", 0xCF, 1, 1 | (2 << 4) | 0x40, 3) + struct.pack("<2f", 0.0, np.inf) + bytes([2, 2, 2])
    with pytest.raises(E.InvalidHeaderError):
        sc.decode(h + b"\x00" * 8)


def test_overlong_varint():
    h = struct.pack("<BBBB", 0xCF, 1, 1, 3) + struct.pack("<2e", 0.0, 1.0) + b"\xff" * 6 + b"\x01"
    with pytest.raises(E.InvalidHeaderError, match="varint"):
        sc.decode(h + b"\x00" * 8)


def test_truncated_header():
    data = sample_stream()
    for n in range(_hsize(data)):
        with pytest.raises(E.TruncatedStreamError):
            sc.decode(data[:n])


def test_crc_mismatch():
    data = bytearray(sample_stream())
    data[-1] ^= 0x01
    with pytest.raises(E.ChecksumError, match="CRC-32"):
        sc.decode(bytes(data))
    with pytest.raises(E.ChecksumError):
        sc.decode(bytes(sample_stream()[:-1]))  # plain truncation is caught by the CRC first


def test_truncated_payload_with_valid_crc():
    data = sample_stream()
    hs = _hsize(data)
    with pytest.raises(E.TruncatedPayloadError, match="truncated"):
        sc.decode(resign(data[:-2], hs))
    with pytest.raises(E.TruncatedPayloadError):
        sc.decode(resign(data[:hs], hs))  # no payload at all


def test_trailing_bytes_with_valid_crc():
    data = sample_stream()
    with pytest.raises(E.TrailingBytesError, match="trailing"):
        sc.decode(resign(data + b"\x00\x01", _hsize(data)))


def test_impossible_payload_start():
    data = sample_stream()
    hs = _hsize(data)
    with pytest.raises(E.CorruptPayloadError):
        sc.decode(resign(data[:hs] + b"\xff\xff\xff\xff" + data[hs + 4:], hs))


def test_every_error_is_a_value_error_and_bitstream_error():
    for cls in (E.BadMagicError, E.ChecksumError, E.TruncatedPayloadError, E.TensorTooLargeError):
        assert issubclass(cls, E.BitstreamError) and issubclass(cls, ValueError)
        assert issubclass(cls, E.SplitCodecError)


def test_writer_and_reader_agree_on_every_field():
    h = bitstream.Header(0, bitstream.QUANTIZER_TABLE, 5, (2, 3, 4, 5),
                         levels_table=np.array([0, 0.3, 1.1, 2.2, 3.0], np.float32))
    data = bitstream.write_header(h, b"abcd") + b"abcd"
    back = bitstream.read_header(data)
    assert back.context_model == 0 and back.levels == 5 and back.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(back.levels_table, h.levels_table)
    assert back.single_precision  # 0.3 is not exact in half precision
    assert back.size == 4 + 5 * 4 + 4 + 4
    bitstream.verify_crc(data, back)


def test_documented_header_example():
    # docs/bitstream.md §1: UniformQuantizer(0, 2.5, 4), spatial, shape (256, 52, 52)
    data = sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.5, 4)).encode(np.zeros((256, 52, 52), np.float32))
    assert data[:12] == bytes.fromhex("CF012103 00000041 80023434")
    assert sc.decode_header(data).size == 16


def test_decode_indices_rejects_a_bad_crc():
    data = bytearray(sample_stream())
    data[-1] ^= 0x01
    with pytest.raises(E.ChecksumError):
        sc.decode_indices(bytes(data))


# --- pinned after mutation testing -----------------------------------------------------------------

def _uniform_header(**kw):
    from splitcodec.bitstream import Header

    base = dict(context_model=1, quantizer_kind=0, levels=4, shape=(2, 3), clip=(0.0, 1.0))
    return Header(**{**base, **kw})


def test_writer_refuses_n_above_256_and_accepts_the_largest_dimension():
    from splitcodec import bitstream
    from splitcodec.errors import InvalidHeaderError

    bitstream.validate(_uniform_header(levels=256))
    with pytest.raises(InvalidHeaderError):
        bitstream.validate(_uniform_header(levels=257))
    bitstream.validate(_uniform_header(shape=(bitstream.MAX_DIM,)), max_elements=bitstream.MAX_DIM)
    with pytest.raises(InvalidHeaderError):
        bitstream.validate(_uniform_header(shape=(bitstream.MAX_DIM + 1,)), max_elements=1 << 40)


def test_header_fields_as_read():
    import splitcodec as sc
    from splitcodec import bitstream

    data = sc.FeatureCodec(sc.ScalarQuantizer.from_levels([0.0, 0.5, 2.0])).encode(np.zeros((2, 3), np.float32))
    h = sc.decode_header(data)
    assert h.version == bitstream.FORMAT_VERSION and h.levels == 3 and h.shape == (2, 3)
    assert h.levels_table.dtype == np.float32
    assert h.crc32 == int.from_bytes(data[h.size - 4:h.size], "little")
    assert bitstream._fields(h)["crc32"] == h.crc32
    assert h.sequence is None and not h.predicted and not h.carry_state and h.reference_crc == 0  # a v1 frame


@pytest.mark.parametrize("version, fields", [
    (1, {"carry_state": True}),  # only version 2 codes frame fields, either of them
    (1, {"predicted": True}),
    (2, {"sequence": 0, "carry_state": True}),  # an intra frame carrying a reference's state
    (2, {"sequence": 0, "context_model": bitstream.TEMPORAL}),  # the temporal model in an intra frame
])
def test_validate_refuses_frame_fields_that_break_the_rules(version, fields):
    h = bitstream.Header(**{"context_model": 1, "quantizer_kind": bitstream.QUANTIZER_UNIFORM, "levels": 4,
                            "shape": (2, 3), "clip": (0.0, 1.0), "version": version, **fields})
    with pytest.raises(E.InvalidHeaderError):
        bitstream.validate(h)
    bitstream.validate(bitstream.Header(1, bitstream.QUANTIZER_UNIFORM, 4, (2, 3), (0.0, 1.0), version=version,
                                        sequence=0 if version == 2 else None))  # the same without them is valid


def test_half_precision_is_judged_on_the_float32_value_written():
    from splitcodec import bitstream

    assert bitstream._half_exact([1.0 + 2.0 ** -30])  # float32 rounds it to 1.0, which half holds
    assert not bitstream._half_exact([0.1])
    assert bitstream._half_exact([0.5, -2.0, 65504.0]) and not bitstream._half_exact([1e6])
