"""The rate-accuracy studies end to end on tiny data: every study's JSON has its
keys and a row per operating point, accuracy is computed, rate falls with N."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from eval.core.runner import main  # noqa: E402


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def _run(capsys, *args):
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def _common(cache_dir):
    return ["--dataset", "photos:12", "--calib", "4", "--cache-dir", cache_dir]


def test_rate_accuracy_rows_csv_plot(capsys, cache_dir, tmp_path):
    doc = _run(capsys, "rate-accuracy", *_common(cache_dir), "--levels", "8,4,2", "--context", "spatial,paper",
               "--quantizer", "uniform,ecq-modified", "--csv", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png"))
    rows = doc["rows"]
    assert rows[0]["method"] == "float" and rows[0]["fidelity_top1"] == 1.0
    assert len(rows) == 1 + 3 * 2 * 2 and doc["evaluated_samples"] == 12
    ident = doc["envelope"]["identity"]  # every result records the weights it was measured with
    assert ident["model"] == "efficientnet_lite0" and ident["weights"] == "DEFAULT" and len(ident["weights_fingerprint"]) == 16
    for r in rows[1:]:
        assert {"bits_per_element", "fidelity_top1", "fidelity_top5", "mse", "clip", "levels"} <= set(r)
        assert 0 <= r["fidelity_top1"] <= 1 and r["bits_per_element"] > 0
    uni = {(r["levels"], r["context_model"]): r for r in rows[1:] if r["method"] == "uniform"}
    for ctx in ("spatial", "paper"):
        assert uni[(8, ctx)]["bits_per_element"] > uni[(4, ctx)]["bits_per_element"] > uni[(2, ctx)]["bits_per_element"]
    assert uni[(8, "spatial")]["bits_per_element"] < uni[(8, "paper")]["bits_per_element"]
    assert uni[(2, "spatial")]["mse"] > uni[(8, "spatial")]["mse"]
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert len((tmp_path / "t.csv").read_text().splitlines()) == len(rows) + 1


def test_accuracy_is_computed_not_assumed(capsys, cache_dir):
    # a 2-level quantizer with a tiny clip destroys the features: fidelity must drop
    doc = _run(capsys, "rate-accuracy", *_common(cache_dir), "--levels", "2", "--clip", "0:0.01")
    assert doc["rows"][1]["fidelity_top1"] < 0.5


def test_clip_sweep_marks_optima(capsys, cache_dir, tmp_path):
    doc = _run(capsys, "clip-sweep", *_common(cache_dir), "--levels", "2,4", "--cmax", "0.5:6:4",
               "--plot", str(tmp_path / "c.png"))
    assert len(doc["rows"]) == 1 + 2 * 4
    assert {o["levels"] for o in doc["optima"]} == {2, 4}
    for o in doc["optima"]:
        rs = [r for r in doc["rows"][1:] if r["levels"] == o["levels"]]
        assert o["mse_optimal_cmax"] == min(rs, key=lambda r: r["mse"])["clip"][1]
    assert (tmp_path / "c.png").exists()


def test_ecq_study_with_hevc(capsys, cache_dir):
    doc = _run(capsys, "ecq", *_common(cache_dir), "--levels", "3", "--lams", "0.01,0.2", "--hevc", "20")
    methods = [r["method"] for r in doc["rows"][1:]]
    assert methods == ["uniform", "ecq-conventional", "ecq-modified", "ecq-conventional", "ecq-modified", "hevc"]
    mod = [r for r in doc["rows"] if r["method"] == "ecq-modified"]
    assert all(r["reconstruction"][0] == 0.0 and r["reconstruction"][-1] == r["clip"][1] for r in mod)
    assert mod[1]["bits_per_element"] <= mod[0]["bits_per_element"]  # larger λ, lower rate
    assert doc["rows"][-1]["bits_per_element"] > 0


def test_ecq_study_encodes_every_quantizer_again_with_rdo(capsys, cache_dir, tmp_path):
    doc = _run(capsys, "ecq", *_common(cache_dir), "--levels", "3", "--lams", "0.2", "--rdo-lambda", "0.5",
               "--plot", str(tmp_path / "e.png"))
    rows = doc["rows"][1:]
    plain = [r for r in rows if not r.get("rdo_lambda")]
    rdo = [r for r in rows if r.get("rdo_lambda") == 0.5]
    assert [r["method"] for r in plain] == [r["method"] for r in rdo] == ["uniform", "ecq-conventional", "ecq-modified"]
    for p, r in zip(plain, rdo):  # same quantizer, the encoder trading distortion for rate
        assert r.get("reconstruction") == p.get("reconstruction") and r["clip"] == p["clip"]
        assert r["bits_per_element"] < p["bits_per_element"] and r["mse"] > p["mse"]
    assert (tmp_path / "e.png").stat().st_size > 0


def test_calibrate_writes_a_quantizer_the_edge_loads(capsys, cache_dir, tmp_path):
    import splitcodec as sc
    from splitcodec.quantizer_file import load_quantizer_file

    path = tmp_path / "q.json"
    doc = _run(capsys, "calibrate", *_common(cache_dir), "--levels", "4", "--method", "accuracy", "--save", str(path))
    q, _, meta = load_quantizer_file(path)
    assert isinstance(q, sc.UniformQuantizer) and q.levels == 4 and [q.c_min, q.c_max] == doc["clip"]
    assert meta["model"] == "efficientnet_lite0" and meta["fitted_on"]["samples"] == 4
    assert len(doc["candidates"]) >= 2


def test_target_rate_respects_the_budget(capsys, cache_dir, tmp_path):
    doc = _run(capsys, "target-rate", *_common(cache_dir), "--budget", "0.5", "--levels", "2,4,8",
               "--save", str(tmp_path / "t.json"))
    assert doc["chosen"]["bits_per_element"] <= 0.5
    assert all(c["bits_per_element"] > 0.5 or c["fidelity_top1"] <= doc["chosen"]["fidelity_top1"] for c in doc["candidates"])
    assert doc["achieved"]["bits_per_element"] > 0
    assert main(["target-rate", *_common(cache_dir), "--budget", "0.0001", "--levels", "2"]) == 2


def test_target_rate_and_calibrate_search_the_rdo_lambda(capsys, cache_dir, tmp_path):
    import splitcodec as sc

    doc = _run(capsys, "target-rate", *_common(cache_dir), "--budget", "0.5", "--levels", "4,8", "--rdo-lambda", "0.3",
               "--save", str(tmp_path / "t.json"))
    lams = {c.get("rdo_lambda", 0.0) for c in doc["candidates"]}
    assert lams == {0.0, 0.3} and len(doc["candidates"]) % 2 == 0
    assert doc["rdo_lambda"] == doc["chosen"].get("rdo_lambda", 0.0) and doc["chosen"]["bits_per_element"] <= 0.5
    assert all(c["bits_per_element"] > 0.5 or c["fidelity_top1"] <= doc["chosen"]["fidelity_top1"] for c in doc["candidates"])
    assert sc.FeatureCodec.from_file(tmp_path / "t.json").rdo_lambda == doc["rdo_lambda"]
    cal = _run(capsys, "calibrate", *_common(cache_dir), "--levels", "4", "--method", "accuracy", "--rdo-lambda",
               "0.3,1.5", "--save", str(tmp_path / "c.json"))
    assert {c["rdo_lambda"] for c in cal["candidates"]} == {0.0, 0.3, 1.5}
    best = max(c["fidelity_top1"] for c in cal["candidates"])
    assert cal["calibration_metrics"]["fidelity_top1"] == best
    assert sc.FeatureCodec.from_file(tmp_path / "c.json").rdo_lambda == cal["rdo_lambda"]
    assert main(["calibrate", *_common(cache_dir), "--levels", "4", "--rdo-lambda", "0.3"]) == 2  # needs accuracy


def test_target_rate_searches_the_error_feedback(capsys, cache_dir, tmp_path):
    import splitcodec as sc

    doc = _run(capsys, "target-rate", *_common(cache_dir), "--budget", "0.6", "--levels", "4,8", "--error-feedback",
               "0.5,1", "--error-diffusion", "row,plane", "--save", str(tmp_path / "t.json"))
    gains = [c.get("error_feedback", 0.0) for c in doc["candidates"]]
    assert sorted(set(gains)) == [0.0, 0.5, 1.0] and gains.count(0.5) == gains.count(1.0) == 2 * gains.count(0.0)
    planes = [c for c in doc["candidates"] if c.get("error_diffusion") == "plane"]
    assert len(planes) == gains.count(0.5) and all(c["error_feedback"] > 0 for c in planes)
    assert doc["error_feedback"] == doc["chosen"].get("error_feedback", 0.0) and doc["chosen"]["bits_per_element"] <= 0.6
    assert all(c["bits_per_element"] > 0.6 or c["fidelity_top1"] <= doc["chosen"]["fidelity_top1"] for c in doc["candidates"])
    tied = [c for c in doc["candidates"] if c["bits_per_element"] <= 0.6 and c["fidelity_top1"] == doc["chosen"]["fidelity_top1"]]
    assert doc["chosen"]["kl"] == min(c["kl"] for c in tied)  # top-1 ties on few samples: the smaller KL wins
    # the feedback changes what the encoder writes: same N and clip, other bits
    by = {}
    for c in doc["candidates"]:
        by.setdefault((c["levels"], tuple(c["clip"])), {})[c.get("error_feedback", 0.0)] = c["bits_per_element"]
    assert any(len(set(v.values())) > 1 for v in by.values())
    codec = sc.FeatureCodec.from_file(tmp_path / "t.json")
    assert codec.error_feedback == doc["error_feedback"] and codec.quantizer.levels == doc["chosen"]["levels"]
    assert codec.error_diffusion == doc["chosen"].get("error_diffusion", "row") == doc["error_diffusion"]
    with pytest.raises(SystemExit) as e:  # a usage error
        main(["target-rate", *_common(cache_dir), "--budget", "0.6", "--levels", "4", "--error-diffusion", "2d"])
    assert e.value.code == 2 and "comma-separated list of row, plane" in capsys.readouterr().err
    for bad in ("1.5", "-0.1"):
        assert main(["target-rate", *_common(cache_dir), "--budget", "0.6", "--levels", "4", "--error-feedback", bad]) == 2
        assert "error-feedback gains must be in [0, 1]" in capsys.readouterr().err


def test_shards_merge_to_the_unsharded_result(capsys, cache_dir, tmp_path):
    full = _run(capsys, "rate-accuracy", *_common(cache_dir), "--levels", "4")
    parts = []
    for k in range(3):
        p = tmp_path / f"s{k}.json"
        _run(capsys, "rate-accuracy", *_common(cache_dir), "--levels", "4", "--shard", f"{k}/3", "--output", str(p))
        parts.append(str(p))
    merged = _run(capsys, "merge", *parts)
    assert merged["rows"] == full["rows"] and merged["merged_shards"] == 3
    assert main(["merge", *parts[:2]]) == 2
    assert "incomplete" in capsys.readouterr().err


def test_activation_cache_resumes(cache_dir):
    from eval.core.activations import open_cache

    c = open_cache("efficientnet_lite0", "paper", "DEFAULT", "photos:40", cache_dir=cache_dir)
    c.build(range(33))  # chunk 0 and 1 (32 per chunk)
    assert c.chunk_path(0).exists() and c.chunk_path(1).exists()
    before = c.chunk_path(0).stat().st_mtime_ns
    c.build()  # nothing recomputed for chunk 0
    assert c.chunk_path(0).stat().st_mtime_ns == before
    assert c.features(range(40)).shape == (40, 672, 14, 14)


def test_errors_before_long_work(capsys, tmp_path):
    assert main(["rate-accuracy", "--dataset", f"imagenet:{tmp_path}/missing", "--cache-dir", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["rate-accuracy", "--model", "yolov3", "--dataset", "photos:4", "--cache-dir", str(tmp_path)]) == 2
    assert main(["rate-accuracy", "--dataset", "coco:only-one-part", "--cache-dir", str(tmp_path)]) == 2


def test_imagenet_labels_and_coco_detection(capsys, tmp_path):
    """Labelled data: top-1/top-5 against labels; COCO mAP through COCOeval (random-init YOLOv3)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for wnid in ("n01", "n02"):
        (tmp_path / "inet" / wnid).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "inet" / wnid / f"{i}.png")
    doc = _run(capsys, "rate-accuracy", "--dataset", f"imagenet:{tmp_path / 'inet'}", "--weights", "DEFAULT",
               "--levels", "4", "--calib", "2", "--cache-dir", str(tmp_path / "c"))
    assert doc["rows"][0]["top1"] is not None and "top5" in doc["rows"][1]

    (tmp_path / "coco").mkdir()
    images, anns = [], []
    for i in (1, 2):
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(tmp_path / "coco" / f"{i}.jpg")
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 80, "height": 64})
        anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    doc = _run(capsys, "rate-accuracy", "--model", "yolov3", "--weights", "random", "--allow-random-weights", "--dataset", f"coco:{tmp_path / 'coco'}:{ann}",
               "--levels", "4", "--clip", "0:2", "--calib", "1", "--cache-dir", str(tmp_path / "c"),
               "--max-detections", "100")  # a random-init YOLOv3 scores ~460k boxes per image above 0.005
    assert doc["task"] == "detection" and "mAP50" in doc["rows"][0] and "mAP50" in doc["rows"][1]
    assert 0.0 <= doc["rows"][1]["mAP50"] <= 1.0


def test_grid_file(capsys, cache_dir, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps([{"method": "uniform", "levels": 4, "clip": [0, 3], "context_model": "paper"},
                                {"method": "ecq-modified", "levels": 3, "clip": [0, 3], "lambda": 0.05},
                                {"method": "lloyd-max", "levels": 4, "clip": [0, 3]}]))
    doc = _run(capsys, "rate-accuracy", *_common(cache_dir), "--grid", str(grid))
    assert [(r["method"], r["levels"], r.get("context_model")) for r in doc["rows"][1:]] == [
        ("uniform", 4, "paper"), ("ecq-modified", 3, "spatial"), ("lloyd-max", 4, "spatial")]


def test_rd_frontier_study_and_rdo_rows(capsys, cache_dir, tmp_path):
    doc = _run(capsys, "rd-frontier", *_common(cache_dir), "--levels", "2,4,8", "--lambdas", "0,0.3",
               "--target-mse", "0.05", "--plot", str(tmp_path / "rd.png"))
    assert doc["study"] == "rd-frontier" and len(doc["points"]) >= 2 * 3 * 2
    assert doc["frontier_rdo"] and all(s["ratio"] <= 1.0 for s in doc["savings_at_equal_mse"])
    assert doc["best"] is None or doc["best"]["mse"] <= 0.05
    assert (tmp_path / "rd.png").stat().st_size > 0
    ra = _run(capsys, "rate-accuracy", *_common(cache_dir), "--levels", "8", "--rdo-lambda", "0.5")
    plain, rdo = ra["rows"][1], ra["rows"][2]
    assert rdo["rdo_lambda"] == 0.5 and "rdo_lambda" not in plain
    assert rdo["bits_per_element"] < plain["bits_per_element"] and rdo["mse"] > plain["mse"]


def test_rate_accuracy_error_diffusion_rows(capsys, cache_dir, tmp_path):
    doc = _run(capsys, "rate-accuracy", *_common(cache_dir), "--levels", "4", "--error-feedback", "1",
               "--error-diffusion", "row,plane", "--csv", str(tmp_path / "ra.csv"))
    plain, row, plane = doc["rows"][1:]
    assert "error_feedback" not in plain and row["error_feedback"] == plane["error_feedback"] == 1.0
    assert "error_diffusion" not in row and plane["error_diffusion"] == "plane"
    assert row["bits_per_element"] != plane["bits_per_element"]  # the encoder made other choices
    header, *lines = (tmp_path / "ra.csv").read_text().splitlines()
    assert "error_diffusion" in header.split(",") and sum("plane" in line for line in lines) == 1
    with pytest.raises(SystemExit) as e:
        main(["rate-accuracy", *_common(cache_dir), "--levels", "4", "--error-diffusion", "row,2d"])
    assert e.value.code == 2


def test_rate_accuracy_encoder_families_and_savings(capsys, cache_dir, tmp_path):
    doc = _run(capsys, "rate-accuracy", *_common(cache_dir), "--levels", "8,4", "--rdo-lambda", "0.3",
               "--error-feedback", "0.5", "--task-weights", "0.5", "--plot", str(tmp_path / "ra.png"),
               "--csv", str(tmp_path / "ra.csv"))
    rows = doc["rows"][1:]
    # per N: plain, RDO, feedback alone, RDO + feedback, and the two RDO ones with channel weights
    assert len(rows) == 2 * 6
    settings = sorted((r["levels"], r.get("rdo_lambda", 0), r.get("error_feedback", 0), r.get("channel_weights", ""))
                      for r in rows)
    assert settings[:6] == [(4, 0, 0, ""), (4, 0, 0.5, ""), (4, 0.3, 0, ""), (4, 0.3, 0, "sensitivity^0.5"),
                            (4, 0.3, 0.5, ""), (4, 0.3, 0.5, "sensitivity^0.5")]
    plain = {r["levels"]: r for r in rows if not r.get("rdo_lambda") and not r.get("error_feedback")}
    savings = {s["levels"]: s for s in doc["encoder_savings"]}
    assert set(savings) == {8, 4}
    for n, s in savings.items():
        assert s["bits_per_element"] == plain[n]["bits_per_element"]
        for key in ("kl", "fidelity_top1", "fidelity_top5"):
            fams = [s[key][f] for f in ("rdo", "rdo+feedback", "rdo+feedback+weights")]
            assert all(f["ratio"] <= 1.0 for f in fams)
            # each family may use everything the one before it may: never more bits
            assert fams[0]["ratio"] >= fams[1]["ratio"] >= fams[2]["ratio"]
            got = [r for r in rows if r["bits_per_element"] == fams[2]["bits_per_element"]]
            assert got and all((r[key] <= s[key]["plain_value"]) if key == "kl" else (r[key] >= s[key]["plain_value"])
                               for r in got)
    assert (tmp_path / "ra.png").stat().st_size > 1000
    assert "error_feedback" in (tmp_path / "ra.csv").read_text().splitlines()[0]


def test_frontier_keeps_only_points_no_cheaper_point_matches():
    from eval.core.report import frontier

    rows = [{"bits_per_element": b, "kl": k, "fidelity_top1": a}
            for b, k, a in [(1.0, 0.5, 0.5), (2.0, 0.6, 0.4), (3.0, 0.1, 0.9), (3.0, 0.2, 0.95), (4.0, 0.1, 0.9)]]
    assert [r["bits_per_element"] for r in frontier(rows, "kl", False)] == [1.0, 3.0]
    assert [(r["bits_per_element"], r["fidelity_top1"]) for r in frontier(rows, "fidelity_top1", True)] == [
        (1.0, 0.5), (3.0, 0.95)]
