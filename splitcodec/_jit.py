"""Numba's on-disk cache, keyed by the kernel sources so it can never serve stale machine code.

Numba validates a cached kernel against the modification time and size of the file that defines it,
not the files of the helpers it inlines (``entropy/engine.py``, ``entropy/contexts.py``): after an
edit or a ``git pull`` there, it would load the old code.  Here every kernel module is compiled into a
cache directory named after a hash of all kernel sources and the numba version, so any change to any
of them selects a fresh directory.  The directory is ``$NUMBA_CACHE_DIR/splitcodec-<key>`` when
``NUMBA_CACHE_DIR`` is set, else ``~/.cache/splitcodec/numba/<key>`` (``$XDG_CACHE_HOME`` honoured).
Only splitcodec's kernels are affected: the setting is restored once they are decorated.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numba

PACKAGE = Path(__file__).parent
# every module with @njit(cache=True) kernels, and every module whose functions they inline
KERNEL_SOURCES = ("quantization.py", "entropy/engine.py", "entropy/contexts.py", "entropy/kernels.py")


def kernel_sources() -> dict[str, bytes]:
    return {rel: (PACKAGE / rel).read_bytes() for rel in KERNEL_SOURCES}


def cache_key(sources: dict[str, bytes], numba_version: str = numba.__version__) -> str:
    """A short hash of the numba version and every kernel source file (name and contents)."""
    h = hashlib.sha256(numba_version.encode())
    for rel in sorted(sources):
        h.update(rel.encode() + b"\0" + len(sources[rel]).to_bytes(8, "little") + sources[rel])
    return h.hexdigest()[:16]


def cache_dir(key: str) -> str:
    root = os.environ.get("NUMBA_CACHE_DIR")
    if root:
        return os.path.join(root, f"splitcodec-{key}")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "splitcodec", "numba", key)


@contextlib.contextmanager
def keyed_cache():
    """Kernels decorated inside this block cache under the current sources' key."""
    previous = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = cache_dir(cache_key(kernel_sources()))
    try:
        yield
    finally:
        numba.config.CACHE_DIR = previous
