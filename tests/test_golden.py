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
from splitcodec.bitstream import FORMAT_VERSION

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


def test_every_golden_file_belongs_to_the_current_version():
    names = {p.name for p in GOLDEN.glob("*.bin")}
    assert names == {f"v{FORMAT_VERSION}_{n}.bin" for n in _cases()}
