"""Baselines the codec is compared with: HEVC mosaic, NNCodec, general-purpose compressors, constriction."""
