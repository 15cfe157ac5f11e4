"""The numba cache can never serve kernels older than their sources, and the kernels never read or
write out of bounds (checked with numba's bounds checking on the fuzz corpus)."""

import os
import subprocess
import sys

import numba
import pytest

from splitcodec import _jit
from splitcodec.entropy import kernels
from splitcodec import quantization


def test_cache_key_changes_when_any_kernel_source_changes():
    sources = _jit.kernel_sources()
    key = _jit.cache_key(sources)
    assert key == _jit.cache_key(dict(sources))
    for rel in _jit.KERNEL_SOURCES:  # an edit anywhere, inlined helpers included, selects a new cache
        edited = dict(sources)
        edited[rel] = sources[rel].replace(b"return", b"return ", 1)
        assert edited[rel] != sources[rel]
        assert _jit.cache_key(edited) != key, rel
    assert _jit.cache_key(sources, "0.0.0") != key  # and so does another numba


def test_every_kernel_source_is_covered():
    # each module that defines or inlines kernels is listed
    pkg = _jit.PACKAGE
    with_njit = {str(p.relative_to(pkg)) for p in pkg.rglob("*.py") if "numba.njit" in p.read_text()}
    assert with_njit <= set(_jit.KERNEL_SOURCES)


def test_kernels_cache_under_the_current_key_and_others_are_untouched():
    expected = _jit.cache_dir(_jit.cache_key(_jit.kernel_sources()))
    for kernel in (kernels.encode, kernels.decode, quantization._quantize_uniform_kernel,
                   quantization._quantize_thresholds_kernel):
        assert kernel._cache._cache_path.startswith(expected), kernel
    assert numba.config.CACHE_DIR != expected  # restored after splitcodec's kernels were decorated


@pytest.mark.no_mutation
def test_fuzz_corpus_under_numba_bounds_checking(tmp_path):
    # a fresh cache directory: the bounds-checked kernels are compiled, never loaded from a cache
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path))
    code = ("from tests.test_fuzz import run_fuzz, _check; import splitcodec.entropy.kernels as k, numba;"
            "assert numba.config.BOUNDSCHECK; o = run_fuzz(3000, seed=11); _check(o, 3000); print(dict(o));"
            # the rate-distortion encoder too (look-ahead, feedback, channel weights), every N boundary, both models, ranks 1-4
            "import numpy as np, splitcodec as sc; r = np.random.default_rng(1)\n"
            "for n in (2, 3, 16, 255, 256):\n"
            " for m in ('paper', 'spatial'):\n"
            "  for shape in ((7,), (3, 5), (2, 4, 6), (2, 1, 3, 3)):\n"
            "   x = r.normal(size=shape).astype(np.float32); q = sc.UniformQuantizer(-1, 2, n)\n"
            "   for kw in ({}, {'rdo_lookahead': True, 'error_feedback': 0.5}):\n"
            "    w = {'channel_weights': r.uniform(0.1, 3, shape[-3])} if len(shape) > 2 else {}\n"
            "    d, i = sc.FeatureCodec(q, m, rdo_lambda=0.7, **kw, **w).encode(x, return_indices=True)\n"
            "    assert (sc.decode(d) == q.dequantize(i)).all()\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "decoded" in r.stdout
