import numpy as np
import pytest

import splitcodec as sc
from splitcodec.calibration import QUANTIZER_FILE_VERSION, load_quantizer, save_quantizer
from splitcodec.errors import QuantizerError


def test_uniform_and_table_quantizers_round_trip(tmp_path):
    x = np.abs(np.random.default_rng(0).normal(size=(4, 9, 9))).astype(np.float32)
    for q in (sc.UniformQuantizer(-0.5, 2.5, 6), sc.design_ecq(x, 4, 0.05, 0.0, 2.0)):
        p = save_quantizer(tmp_path / "q.json", q, model="m", split="s", context_model="paper",
                           fitted_on={"samples": 3})
        back, doc = load_quantizer(p)
        assert back == q and doc["model"] == "m" and doc["version"] == QUANTIZER_FILE_VERSION
        np.testing.assert_array_equal(back.quantize(x), q.quantize(x))
        codec = sc.FeatureCodec.from_file(p)
        assert codec.context_model == 0  # "paper", from the file
        np.testing.assert_array_equal(sc.decode(codec.encode(x)), q(x))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_quantizer(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{")
    with pytest.raises(QuantizerError, match="not a quantizer file"):
        load_quantizer(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"format": "splitcodec-quantizer", "version": 99}')
    with pytest.raises(QuantizerError, match="version 99"):
        load_quantizer(tmp_path / "b.json")
    (tmp_path / "c.json").write_text('{"format": "splitcodec-quantizer", "version": 1, "kind": "uniform", "clip": [0, 1]}')
    with pytest.raises(QuantizerError, match="incomplete"):
        load_quantizer(tmp_path / "c.json")
