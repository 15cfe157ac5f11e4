import dataclasses
import json

import numpy as np
import pytest

import splitcodec as sc
from splitcodec.encoder_config import EncoderConfig
from splitcodec.errors import QuantizerError


def test_defaults_are_the_plain_encoder_and_serialise_to_nothing():
    c = EncoderConfig()
    assert c.to_dict() == {} and not c.rdo and c.context_model_id == 1 and c.weights is None
    assert EncoderConfig.from_dict({}) == c and repr(c) == "EncoderConfig()"


def test_round_trip_through_json_keeps_every_option():
    c = EncoderConfig("paper", rdo_lambda=0.25, channel_weights=np.array([1, 2.5]), error_feedback=0.75,
                      error_diffusion="plane", rdo_lookahead=True)
    d = json.loads(json.dumps(c.to_dict()))
    assert d == {"context_model": "paper", "rdo_lambda": 0.25, "channel_weights": [1.0, 2.5], "error_feedback": 0.75,
                 "error_diffusion": "plane", "rdo_lookahead": True}
    assert EncoderConfig.from_dict({**d, "model": "ignored", "levels": 8}) == c
    assert c.weights.dtype == np.float64 and c.rdo and hash(c) == hash(EncoderConfig.from_dict(d))
    assert repr(c) == ("EncoderConfig(context_model='paper', rdo_lambda=0.25, channel_weights=<2 values>, "
                       "error_feedback=0.75, error_diffusion='plane', rdo_lookahead=True)")


def test_context_model_normalised_to_its_name():
    assert EncoderConfig(context_model=0).context_model == "paper"
    with pytest.raises(sc.errors.UnknownIdError):
        EncoderConfig(context_model="nope")


@pytest.mark.parametrize("kwargs, match", [
    ({"rdo_lambda": -0.1}, "rdo_lambda must be a finite number >= 0"),
    ({"rdo_lambda": float("inf")}, "rdo_lambda must be a finite number >= 0"),
    ({"rdo_lambda": "x"}, "rdo_lambda must be"),
    ({"error_feedback": 1.5}, r"error_feedback must be a number in \[0, 1\]"),
    ({"error_feedback": None}, "error_feedback must be"),
    ({"error_feedback": 0.5, "error_diffusion": "up"}, "error_diffusion must be one of"),
    ({"rdo_lambda": 0.1, "rdo_lookahead": 1}, "rdo_lookahead must be True or False"),
    ({"rdo_lookahead": True}, "rdo_lookahead refines rate-distortion optimised encoding: it needs rdo_lambda > 0"),
    ({"channel_weights": [1.0]}, "channel_weights refines rate-distortion .* needs rdo_lambda > 0"),
    ({"error_diffusion": "plane"}, "error_diffusion refines error feedback: it needs error_feedback > 0"),
    ({"rdo_lambda": 0.1, "channel_weights": [1.0, 0.0]}, "finite numbers > 0"),
    ({"rdo_lambda": 0.1, "channel_weights": []}, "non-empty"),
    ({"rdo_lambda": 0.1, "channel_weights": [[1.0]]}, "1-D"),
    ({"rdo_lambda": 0.1, "channel_weights": ["a"]}, "positive numbers"),
])
def test_invalid_options_are_rejected_with_what_is_wrong(kwargs, match):
    with pytest.raises(QuantizerError, match=match):
        EncoderConfig(**kwargs)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EncoderConfig().rdo_lambda = 1.0


def test_merged_is_the_one_defaulting_rule():
    full = EncoderConfig(rdo_lambda=0.3, channel_weights=[1.0, 2.0], rdo_lookahead=True, error_feedback=0.5,
                         error_diffusion="plane")
    assert full.merged() == full and full.merged(rdo_lambda=None) == full  # None keeps
    # turning a prerequisite off resets what refines it, and only that
    assert full.merged(rdo_lambda=0) == EncoderConfig(error_feedback=0.5, error_diffusion="plane")
    assert full.merged(error_feedback=0) == EncoderConfig(rdo_lambda=0.3, channel_weights=[1.0, 2.0],
                                                          rdo_lookahead=True)
    assert full.merged(rdo_lambda=0.1).channel_weights == (1.0, 2.0)  # still on: kept
    # an override that names the dependent too is taken as meant, so it must be consistent
    with pytest.raises(QuantizerError, match="needs rdo_lambda"):
        full.merged(rdo_lambda=0, rdo_lookahead=True)
    assert EncoderConfig().merged(rdo_lambda=0.2, rdo_lookahead=True).rdo_lookahead
    with pytest.raises(QuantizerError, match="unknown encoder option"):
        full.merged(rdo_lamda=0.1)


def test_feature_codec_takes_a_config_and_keywords_over_it():
    q = sc.UniformQuantizer(0.0, 2.0, 8)
    cfg = EncoderConfig(rdo_lambda=0.2, error_feedback=0.5)
    codec = sc.FeatureCodec(q, "paper", config=cfg, rdo_lookahead=True)
    assert codec.config == dataclasses.replace(cfg, context_model="paper", rdo_lookahead=True)
    assert codec.context_model == 0 and codec.rdo_lambda == 0.2 and codec.rdo_lookahead
    assert sc.FeatureCodec(q, config=cfg).config is cfg
    x = np.abs(np.random.default_rng(1).normal(size=(3, 7, 9))).astype(np.float32)
    assert sc.FeatureCodec(q, config=cfg).encode(x) == sc.FeatureCodec(q, rdo_lambda=0.2, error_feedback=0.5).encode(x)
    with pytest.raises(TypeError, match="unknown encoder option"):
        sc.FeatureCodec(q, rdo_lamda=0.1)
    with pytest.raises(TypeError, match="must be an EncoderConfig"):
        sc.FeatureCodec(q, config={"rdo_lambda": 0.1})
    with pytest.raises(AttributeError):
        sc.FeatureCodec(q).no_such_option


def test_every_option_carries_the_description_a_command_line_needs():
    for name, default, meta in EncoderConfig.options():
        assert meta["help"] and (meta["requires"] is None or meta["requires"] in EncoderConfig.option_names())
        assert meta["choices"] is None or default in meta["choices"]


def test_options_describe_every_field_to_a_command_line_with_its_default():
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(EncoderConfig)}
    opts = EncoderConfig.options()
    assert [name for name, _, _ in opts] == list(fields)
    for name, default, meta in opts:
        assert default == fields[name].default and set(meta) == {"help", "requires", "choices", "type"}
        assert meta["help"]
    by_name = {name: meta for name, _, meta in opts}
    assert by_name["rdo_lookahead"]["requires"] == "rdo_lambda" and by_name["rdo_lookahead"]["type"] is bool
    assert by_name["error_diffusion"]["choices"] == ("row", "plane")
    assert EncoderConfig().rdo_lambda == 0.0 and EncoderConfig().error_diffusion == "row"


def test_numbers_and_flags_are_normalised_to_python_types():
    c = EncoderConfig(rdo_lambda=1, error_feedback=np.float32(0.5), rdo_lookahead=np.bool_(True))
    assert type(c.rdo_lambda) is float and type(c.error_feedback) is float and type(c.rdo_lookahead) is bool
    assert c.to_dict() == {"rdo_lambda": 1.0, "error_feedback": 0.5, "rdo_lookahead": True}


def test_an_option_field_carries_its_default_and_command_line_metadata():
    import dataclasses

    from splitcodec.encoder_config import _option

    @dataclasses.dataclass(frozen=True)
    class Probe:
        level: int = _option(3, "how much", requires="other", choices=(1, 3), cli_type=int)

    (f,) = dataclasses.fields(Probe)
    assert Probe().level == 3 and f.default == 3
    assert dict(f.metadata) == {"help": "how much", "requires": "other", "choices": (1, 3), "type": int}
