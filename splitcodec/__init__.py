"""splitcodec: lightweight compression of split-layer activations for collaborative inference.

The codec pipeline in reading order: :mod:`~splitcodec.quantization` →
:mod:`~splitcodec.binarization` → :mod:`~splitcodec.entropy` →
:mod:`~splitcodec.bitstream` → :mod:`~splitcodec.codec`.
"""

from ._jit import keyed_cache

with keyed_cache():  # the numba kernels cache under a key of their sources (splitcodec._jit)
    from . import errors
    from .binarization import binarize, codeword_lengths, debinarize
    from .encoder_config import EncoderConfig
    from .codec import FeatureCodec, decode, decode_header, decode_indices, quantizer_from_header
    from .errors import BitstreamError, QuantizerError, ReferenceFrameError, SplitCodecError
    from .sequence import SequenceDecoder, SequenceEncoder
    from . import bandwidth, clip, pareto, ratecontrol, rd, sensitivity
    from .clip import mse_optimal_clip
    from .quantization import (
        ECQResult,
        Quantizer,
        ScalarQuantizer,
        UniformQuantizer,
        design_ecq,
        lloyd_max,
        sweep_lambda,
    )

__version__ = "0.1.0"

__all__ = [  # the public names, sorted
    "bandwidth", "binarize", "BitstreamError", "clip", "codeword_lengths", "debinarize", "decode", "decode_header",
    "decode_indices", "design_ecq", "ECQResult", "EncoderConfig", "errors", "FeatureCodec", "lloyd_max",
    "mse_optimal_clip", "pareto", "Quantizer", "quantizer_from_header", "QuantizerError", "ratecontrol", "rd",
    "ReferenceFrameError", "ScalarQuantizer", "sensitivity", "SequenceDecoder", "SequenceEncoder",
    "SplitCodecError", "sweep_lambda", "UniformQuantizer",
]
