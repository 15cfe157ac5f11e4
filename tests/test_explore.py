"""The split-point explorer: rows on the same axes for splits and input codings, a Pareto front, a
recommendation saved as a quantizer file that the apps load, and the label-free fidelity metrics."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from eval.studies import explore# noqa: E402
from eval.core.runner import main  # noqa: E402
from eval.core.evaluate import fidelity_counts, fixed_sum, FIXED  # noqa: E402


def test_fidelity_counts_on_known_logits():
    ref = np.array([[5.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 3.0]])
    same = fidelity_counts(ref, ref)
    assert same["agree1"] == 3 and same["kl"] == 0 and same["confident"] == 2 and same["agree_confident"] == 2
    other = np.array([[0.0, 5.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 3.0]])
    c = fidelity_counts(other, ref)
    assert c["agree1"] == 2 and c["agree_confident"] == 1 and c["agree5"] == 3
    p = np.exp(ref[0]) / np.exp(ref[0]).sum()
    q = np.exp(other[0]) / np.exp(other[0]).sum()
    assert c["kl"] / 2 ** FIXED == pytest.approx(float((p * np.log(p / q)).sum()), rel=1e-9)


def test_fixed_sums_do_not_depend_on_grouping():
    v = np.random.default_rng(0).random(1000) * 1e3
    assert fixed_sum(v) == fixed_sum(v[:333]) + fixed_sum(v[333:])


def _row(split, nbytes, agree, kl=0.1, edge=10.0):
    return {"split": split, "method": "uniform" if split != "input" else "jpeg", "levels": 4, "clip": [0.0, 1.0],
            "quality": 90, "bytes_per_frame": nbytes, "agreement": agree, "top5_agreement": 1.0, "kl": kl,
            "edge_ms": edge}


def test_pareto_and_recommendation():
    rows = [_row("a", 1000, 0.90), _row("a", 3000, 1.0), _row("b", 2000, 0.99, edge=50.0), _row("b", 2500, 0.95),
            _row("input", 1500, 0.99)]
    explore.pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, False, True]
    rec = explore.recommend(rows, 0.99)
    assert rec["choice"]["bytes_per_frame"] == 2000 and rec["candidates"] == 2  # splits only, fewest bytes
    assert rec["cheapest_input_baseline_meeting_target"]["bytes_per_frame"] == 1500
    assert explore.recommend(rows, 0.99, edge_budget_ms=20)["choice"]["bytes_per_frame"] == 3000
    assert explore.recommend(rows, 0.99, bandwidth=8 * 2000 * 30 - 1, fps=30)["choice"] is None
    assert explore.recommend(rows, 0.99, bandwidth=8 * 2000 * 30, fps=30)["choice"]["bytes_per_frame"] == 2000
    assert explore.recommend(rows, 1.01)["choice"] is None


def test_explore_cli_end_to_end(capsys, tmp_path):
    save = tmp_path / "q.json"
    assert main(["explore", "--dataset", "photos:6", "--calib", "2", "--splits", "blocks.15,blocks.11.expand",
                 "--levels", "4,16", "--baselines", "jpeg,webp", "--no-onnx", "--target-agreement", "0.5",
                 "--save", str(save), "--cache-dir", str(tmp_path / "c"), "--csv", str(tmp_path / "e.csv"),
                 "--plot", str(tmp_path / "e.png")]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["rows"]
    assert len(rows) == 2 * 2 + 2 * len(explore.BASELINES["jpeg"]) and doc["samples"] == 4
    for r in rows:
        assert {"split", "method", "bytes_per_frame", "agreement", "top5_agreement", "kl", "edge_ms"} <= set(r)
        assert 0 <= r["agreement"] <= 1 and r["kl"] >= 0 and r["bytes_per_frame"] > 0
    by = {(r["split"], r["levels"]): r for r in rows if r["split"] != "input"}
    assert by[("blocks.15", 16)]["bytes_per_frame"] > by[("blocks.15", 4)]["bytes_per_frame"]
    assert by[("blocks.15", 16)]["signed"] and not by[("blocks.11.expand", 16)]["signed"]
    assert by[("blocks.15", 4)]["clip"][0] < 0 == by[("blocks.11.expand", 4)]["clip"][0]
    front = [r for r in rows if r["pareto"]]
    for r in rows:  # a row off the front is beaten by a front row on both axes
        if not r["pareto"]:
            assert any(f["bytes_per_frame"] <= r["bytes_per_frame"] and f["agreement"] >= r["agreement"] for f in front)
    choice = doc["recommendation"]["choice"]
    assert choice["agreement"] >= 0.5 and (tmp_path / "e.png").stat().st_size > 0
    from cloud_app.specs import ModelSpec
    from splitcodec.quantizer_file import load_quantizer_file

    q, _, meta = load_quantizer_file(save)
    assert (meta["split"], q.levels, [q.c_min, q.c_max]) == (choice["split"], choice["levels"], choice["clip"])
    assert ModelSpec.from_calibration(save) == ModelSpec("efficientnet_lite0", choice["split"], "DEFAULT", choice["levels"],
                                                         str(save))
    assert "split,method" in (tmp_path / "e.csv").read_text().splitlines()[0]
