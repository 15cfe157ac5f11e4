import numpy as np
import pytest

import splitcodec as sc
from splitcodec.quantizer_file import QUANTIZER_FILE_VERSION, load_quantizer_file, save_quantizer
from splitcodec.errors import QuantizerError


def test_uniform_and_table_quantizers_round_trip(tmp_path):
    x = np.abs(np.random.default_rng(0).normal(size=(4, 9, 9))).astype(np.float32)
    for q in (sc.UniformQuantizer(-0.5, 2.5, 6), sc.design_ecq(x, 4, 0.05, 0.0, 2.0)):
        p = save_quantizer(tmp_path / "q.json", q, model="m", split="s", context_model="paper",
                           fitted_on={"samples": 3})
        back, encoder, doc = load_quantizer_file(p)
        assert back == q and encoder == sc.EncoderConfig(context_model="paper") and doc["model"] == "m" and doc["version"] == QUANTIZER_FILE_VERSION
        np.testing.assert_array_equal(back.quantize(x), q.quantize(x))
        codec = sc.FeatureCodec.from_file(p)
        assert codec.context_model == 0  # "paper", from the file
        np.testing.assert_array_equal(sc.decode(codec.encode(x)), q(x))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_quantizer_file(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{")
    with pytest.raises(QuantizerError, match="not a quantizer file"):
        load_quantizer_file(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"format": "splitcodec-quantizer", "version": 99}')
    with pytest.raises(QuantizerError, match="version 99"):
        load_quantizer_file(tmp_path / "b.json")
    (tmp_path / "c.json").write_text('{"format": "splitcodec-quantizer", "version": 1, "kind": "uniform", "clip": [0, 1]}')
    with pytest.raises(QuantizerError, match="incomplete"):
        load_quantizer_file(tmp_path / "c.json")


def test_encoder_config_travels_in_the_file_and_is_validated_on_both_sides(tmp_path):
    q = sc.UniformQuantizer(0.0, 2.0, 8)
    cfg = sc.EncoderConfig(rdo_lambda=0.3, channel_weights=[0.5, 1.5], error_feedback=0.5, error_diffusion="plane")
    back = load_quantizer_file(save_quantizer(tmp_path / "q.json", q, cfg, model="m"))
    assert back.encoder == cfg and back.doc["model"] == "m" and back.doc["rdo_lambda"] == 0.3
    # keywords go over the config and are validated with it: no file holds what the encoder would reject
    assert load_quantizer_file(save_quantizer(tmp_path / "k.json", q, cfg, rdo_lookahead=True)).encoder.rdo_lookahead
    with pytest.raises(QuantizerError, match="needs rdo_lambda"):
        save_quantizer(tmp_path / "bad.json", q, cfg, rdo_lambda=0.0)
    assert not (tmp_path / "bad.json").exists()
    # a hand-edited file with a combination the encoder rejects names the file
    (tmp_path / "h.json").write_text('{"format": "splitcodec-quantizer", "version": 1, "kind": "uniform", '
                                     '"levels": 4, "clip": [0, 1], "rdo_lookahead": true}')
    with pytest.raises(QuantizerError, match=r"h\.json: rdo_lookahead .* needs rdo_lambda"):
        load_quantizer_file(tmp_path / "h.json")
