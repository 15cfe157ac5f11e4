"""Cross-architecture determinism check (``make test-aarch64``): the same corpus is encoded on
x86-64 and on aarch64 (user-mode emulation), and everything must agree bit for bit.

    python -m eval.tools.cross_arch write DIR     # streams, indices and designed levels of the corpus
    python -m eval.tools.cross_arch decode DIR    # decode another machine's streams (JSON to stdout)
    python -m eval.tools.cross_arch compare A B A_DECODES_B B_DECODES_A   # JSON verdict to stdout

Inputs come from integer arithmetic only, so both machines start from identical float32
tensors; only numpy and numba are needed (this runs in a bare arm64 root).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np

import splitcodec as sc

LEVELS = (2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256)


def _input(shape, seed: int, lo: int = -(1 << 11), hi: int = 1 << 13) -> np.ndarray:
    """Integers scaled by a power of two: exact in float32 on every machine."""
    v = np.random.default_rng(seed).integers(lo, hi, size=shape, dtype=np.int64)
    v = v + np.roll(v, 1, -1) // 2  # some spatial correlation, still integers
    return (v / 1024.0).astype(np.float32)


def corpus():
    """(name, codec, x, designed levels or None) for every case."""
    x = np.maximum(_input((6, 20, 23), 1), 0)
    signed = _input((6, 20, 23), 2)
    ties = (np.arange(6 * 20 * 23).reshape(6, 20, 23) % 13).astype(np.float32) * 0.25  # on half-steps
    for n in LEVELS:
        for model in ("paper", "spatial"):
            yield f"uniform_n{n}_{model}", sc.FeatureCodec(sc.UniformQuantizer(0.0, 7.0, n), model), x, None
        yield f"uniform_n{n}_negclip", sc.FeatureCodec(sc.UniformQuantizer(-3.25, 4.5, n)), signed, None
        yield f"uniform_n{n}_ties", sc.FeatureCodec(sc.UniformQuantizer(0.0, 0.5 * (n - 1), n)), ties, None
        for model in ("paper", "spatial"):  # rate-distortion optimised choices: float64 costs, integer bit table
            yield (f"rdo_n{n}_{model}", sc.FeatureCodec(sc.UniformQuantizer(-3.25, 4.5, n), model, rdo_lambda=0.3),
                   signed, None)
            # look-ahead, error feedback and channel weights: more float64 arithmetic in the choices
            weights = 0.25 + (np.arange(signed.shape[0]) % 4) * 0.5
            yield (f"rdo_task_n{n}_{model}", sc.FeatureCodec(sc.UniformQuantizer(-3.25, 4.5, n), model, rdo_lambda=0.3,
                                                              rdo_lookahead=True, error_feedback=0.5,
                                                              channel_weights=weights), signed, None)
        # error diffused in the plane (right and below), with and without RDO
        yield (f"rdo_plane_n{n}", sc.FeatureCodec(sc.UniformQuantizer(-3.25, 4.5, n), rdo_lambda=0.3, rdo_lookahead=True,
                                                  error_feedback=1.0, error_diffusion="plane"), signed, None)
        yield (f"diffusion_plane_n{n}", sc.FeatureCodec(sc.UniformQuantizer(0.0, 7.0, n), error_feedback=0.75,
                                                        error_diffusion="plane"), x, None)
        if n <= 64:
            for method in ("modified", "conventional"):
                q = sc.design_ecq(x, n, lam=0.02, c_min=0.0, c_max=7.0, method=method)
                yield f"ecq_{method}_n{n}", sc.FeatureCodec(q, "spatial"), x, q.reconstruction
    q = sc.lloyd_max(signed, 16, -3.25, 4.5)
    yield "lloyd_max_n16", sc.FeatureCodec(q, "paper"), signed, q.reconstruction
    for lam in (0.0, 0.3):  # levels refined with the RDO encoder in the loop (float64 means of its choices)
        r = sc.rd.refine_levels(sc.UniformQuantizer(-2.0, 3.0, 6), [signed], lam, iterations=2, lookahead=lam > 0)[-1]
        codec = sc.FeatureCodec(r["quantizer"], rdo_lambda=r["rdo_lambda"], rdo_lookahead=lam > 0)
        yield f"refined_n6_lam{lam:g}", codec, signed, r["quantizer"].reconstruction
    yield "uniform_scale_single", sc.FeatureCodec(sc.UniformQuantizer(6.737916e-08, 6.478021, 256)), x, None


SEQUENCE_LEVELS = (2, 4, 8, 16, 64, 256)


def sequences():
    """(name, SequenceEncoder, frames) for every sequence case (bitstream v2: intra and predicted frames)."""
    base = _input((6, 20, 23), 3)
    frames = [base]
    for k in range(5):  # a slowly changing scene, still exact in float32
        frames.append(frames[-1] + _input((6, 20, 23), 10 + k, -64, 64) * np.float32(0.25))
    for n in SEQUENCE_LEVELS:
        q = sc.UniformQuantizer(-3.25, 4.5, n)
        yield f"seq_n{n}_temporal", sc.SequenceEncoder(sc.FeatureCodec(q), sequence_id=n, refresh_period=4), frames
        yield (f"seq_n{n}_rdo", sc.SequenceEncoder(sc.FeatureCodec(q, rdo_lambda=0.3, rdo_lookahead=True,
                                                                   error_feedback=0.5), sequence_id=n), frames)
        yield (f"seq_n{n}_paper_state", sc.SequenceEncoder(sc.FeatureCodec(q, "paper"), sequence_id=n, temporal=False),
               frames)


def _sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write(out: Path) -> dict:
    (out / "streams").mkdir(parents=True, exist_ok=True)
    doc = {"machine": platform.machine(), "numpy": np.__version__, "cases": {}}
    import numba
    doc["numba"] = numba.__version__
    for name, codec, x, levels in corpus():
        data, indices = codec.encode(x, return_indices=True)
        (out / "streams" / f"{name}.bin").write_bytes(data)
        doc["cases"][name] = {
            "stream": _sha(np.frombuffer(data, np.uint8)),
            "indices": _sha(indices),
            "levels": None if levels is None else _sha(np.asarray(levels, "<f4")),
            "decoded": _sha(np.asarray(sc.decode(data), "<f4")),
        }
    for name, enc, frames in sequences():
        dec = sc.SequenceDecoder()
        for i, x in enumerate(frames):
            data, indices = enc.encode(x, return_indices=True)
            (out / "streams" / f"{name}_f{i}.bin").write_bytes(data)
            doc["cases"][f"{name}_f{i}"] = {"stream": _sha(np.frombuffer(data, np.uint8)), "indices": _sha(indices),
                                            "levels": None, "decoded": _sha(np.asarray(dec.decode(data), "<f4"))}
    (out / "manifest.json").write_text(json.dumps(doc, indent=1))
    return doc


def decode_dir(d: Path) -> dict:
    """The decoded values' hash of every stream; the frames of a sequence (``seq_*_f<i>``) decoded in order by
    one decoder per sequence."""
    out, decoders = {}, {}
    paths = sorted((d / "streams").glob("*.bin"), key=lambda p: (p.stem.rsplit("_f", 1)[0], len(p.stem), p.stem))
    for p in paths:
        if p.stem.startswith("seq_"):
            dec = decoders.setdefault(p.stem.rsplit("_f", 1)[0], sc.SequenceDecoder())
            out[p.stem] = _sha(np.asarray(dec.decode(p.read_bytes()), "<f4"))
        else:
            out[p.stem] = _sha(np.asarray(sc.decode(p.read_bytes()), "<f4"))
    return out


def compare(a: Path, b: Path, a_decodes_b: Path, b_decodes_a: Path) -> dict:
    ma = json.loads((a / "manifest.json").read_text())
    mb = json.loads((b / "manifest.json").read_text())
    ab = json.loads(a_decodes_b.read_text())
    ba = json.loads(b_decodes_a.read_text())
    differ = []
    for name, ca in ma["cases"].items():
        cb = mb["cases"].get(name)
        if cb is None:
            differ.append(f"{name}: missing on {mb['machine']}")
            continue
        differ += [f"{name}: {k} differs" for k in ("stream", "indices", "levels", "decoded") if ca[k] != cb[k]]
        if ab.get(name) != cb["decoded"]:
            differ.append(f"{name}: {ma['machine']} decodes {mb['machine']}'s stream differently")
        if ba.get(name) != ca["decoded"]:
            differ.append(f"{name}: {mb['machine']} decodes {ma['machine']}'s stream differently")
    return {"machines": [ma["machine"], mb["machine"]], "numpy": [ma["numpy"], mb["numpy"]],
            "numba": [ma["numba"], mb["numba"]], "cases": len(ma["cases"]),
            "streams": sum(1 for _ in ma["cases"]),
            "sequences": len({n.rsplit("_f", 1)[0] for n in ma["cases"] if n.startswith("seq_")}),
            "sequence_frames": sum(n.startswith("seq_") for n in ma["cases"]), "ecq_designs": sum(c["levels"] is not None for c in ma["cases"].values()),
            "identical": not differ, "differences": differ}


def markdown(res: dict) -> str:
    verdict = "identical" if res["identical"] else f"**{len(res['differences'])} differences**"
    return (f"**Cross-architecture check** (`make test-aarch64`, generated from docs/results/aarch64.json): "
            f"{res['cases']} streams (every N from 2 to 256 in steps, both context models, negative c_min, ties, "
            f"rate-distortion optimised encoding — greedy, and with look-ahead, error feedback along rows and in the "
            f"plane, channel weights —, "
            f"{res.get('sequence_frames', 0)} frames of {res.get('sequences', 0)} version-2 sequences: temporal "
            f"contexts, carried probability state, temporal RDO, intra refresh —, "
            f"{res['ecq_designs']} ECQ/Lloyd-Max/refined designs) encoded on {res['machines'][0]} and on "
            f"{res['machines'][1]} (qemu user-mode emulation, Debian arm64 root; numpy {res['numpy'][1]}, "
            f"numba {res['numba'][1]}): stream bytes, quantization indices, designed levels and decoded values "
            f"{verdict}, and each side decodes the other's streams to the same values. "
            f"Run time {res['total_s']} s ({res['emulated_s']} s emulated).")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd, *rest = argv
    if cmd == "write":
        doc = write(Path(rest[0]))
        print(f"{doc['machine']}: wrote {len(doc['cases'])} cases", file=sys.stderr)
    elif cmd == "decode":
        print(json.dumps(decode_dir(Path(rest[0]))))
    elif cmd == "report":  # JSON result -> the cross_arch section of a markdown file
        from eval.core.common import update_section

        update_section(rest[1], "cross_arch", markdown(json.loads(Path(rest[0]).read_text())), source=rest[0])
    elif cmd == "compare":
        res = compare(*(Path(r) for r in rest))
        print(json.dumps(res, indent=1))
        return 0 if res["identical"] else 1
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
