"""Bounded fuzzing of the decoder: mutated, truncated, extended and random streams.

Every input must either decode to an array of the declared shape or raise a
``BitstreamError``; anything else (another exception, a crash, a hang) fails.
Mutations are also re-signed (CRC recomputed) so that damaged payloads reach
the arithmetic decoder instead of stopping at the checksum.
"""

import collections

import numpy as np
import pytest

import splitcodec as sc
from splitcodec.errors import BitstreamError

from .streams import resign

MAX_ELEMENTS = 1 << 14


def _base_streams():
    rng = np.random.default_rng(99)
    out = []
    for levels, model, shape in [(2, "spatial", (3, 6, 7)), (4, "paper", (2, 9, 5)), (4, "spatial", (4, 8, 8)),
                                 (16, "spatial", (2, 5, 5)), (256, "paper", (1, 4, 4)), (7, "spatial", (30,))]:
        x = np.maximum(rng.normal(size=shape), 0).astype(np.float32) * 2
        out.append(sc.FeatureCodec(sc.UniformQuantizer(0.0, 3.0, levels), model).encode(x))
    q = sc.ScalarQuantizer.from_levels([0.0, 0.37, 1.1, 3.0])
    out.append(sc.FeatureCodec(q).encode(np.abs(rng.normal(size=(3, 7, 7))).astype(np.float32)))
    return out


def _mutate(rng, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.integers(0, 7)
    if kind == 0:  # flip 1-3 bits
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(0, len(b))
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # overwrite bytes
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(0, len(b))] = rng.integers(0, 256)
    elif kind == 2:  # truncate
        del b[rng.integers(0, len(b)):]
    elif kind == 3:  # extend
        b += rng.integers(0, 256, size=rng.integers(1, 9), dtype=np.uint8).tobytes()
    elif kind == 4:  # delete one byte
        del b[rng.integers(0, len(b))]
    elif kind == 5:  # insert one byte
        b.insert(int(rng.integers(0, len(b) + 1)), int(rng.integers(0, 256)))
    else:  # random stream, sometimes with a plausible start
        n = int(rng.integers(0, 64))
        b = bytearray(rng.integers(0, 256, size=n, dtype=np.uint8).tobytes())
        if n >= 4 and rng.random() < 0.7:
            b[0:4] = bytes([0xCF, 1, int(rng.integers(0, 256)), int(rng.integers(0, 256))])
    return bytes(b)


def run_fuzz(cases: int, seed: int) -> collections.Counter:
    rng = np.random.default_rng(seed)
    bases = _base_streams()
    sizes = [sc.decode_header(s).size for s in bases]
    outcomes: collections.Counter = collections.Counter()
    for n in range(cases):
        j = int(rng.integers(0, len(bases)))
        data = _mutate(rng, bases[j])
        if n % 2 and len(data) >= sizes[j]:
            data = resign(data, sizes[j])  # let damaged payloads reach the arithmetic decoder
        try:
            y = sc.decode(data, max_elements=MAX_ELEMENTS)
        except BitstreamError as e:
            outcomes[type(e).__name__] += 1
        else:
            assert y.dtype == np.float32 and y.size <= MAX_ELEMENTS
            outcomes["decoded"] += 1
    return outcomes


def _check(outcomes, cases):
    assert sum(outcomes.values()) == cases
    # the damaged payloads really reached the kernel's own checks
    for name in ("TruncatedPayloadError", "TrailingBytesError", "ChecksumError", "BadMagicError",
                 "TruncatedStreamError"):
        assert outcomes[name] > 0, (name, outcomes)


def test_fuzz_20k():
    cases = 20_000
    outcomes = run_fuzz(cases, seed=2026)
    _check(outcomes, cases)


@pytest.mark.slow
def test_fuzz_1m():
    cases = 1_000_000
    outcomes = run_fuzz(cases, seed=7)
    print("fuzz 1M outcomes:", dict(outcomes))
    _check(outcomes, cases)
