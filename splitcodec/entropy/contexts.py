"""Context models: which adaptive probability each bin is coded with.

A context model only *chooses* context indices; the engine does the coding.
Bin ``k`` of an index is the k-th bin of its truncated-unary codeword (``1``
iff the index is greater than ``k``).  Ids are stable and written in the
bitstream header; never renumber them.

``paper`` (id 0)
    One context per bin position: ``ctx = k`` (N - 1 contexts), as in
    Cohen, Choi & Bajić (ICME 2020).

``spatial`` (id 1, the default)
    Bin position plus already-coded neighbours in the same channel plane:
    ``ctx = 7 k + 2 [L > k] + 2 [A > k] + [AL > k] + [AR > k]`` where L, A, AL, AR
    are the indices to the left, above, above-left and above-right (0 outside
    the plane): 7 (N - 1) contexts.  Chosen by measurement on EfficientNet-Lite0
    activations of real photos (``python -m eval context-study``): it beat the
    left+above-only model on large planes and tied it on small ones, and plane
    classes or a cross-channel activity context each gained only about 1 %.
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import UnknownIdError

PAPER = 0
SPATIAL = 1
SPATIAL_CLASSES = 7

CONTEXT_MODELS = {"paper": PAPER, "spatial": SPATIAL}
CONTEXT_MODEL_NAMES = {v: k for k, v in CONTEXT_MODELS.items()}


def context_model_id(name_or_id) -> int:
    """Stable id of a context model given by name or id."""
    if isinstance(name_or_id, str):
        try:
            return CONTEXT_MODELS[name_or_id]
        except KeyError:
            raise UnknownIdError(
                f"unknown context model {name_or_id!r}; choose one of {sorted(CONTEXT_MODELS)}"
            ) from None
    if int(name_or_id) in CONTEXT_MODEL_NAMES:
        return int(name_or_id)
    raise UnknownIdError(f"unknown context model id {name_or_id}; known ids {sorted(CONTEXT_MODEL_NAMES)}")


def n_contexts(model: int, levels: int) -> int:
    """Number of adaptive contexts a model uses for N = ``levels``."""
    if model == PAPER:
        return levels - 1
    if model == SPATIAL:
        return SPATIAL_CLASSES * (levels - 1)
    raise UnknownIdError(f"unknown context model id {model}")


@numba.njit(inline="always")
def spatial_context(k, left, above, above_left, above_right):
    """Context of bin ``k`` under the ``spatial`` model (branch-free)."""
    c = 2 * np.int64(left > k) + 2 * np.int64(above > k) + np.int64(above_left > k) + np.int64(above_right > k)
    return SPATIAL_CLASSES * k + c


@numba.njit(inline="always")
def bin_context(k, spatial, left, above, above_left, above_right):
    """Context of bin ``k``: the ``spatial`` model's when ``spatial``, else the ``paper`` model's (``k``).
    The one selection the encoder, its look-ahead and the decoder share."""
    if spatial:
        return spatial_context(k, left, above, above_left, above_right)
    return np.int64(k)
