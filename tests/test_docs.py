"""Examples in the README and in docstrings run as written."""

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_example():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README lost its Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


@pytest.mark.parametrize("module", ["splitcodec.quantization", "splitcodec.codec", "splitcodec.rd", "splitcodec.models",
                                    "splitcodec.encoder_config", "splitcodec.clip", "splitcodec.pareto"])
def test_docstring_examples(module):
    if module == "splitcodec.models":
        pytest.importorskip("torch")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# every generated section of README/docs is exactly what its script renders from the committed JSON
GENERATED = [
    ("README.md", "bench_codec", "docs/bench_codec.json", "eval.bench.codec"),
    ("README.md", "bench_system", "docs/bench_system.json", "eval.bench.system"),
    ("docs/codec.md", "context_study", "docs/context_study.json", "eval.studies.context_study"),
    ("docs/codec.md", "rdo_variants", "docs/rdo_variants.json", "eval.studies.rdo_variants"),
    ("docs/models.md", "model_table", "docs/model_table.json", "eval.docs.model_table"),
    ("docs/models.md", "darknet_fidelity", "docs/darknet_fidelity.json", "eval.studies.darknet_fidelity"),
    ("docs/bitstream.md", "decode_cost", "docs/decode_cost.json", "eval.bench.decode_cost"),
    ("docs/bitstream.md", "cross_arch", "docs/aarch64.json", "tests.cross_arch"),
    ("docs/explore.md", "explore", "docs/results/explore.json", "eval.studies.explore"),
    ("docs/deploy.md", "reliability", "docs/reliability.json", "eval.bench.reliability"),
    ("docs/testing.md", "mutation", "docs/mutation.json", "tests.mutation"),
]


@pytest.mark.parametrize("doc,name,source,module", GENERATED, ids=[g[1] for g in GENERATED])
def test_generated_section_matches_its_json(doc, name, source, module):
    import json

    text = (ROOT / doc).read_text()
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    assert start in text and end in text, f"{doc} lost its {name} section"
    section = text.split(start, 1)[1].split(end, 1)[0]
    data = json.loads((ROOT / source).read_text())
    assert section == importlib.import_module(module).markdown(data), (
        f"{doc}'s {name} section is not what {module} renders from {source}: regenerate it")


def test_results_doc_is_what_make_results_renders():
    """docs/results.md is generated whole by `python -m eval results` from the committed study files."""
    import argparse

    from eval.docs.results import render

    r = ROOT / "docs" / "results"
    args = argparse.Namespace(rate_accuracy=r / "rate_accuracy.json", hevc=r / "hevc.json", calibrate=r / "calibrate.json",
                              clip_sweep=r / "clip_sweep.json", ecq=r / "ecq.json",
                              rate_accuracy_rdo=r / "rate_accuracy_rdo.json")
    assert (ROOT / "docs" / "results.md").read_text() == render(args), "regenerate docs/results.md (make results)"
