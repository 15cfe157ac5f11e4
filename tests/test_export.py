import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from splitcodec import models  # noqa: E402
from splitcodec.models.export import export_head_onnx, onnx_head_max_abs_error  # noqa: E402


def test_onnx_head_matches_torch_efficientnet(tmp_path):
    s = models.split_model("efficientnet_lite0", weights="DEFAULT")
    path = export_head_onnx(s, tmp_path / "head.onnx")
    x = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))  # batch 3: dynamic batch axis
    assert onnx_head_max_abs_error(s, path, x) < 1e-3


def test_export_cli_darknet_head(tmp_path, capsys):
    from edge_app import export_head

    out = tmp_path / "yolo_head.onnx"
    assert export_head.main(["--model", "yolov3", "--weights", "random", "--output", str(out), "--check"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["feature_shape"] == [256, 52, 52] and doc["max_abs_error"] < 1e-3 and out.exists()


def test_export_cli_reports_bad_split(capsys):
    from edge_app import export_head

    assert export_head.main(["--model", "yolov3", "--weights", "random", "--split", "layer99", "--output", "/tmp/x.onnx"]) == 2
    assert "valid splits" in capsys.readouterr().err
