import json

import numpy as np
import pytest

pytest.importorskip("torch")

from eval.core import runner  # noqa: E402
from eval.core.studies import calibration_count  # noqa: E402


def test_every_entry_is_registered_once_and_listed_in_help():
    mods = runner.entries()
    assert len(mods) == len(runner.ENTRIES)
    text = runner.build_parser().format_help()
    for name, m in mods.items():
        assert name in text and m.ENTRY.help in text and callable(m.run) and callable(m.add_arguments)
        assert hasattr(m, "markdown") == bool(m.ENTRY.section)


def test_calibration_count_adapts_and_errors_name_the_flag():
    assert calibration_count(300, None, held_out=True) == 100
    assert calibration_count(12, None, held_out=True, cap=16) == 4
    assert calibration_count(2, None, held_out=True) == 1
    assert calibration_count(12, 5, held_out=False) == 5
    with pytest.raises(ValueError, match="--calib"):
        calibration_count(12, 16, held_out=True)
    with pytest.raises(ValueError, match="--calib"):
        calibration_count(1, None, held_out=True)


def test_study_on_a_folder_of_unlabelled_photos_with_the_envelope(tmp_path, capsys):
    from PIL import Image

    from splitcodec.datasets import photo_crops

    folder = tmp_path / "mine" / "sub"
    folder.mkdir(parents=True)
    for i, (_, img) in enumerate(photo_crops(6, seed=3)):
        Image.fromarray(img).save(folder / f"p{i}.{'png' if i % 2 else 'JPG'}")
    (folder / "notes.txt").write_text("not an image")
    rc = runner.main(["rate-accuracy", "--dataset", f"folder:{tmp_path / 'mine'}", "--levels", "4",
                      "--exclude-calib", "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "r.json")])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calibration_samples"] == 2 and doc["evaluated_samples"] == 4  # a third calibrates, the rest held out
    assert doc["rows"][0]["method"] == "float" and 0 <= doc["rows"][1]["fidelity_top1"] <= 1
    assert "top1" not in doc["rows"][1] and np.isfinite(doc["rows"][1]["kl"])  # no labels: fidelity only
    env = doc["envelope"]
    assert env["entry"] == "rate-accuracy" and env["machine"]["cores"] and env["versions"]["numba"]
    assert json.loads((tmp_path / "r.json").read_text())["envelope"]["seed"] == 0
    rc = runner.main(["explore", "--dataset", f"folder:{tmp_path / 'mine'}", "--splits", "blocks.11.expand",
                      "--levels", "4", "--calib", "6", "--baselines", "", "--no-onnx",
                      "--cache-dir", str(tmp_path / "cache")])
    assert rc == 2 and "give a smaller --calib (at most 5)" in capsys.readouterr().err
    assert runner.main(["rate-accuracy", "--dataset", f"folder:{tmp_path / 'none'}"]) == 2
    assert "image folder not found" in capsys.readouterr().err
