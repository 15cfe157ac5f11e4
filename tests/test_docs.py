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
                                    "splitcodec.encoder_config", "splitcodec.clip", "splitcodec.pareto",
                                    "splitcodec.sequence"])
def test_docstring_examples(module):
    if module == "splitcodec.models":
        pytest.importorskip("torch")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# every generated section of README/docs is exactly what its module renders from the JSON its first line names
GENERATED = [tuple(row.split()) for row in """
README.md          bench_codec       eval.bench.codec
README.md          bench_system      eval.bench.system
docs/codec.md      context_study     eval.studies.context_study
docs/codec.md      rdo_variants      eval.studies.rdo_variants
docs/codec.md      channel_steps     eval.studies.channel_steps
docs/models.md     model_table       eval.docs.model_table
docs/models.md     darknet_fidelity  eval.studies.darknet_fidelity
docs/bitstream.md  decode_cost       eval.bench.decode_cost
docs/bitstream.md  cross_arch        eval.tools.cross_arch
docs/explore.md    explore           eval.studies.explore
docs/deploy.md     reliability       eval.bench.reliability
docs/live.md       bench_link        eval.bench.link
docs/testing.md    mutation          eval.tools.mutation
README.md          video_summary     eval.studies.video
""".strip().splitlines()]  # file, section, module
SOURCE = re.compile(r"<!-- source: (\S+) -->\n")


@pytest.mark.parametrize("doc,name,module", GENERATED, ids=[g[1] for g in GENERATED])
def test_generated_section_matches_its_json(doc, name, module):
    import json

    text = (ROOT / doc).read_text()
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    assert start in text and end in text, f"{doc} lost its {name} section"
    section = text.split(start, 1)[1].split(end, 1)[0]
    origin = SOURCE.match(section)
    assert origin, f"{doc}'s {name} section does not name the JSON it was rendered from (<!-- source: PATH -->)"
    source = origin.group(1)
    assert source.startswith("docs/results/"), f"{name}: generated results live under docs/results/, not {source}"
    data = json.loads((ROOT / source).read_text())
    assert section[origin.end():] == importlib.import_module(module).markdown(data), (
        f"{doc}'s {name} section is not what {module} renders from {source}: regenerate it")


def test_every_generated_section_is_checked():
    """A section added to a page without an entry above would go unchecked."""
    found = {(str(p.relative_to(ROOT)), n) for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
             for n in re.findall(r"^<!-- ([a-z_]+):start -->$", p.read_text(), re.M)}
    assert found == {(d, n) for d, n, _ in GENERATED}


def test_results_doc_is_what_make_results_renders():
    """docs/results.md is generated whole by `python -m eval results` from the committed study files."""
    import argparse

    from eval.docs.results import render

    r = ROOT / "docs" / "results"
    args = argparse.Namespace(rate_accuracy=r / "rate_accuracy.json", hevc=r / "hevc.json", calibrate=r / "calibrate.json",
                              clip_sweep=r / "clip_sweep.json", ecq=r / "ecq.json",
                              rate_accuracy_rdo=r / "rate_accuracy_rdo.json", video=r / "x86_64-2cpu" / "video.json")
    assert (ROOT / "docs" / "results.md").read_text() == render(args), "regenerate docs/results.md (make results)"


def test_the_version_has_one_source():
    """pyproject.toml reads the version from splitcodec.__version__; the installed metadata says the same."""
    import importlib.metadata

    import splitcodec

    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "splitcodec.__version__"' in text
    assert not re.search(r'^version\s*=\s*"', text, re.M)  # no literal version beside it
    assert importlib.metadata.version("splitcodec") == splitcodec.__version__
    assert f"## {splitcodec.__version__}" in (ROOT / "docs" / "changelog.md").read_text()
