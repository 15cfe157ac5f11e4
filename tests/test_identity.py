"""The deployment identity (splitcodec.identity): weights by name only, fingerprints, quantizer files and the wire."""

import json

import pytest

import splitcodec as sc
from splitcodec import models
from splitcodec.errors import IdentityMismatchError, SplitCodecError, WeightsUnavailableError
from splitcodec.identity import DeploymentIdentity
from splitcodec.quantizer_file import check_file_identity, load_quantizer_file, save_quantizer

IDENT = DeploymentIdentity("efficientnet_lite0", "blocks.13", (192, 7, 7), "DEFAULT", "03feb8c5adfe5195", 224,
                           {"kind": "imagenet", "size": 224, "resize": 256})


@pytest.fixture(scope="module")
def trained():
    return models.split_model("efficientnet_lite0", "blocks.13", weights="DEFAULT")


def test_random_weights_only_by_name_and_the_same_on_both_sides(trained):
    with pytest.raises(ValueError, match="'DEFAULT' for its trained weights or 'random'"):
        models.get_model("efficientnet_lite0", weights=None)
    a = models.split_model("efficientnet_lite0", "blocks.13", weights="random")
    b = models.split_model("efficientnet_lite0", "blocks.13", weights="random")
    assert a.identity == b.identity and a.identity.random_weights  # an edge and a cloud get the same ones
    assert a.identity.weights_fingerprint != trained.identity.weights_fingerprint
    assert trained.identity.weights == "DEFAULT" and not trained.identity.random_weights


def test_trained_weights_are_the_default_and_refused_with_the_fix_when_missing():
    with pytest.raises(WeightsUnavailableError, match=r"no weights DEFAULT for vgg16 .*--weights PATH.*--weights random"):
        models.split_model("vgg16")
    assert "\n" not in str(pytest.raises(WeightsUnavailableError, models.get_model, "resnet50").value)


def test_fingerprint_follows_the_parameters(trained):
    import torch

    m = models.get_model("efficientnet_lite0", weights="DEFAULT")
    before = sc.identity.weights_fingerprint(m)
    assert before == trained.identity.weights_fingerprint
    with torch.no_grad():
        m._fc.bias[0] += 1e-6  # one parameter of the tail
    assert sc.identity.weights_fingerprint(m) != before


def test_differences_name_each_field_and_check_is_one_line():
    other = DeploymentIdentity("efficientnet_lite0", "blocks.11.expand", (672, 14, 14), "random", "aaaa", 224,
                               IDENT.preprocess)
    diff = IDENT.differences(other)
    assert diff == ["split blocks.13 vs blocks.11.expand", "feature shape (192, 7, 7) vs (672, 14, 14)",
                    "weights DEFAULT@03feb8c5 vs random@aaaa"]
    with pytest.raises(IdentityMismatchError) as e:
        IDENT.check(other, mine="this head", theirs="q.json", fix="pass --split blocks.11.expand")
    assert "\n" not in str(e.value) and str(e.value).endswith("(pass --split blocks.11.expand)")
    IDENT.check(DeploymentIdentity.from_dict(IDENT.to_dict()), mine="a", theirs="b")  # equal: no error


@pytest.mark.parametrize("bad", [None, [], {"model": "m"}, dict(IDENT.to_dict(), feature_shape=[0, 1]),
                                 dict(IDENT.to_dict(), weights_fingerprint=""), dict(IDENT.to_dict(), input_size="x")])
def test_a_malformed_identity_is_a_splitcodec_error(bad):
    with pytest.raises(SplitCodecError, match="identity"):
        DeploymentIdentity.from_dict(bad, "f.json")


def test_quantizer_file_records_and_checks_the_identity(tmp_path, trained):
    q = sc.UniformQuantizer(-1.0, 2.0, 8)
    p = save_quantizer(tmp_path / "q.json", q, identity=trained.identity, fitted_on={"samples": 3})
    qf = load_quantizer_file(p)
    assert qf.identity == trained.identity and qf.doc["version"] == 2
    assert (qf.doc["model"], qf.doc["split"]) == ("efficientnet_lite0", "blocks.13")
    check_file_identity(qf, trained.identity)
    other = models.split_model("efficientnet_lite0", "blocks.11.expand", weights="DEFAULT")
    with pytest.raises(IdentityMismatchError, match=r"q.json .* does not match this head .*split blocks.11.expand vs "
                                                    r"blocks.13.*\(the fix\)"):
        check_file_identity(qf, other.identity, fix="the fix")
    with pytest.raises(ValueError, match="split='x' differs"):
        save_quantizer(tmp_path / "r.json", q, identity=trained.identity, split="x")


def test_a_file_without_identity_is_refused_where_it_is_applied(tmp_path, trained):
    p = save_quantizer(tmp_path / "old.json", sc.UniformQuantizer(0.0, 1.0, 4), model="efficientnet_lite0",
                       split="blocks.13")
    qf = load_quantizer_file(p)  # still readable as a quantizer
    assert qf.identity is None and qf.quantizer.levels == 4
    with pytest.raises(IdentityMismatchError, match="records no deployment identity.*explore --save"):
        check_file_identity(qf, trained.identity)
    doc = json.loads(p.read_text())
    doc["identity"] = {"model": "m"}
    p.write_text(json.dumps(doc))
    with pytest.raises(sc.QuantizerError, match="old.json: incomplete deployment identity"):
        load_quantizer_file(p)


def test_committed_operating_point_files_record_trained_weights(trained):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "docs" / "results"
    qf = load_quantizer_file(root / "quantizer-explore-99.json")
    check_file_identity(qf, trained.identity)  # the demo's point: measured on these very weights
    assert qf.doc["fitted_on"]["dataset"]["kind"] == "photos" and "agreement" in qf.doc["metrics"]


def test_the_wire_form_round_trips_and_refuses_garbage():
    from splitcodec.wire import identity_from_message, identity_message, pb

    assert identity_from_message(identity_message(IDENT)) == IDENT
    for bad in (pb.HeadIdentity(model="m", split="s", weights_fingerprint="f", feature_shape=[1], input_size=1,
                                preprocess="[1]"),
                pb.HeadIdentity(model="m", split="s", weights_fingerprint="f", feature_shape=[1], input_size=1,
                                preprocess="{" * 5000),
                pb.HeadIdentity(model="m", split="s", weights_fingerprint="", feature_shape=[1], input_size=1)):
        with pytest.raises(SplitCodecError):
            identity_from_message(bad)
