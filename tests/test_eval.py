"""The eval scripts run end to end on small inputs and print what they promise."""

import json

import pytest

pytest.importorskip("torch")

from eval.core.runner import main as run_entry  # noqa: E402


def test_bench_codec_quick(capsys, tmp_path):
    from eval.bench import codec as bench_codec

    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- bench_codec:start -->\nPLACEHOLDER-7f3a\n<!-- bench_codec:end -->\ny\n")
    assert run_entry(["bench-codec", "--quick", "--no-real", "--repeats", "1", "--update-doc", str(readme)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"cells", "summary", "speed_target_case", "cold_start_s", "nncodec"} <= set(doc)
    assert len(doc["cells"]) == 3 * len(bench_codec.LEVELS)
    for cell in doc["cells"]:
        for model in ("paper", "spatial"):
            assert cell[model]["bits_per_element"] > 0
            assert 0.99 <= cell[model]["payload_over_ideal"] < 1.05
        assert cell["zstd-19_packed"] > 0 and cell["order0_entropy"] >= 0
    # rate grows with N for every tensor
    for group in {c["group"] for c in doc["cells"]}:
        rates = [c["spatial"]["bits_per_element"] for c in doc["cells"] if c["group"] == group]
        assert rates == sorted(rates)
    text = readme.read_text()
    assert "PLACEHOLDER-7f3a" not in text and "| yolov3_layer12_like" in text and text.endswith("y\n")
    rdo = doc["rdo_speed_case"]  # the λ tried whose rate is nearest 1 bit/element, greedy and look-ahead timed
    assert rdo["bits_per_element"] == min(rdo["rates_tried"].values(), key=lambda r: abs(r - 1.0))
    assert rdo["encode_melem_s"] > 0 and rdo["lookahead_encode_melem_s"] > 0 and "RDO encoding" in text


def test_rd_hull_and_interpolation():
    from eval.studies.rdo_variants import bits_at, hull, mse_at

    pts = [{"bits_per_element": b, "mse": m} for b, m in [(1, 8), (2, 4), (3, 3.5), (4, 1), (2.5, 5), (5, 1)]]
    h = hull(pts)
    assert h == [(1, 8), (2, 4), (4, 1)]  # (3, 3.5) lies above the chord from (2, 4) to (4, 1); (5, 1) is no better
    assert mse_at(h, 3) == 2.5 and mse_at(h, 0.5) is None and mse_at(h, 4.5) is None
    assert bits_at(h, 2.5) == 3 and bits_at(h, 6) == 1.5 and bits_at(h, 0.5) is None


def test_rdo_variants_quick(capsys, tmp_path):
    from eval.studies import rdo_variants

    doc_md = tmp_path / "codec.md"
    doc_md.write_text("a\n<!-- rdo_variants:start -->\nOLD\n<!-- rdo_variants:end -->\nb\n")
    assert run_entry(["rdo-variants", "--quick", "--update-doc", str(doc_md)]) == 0
    doc = json.loads(capsys.readouterr().out)
    (split,) = doc["splits"]
    assert set(split["points"]) == {"greedy", "lookahead"} and split["lookahead_over_greedy_bits"]
    assert all(0.3 < r < 2 for r in split["lookahead_over_greedy_bits"].values())
    assert "OLD" not in doc_md.read_text() and "| blocks.2 (24, 56, 56) |" in doc_md.read_text()


def test_channel_steps_factors_and_coding():
    import numpy as np

    import splitcodec as sc
    from eval.studies.channel_steps import SCALE_BITS, code_scaled, step_factors

    w = np.array([1e-3, 0.1, 1.0, 4.0, 50.0])
    assert np.array_equal(step_factors(w, 0.0), np.ones(5))
    g = step_factors(w, 0.5)
    k = 2 * np.log2(g)
    assert np.allclose(k, np.rint(k), rtol=0, atol=1e-9) and k.min() >= -(1 << (SCALE_BITS - 1)) and k.max() < 1 << (SCALE_BITS - 1)
    assert np.all(np.diff(g) < 0)  # the more sensitive the channel, the finer its step
    x = np.random.default_rng(0).gamma(0.6, 0.8, size=(5, 9, 11)).astype(np.float32)
    codec = sc.FeatureCodec(sc.UniformQuantizer(0.0, 6.3, 64))
    data, rec = code_scaled(codec, x, np.ones(5))
    assert data == codec.encode(x) and np.array_equal(rec, codec.quantizer(x))  # one step: today's stream
    data, rec = code_scaled(codec, x, g)
    assert np.array_equal(rec, sc.decode(data) * g.astype(np.float32)[:, None, None])
    top = (6.3 * g).astype(np.float32)[:, None, None]  # each channel's range shrinks with its step
    inside = x <= top
    assert inside.any(axis=(1, 2)).all() and (~inside).any()
    half = np.broadcast_to(0.05 * g[:, None, None], x.shape)
    assert np.all(np.abs(rec - x)[inside] <= half[inside] * (1 + 1e-5))  # within half of the channel's own step
    assert np.allclose(rec[~inside], np.broadcast_to(top, x.shape)[~inside])  # above it: clipped to its top level


def test_channel_steps_quick(capsys, tmp_path):
    from eval.studies import channel_steps

    doc_md = tmp_path / "codec.md"
    doc_md.write_text("a\n<!-- channel_steps:start -->\nOLD\n<!-- channel_steps:end -->\nb\n")
    assert run_entry(["channel-steps", "--quick", "--cache-dir", str(tmp_path / "cache"), "--update-doc", str(doc_md)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["references"]) == {"16", "8"} and len(doc["families"]) == 2 * 3
    assert doc["encoders"]["feedback 1 in the plane"]["error_diffusion"] == "plane"
    for fam in doc["families"]:
        rates = [p["bits_per_element"] for p in fam["points"]]
        assert rates == sorted(rates, reverse=True)  # coarser steps, fewer bits
        assert set(fam["needs"]) == {"16", "8"}
    plain_v1 = next(f for f in doc["families"] if f["exponent"] == 0 and f["encoder"] == "plain")
    assert plain_v1["factors_range"] == [1.0, 1.0]
    assert 0.8 < plain_v1["needs"]["8"]["kl_ratio"] < 1.25  # a finely scanned step lands near the plain N = 8 point
    text = doc_md.read_text()
    assert "OLD" not in text and "| a = 0 (v1) |" in text and "| a = 0.5 |" in text and text.endswith("b\n")


def test_demo_codec_prints_real_prediction(capsys):
    from eval.demos import codec as demo_codec

    assert run_entry(["demo-codec", "--levels", "4"]) == 0
    out = capsys.readouterr().out
    assert "'Egyptian cat'" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("4 ")]
    assert len(rows) == 2 and all(r.rstrip().endswith("same") for r in rows)


def test_context_study_small(capsys):
    from eval.studies import context_study

    assert run_entry(["context-study", "--splits", "blocks.11.expand", "--levels", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    row = doc["rows"][0]
    assert set(context_study.CANDIDATES) <= set(row)
    assert row["ratios_to_paper"]["4-neighbour weighted (chosen)"] < 1.0


def test_raw_http2_client_writes_valid_frames_and_hpack_literals():
    from eval.bench.h2raw import _hpack_int, _literal_after, frame, grpc_message, header_block

    assert _hpack_int(10) == b"\x0a" and _hpack_int(126) == b"\x7e"
    assert _hpack_int(127) == b"\x7f\x00" and _hpack_int(1337) == b"\x7f\xba\x09"  # RFC 7541 §5.1 with N = 7
    assert frame(0x4, 0x1, 0) == b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
    assert frame(0x0, 0x1, 3, b"ab") == b"\x00\x00\x02\x00\x01\x00\x00\x00\x03ab"
    assert header_block([(":path", "/x")]) == b"\x00\x05:path\x02/x"
    assert grpc_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_message(b"", compressed=True, declared=1 << 24) == b"\x01\x01\x00\x00\x00"
    block = b"\x88@\x0bgrpc-status\x0216\x00\x0cgrpc-message\x01x"
    assert _literal_after(block, b"grpc-status") == 16
    assert _literal_after(b"@\x0bgrpc-status\x82\x00\x00", b"grpc-status") is None  # Huffman-coded: unread
