"""Golden bitstreams: any change in the bytes the encoder writes is a format change.

If a test here fails because the encoder changed on purpose, bump
``splitcodec.bitstream.FORMAT_VERSION`` and regenerate with
``SPLITCODEC_REGEN_GOLDEN=1 pytest tests/test_golden.py``.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import splitcodec as sc
from splitcodec.bitstream import FORMAT_VERSION, SEQUENCE_VERSION

from .streams import golden_input

GOLDEN = Path(__file__).parent / "data" / "golden"
REGEN = os.environ.get("SPLITCODEC_REGEN_GOLDEN") == "1"


def _cases():
    x = golden_input((6, 9, 11))
    uni = sc.UniformQuantizer(0.0, 3.0, 4)
    neg = sc.UniformQuantizer(-0.75, 2.5, 7)
    table = sc.ScalarQuantizer.from_levels([0.0, 0.4, 1.25, 3.0], 0.0, 3.0)
    return {
        "uniform_n4_spatial": (sc.FeatureCodec(uni, "spatial"), x),
        "uniform_n4_paper": (sc.FeatureCodec(uni, "paper"), x),
        "uniform_n7_negclip_spatial": (sc.FeatureCodec(neg, "spatial"), x - 1.0),
        "table_n4_spatial": (sc.FeatureCodec(table, "spatial"), x),
        "uniform_n2_batch": (sc.FeatureCodec(sc.UniformQuantizer(0.0, 2.0, 2)), x.reshape(2, 3, 9, 11)),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_golden_stream(name):
    codec, x = _cases()[name]
    path = GOLDEN / f"v{FORMAT_VERSION}_{name}.bin"
    data = codec.encode(x)
    if REGEN:
        path.write_bytes(data)
    assert path.exists(), f"missing {path}; regenerate with SPLITCODEC_REGEN_GOLDEN=1"
    golden = path.read_bytes()
    assert data == golden, (
        f"the encoder's output for {name} changed: this is a bitstream format change. Bump "
        "FORMAT_VERSION and regenerate the golden files (SPLITCODEC_REGEN_GOLDEN=1)."
    )
    np.testing.assert_array_equal(sc.decode(golden), codec.quantizer(x))


def _sequences():
    """Four frames of a slowly changing scene: intra, then predicted (the third and fourth carry the state)."""
    base = golden_input((6, 9, 11))
    frames = [base, base + 0.25 * (golden_input((6, 9, 11))[::-1] > 1), np.roll(base, 1, axis=-1), np.roll(base, 1, axis=-1)]
    uni = sc.UniformQuantizer(0.0, 3.0, 4)
    return {
        "sequence_n4_temporal": (sc.FeatureCodec(uni), {}, frames),
        "sequence_n4_temporal_rdo": (sc.FeatureCodec(uni, rdo_lambda=0.3), {}, frames),
        "sequence_n4_paper_state": (sc.FeatureCodec(uni, "paper"), {"temporal": False}, frames),
    }


@pytest.mark.parametrize("name", sorted(_sequences()))
def test_golden_sequence(name):
    codec, options, frames = _sequences()[name]
    enc = sc.SequenceEncoder(codec, sequence_id=0x60_1D, refresh_period=None, **options)
    dec = sc.SequenceDecoder()
    for i, x in enumerate(frames):
        path = GOLDEN / f"v{SEQUENCE_VERSION}_{name}_f{i}.bin"
        data, idx = enc.encode(x, return_indices=True)
        if REGEN:
            path.write_bytes(data)
        assert path.exists(), f"missing {path}; regenerate with SPLITCODEC_REGEN_GOLDEN=1"
        golden = path.read_bytes()
        assert data == golden, f"the sequence encoder's frame {i} of {name} changed: a bitstream format change"
        assert sc.decode_header(golden).predicted == (i > 0)
        np.testing.assert_array_equal(dec.decode(golden), codec.quantizer.dequantize(idx))


def test_every_golden_file_belongs_to_a_current_case():
    names = {p.name for p in GOLDEN.glob("*.bin")}
    assert names == {f"v{FORMAT_VERSION}_{n}.bin" for n in _cases()} | {
        f"v{SEQUENCE_VERSION}_{n}_f{i}.bin" for n, (_, _, frames) in _sequences().items() for i in range(len(frames))}
