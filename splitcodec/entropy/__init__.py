"""Entropy coding (stage 3): the arithmetic engine and the context models."""

from .contexts import CONTEXT_MODEL_NAMES, CONTEXT_MODELS, PAPER, SPATIAL, context_model_id, n_contexts
from .coder import code_length_bits, decode_indices, encode_indices, encode_rdo, trace_bins

__all__ = [
    "CONTEXT_MODELS",
    "CONTEXT_MODEL_NAMES",
    "PAPER",
    "SPATIAL",
    "context_model_id",
    "n_contexts",
    "encode_indices",
    "encode_rdo",
    "decode_indices",
    "trace_bins",
    "code_length_bits",
]
