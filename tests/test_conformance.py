"""The conformance corpus (tests/data/conformance/): every stream gives its documented outcome,
and the files are exactly what the generator writes (so the corpus cannot drift from the code)."""

import json
from pathlib import Path

import pytest

import splitcodec as sc
from splitcodec import errors

from eval.tools import conformance as generate

ROOT = Path(__file__).parent / "data" / "conformance"
MANIFEST = json.loads((ROOT / "manifest.json").read_text())


def test_corpus_files_are_what_the_generator_writes():
    files, manifest = generate.build()
    on_disk = {p.name for p in (ROOT / "streams").glob("*.bin")}
    assert on_disk == set(files), "regenerate with: python -m eval.tools.conformance"
    for name, data in files.items():
        assert (ROOT / "streams" / name).read_bytes() == data, name
    assert MANIFEST["cases"] == manifest


def test_the_generator_writes_where_told_and_help_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:  # once wrote a corpus into a folder named --help
        generate.main(["--help"])
    assert stop.value.code == 0 and "conformance corpus" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    generate.main([str(tmp_path / "corpus")])
    written = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert written["cases"] == MANIFEST["cases"]
    assert {p.name for p in (tmp_path / "corpus" / "streams").iterdir()} == {p.name for p in (ROOT / "streams").iterdir()}


def test_corpus_covers_every_error_class_and_both_outcomes():
    expected = {c["error"] for c in MANIFEST["cases"] if c["expect"] == "error"}
    bitstream_errors = {n for n in errors.__all__ if issubclass(getattr(errors, n), errors.BitstreamError)}
    assert expected == bitstream_errors - {"BitstreamError"}
    assert sum(c["expect"] == "values" for c in MANIFEST["cases"]) >= 20


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=[c["file"] for c in MANIFEST["cases"]])
def test_conformance_case(case):
    data = (ROOT / case["file"]).read_bytes()
    before = [(ROOT / f).read_bytes() for f in case.get("after", [])]
    decode = (lambda d: generate.decode_after(d, before)) if "after" in case else sc.decode
    if case["expect"] == "values":
        values = decode(data)
        assert list(values.shape) == case["shape"]
        assert generate._sha256(values) == case["sha256"], case["reason"]
    else:
        with pytest.raises(errors.BitstreamError) as info:
            decode(data)
        assert type(info.value).__name__ == case["error"], f"{case['reason']}: got {info.value!r}"
