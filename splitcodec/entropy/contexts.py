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

``temporal`` (id 2, predicted frames of a sequence only)
    The ``spatial`` context times the relation of bin ``k`` to R, the co-located index of the
    reference (previous) frame: ``ctx = 4 · spatial + clamp(R − k + 1, 0, 3)`` — R < k, R = k,
    R = k + 1, R ≥ k + 2: 28 (N - 1) contexts.  Chosen by measurement on the split tensors of real
    video (``python -m eval video`` prints the candidates' adaptive code lengths): it beat the
    equality flag [R > k], the three-way relation and R itself, and adding the reference's or the
    current frame's changed neighbours gained under 1 %.
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import UnknownIdError

PAPER = 0
SPATIAL = 1
TEMPORAL = 2
SPATIAL_CLASSES = 7
TEMPORAL_CLASSES = 4

CONTEXT_MODELS = {"paper": PAPER, "spatial": SPATIAL, "temporal": TEMPORAL}
INTRA_MODELS = ("paper", "spatial")  # the models a frame coded on its own can use
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
    if model == TEMPORAL:
        return TEMPORAL_CLASSES * SPATIAL_CLASSES * (levels - 1)
    raise UnknownIdError(f"unknown context model id {model}")


@numba.njit(inline="always")
def spatial_context(k, left, above, above_left, above_right):
    """Context of bin ``k`` under the ``spatial`` model (branch-free)."""
    c = 2 * np.int64(left > k) + 2 * np.int64(above > k) + np.int64(above_left > k) + np.int64(above_right > k)
    return SPATIAL_CLASSES * k + c


@numba.njit(inline="always")
def bin_context(k, model, left, above, above_left, above_right, ref):
    """Context of bin ``k`` under context model ``model`` (``ref``: the reference frame's co-located index,
    read by the ``temporal`` model only).  The one selection the encoder, its look-ahead and the decoder share."""
    if model == PAPER:
        return np.int64(k)
    c = spatial_context(k, left, above, above_left, above_right)
    if model == TEMPORAL:
        return TEMPORAL_CLASSES * c + min(max(np.int64(ref) - k + 1, 0), TEMPORAL_CLASSES - 1)
    return c
