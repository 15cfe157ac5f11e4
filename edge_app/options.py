"""What the edge encodes with: the quantizer and the encoder configuration, from the command line over the
--quantizer file over the model's measured operating point.

The encoder flags are generated from :class:`splitcodec.EncoderConfig`'s fields (their help, choices and
types), so a new encoder option needs no change here; the command line is put over the file's configuration
by ``EncoderConfig.merged``, the one defaulting rule.
"""

from __future__ import annotations

import argparse
import functools


def add_quantizer_arguments(parser) -> None:
    from splitcodec import EncoderConfig

    q = parser.add_argument_group("quantizer and encoder (default: the --quantizer file's, else the model's "
                                  "measured operating point and the plain encoder)")
    q.add_argument("--levels", type=int, help="number of quantizer levels N (2..256)")
    q.add_argument("--clip", help="'C_MIN:C_MAX' (or 'C_MAX' with C_MIN = 0), or 'auto' (MSE-optimal on the first "
                                  "frame)")
    q.add_argument("--quantizer", help="a quantizer file (splitcodec-eval calibrate / explore --save): its "
                                       "quantizer, encoder options, model and split are used unless flags say "
                                       "otherwise")
    q.add_argument("--zero-level", action="store_true",
                   help="shift the uniform quantizer's range by at most half a step so that 0 is a level "
                        "(UniformQuantizer.zero_level): measured to cut temporal (--stream) bytes at equal "
                        "fidelity at the demo's N = 8 point, docs/results.md")
    for name, default, meta in EncoderConfig.options():
        if meta["type"] is None:
            continue
        flag = "--" + name.replace("_", "-")
        needs = f"; needs --{meta['requires'].replace('_', '-')}" if meta["requires"] else ""
        help_ = f"{meta['help']} (default: {default!r}{needs})"
        if meta["type"] is bool:
            # --x / --no-x: either can override a quantizer file's value (None: not given)
            q.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            q.add_argument(flag, type=meta["type"], choices=meta["choices"], default=None, help=help_)


@functools.lru_cache(maxsize=8)
def _read(path: str):
    from splitcodec.quantizer_file import load_quantizer_file

    return load_quantizer_file(path)


def quantizer_file(args):
    """The --quantizer file (``QuantizerFile``: quantizer, encoder, doc), read once; None without one."""
    return _read(str(args.quantizer)) if args.quantizer else None


def encoder_config(args, feature_shape=None):
    """The ``EncoderConfig``: the flags over the --quantizer file's (``EncoderConfig.merged``).  With
    ``feature_shape`` the channel weights are checked against the split's channels (ValueError)."""
    from splitcodec import EncoderConfig

    f = quantizer_file(args)
    base = f.encoder if f else EncoderConfig()
    config = base.merged(**{name: getattr(args, name, None) for name in EncoderConfig.option_names()})
    w = config.channel_weights
    if w is not None and feature_shape is not None and len(w) != feature_shape[0]:
        raise ValueError(f"the --quantizer file's channel_weights has {len(w)} values but the split has "
                         f"{feature_shape[0]} channels")
    return config


def parse_clip(text: str) -> tuple[float, float]:
    """'C_MIN:C_MAX' or 'C_MAX' (C_MIN = 0)."""
    from splitcodec.clip import parse_clip_range

    return parse_clip_range(text)


def quantizer_factory(args, model: str, at_paper_split: bool):
    """A function first-frame features -> quantizer, from the options (see --help).  A --zero-level that
    cannot apply (a table quantizer, 0 far outside the range) is a QuantizerError, raised here when the
    quantizer is known up front, else on the first frame."""
    make = _base_quantizer_factory(args, model, at_paper_split)
    if not getattr(args, "zero_level", False):
        return make
    fixed = getattr(make, "fixed", None)
    if fixed is not None:
        return _fixed(_zero_level(fixed))
    return lambda first: _zero_level(make(first))


def _zero_level(q):
    import splitcodec as sc

    if not isinstance(q, sc.UniformQuantizer):
        raise sc.QuantizerError(f"--zero-level needs a uniform quantizer, not {type(q).__name__}")
    return q.zero_level()


def _fixed(q):
    """A factory that always gives ``q`` (and says so: ``.fixed``)."""
    def make(first):
        return q

    make.fixed = q
    return make


def _base_quantizer_factory(args, model: str, at_paper_split: bool):
    import splitcodec as sc
    from splitcodec.models import default_operating_point

    f = quantizer_file(args)
    if f:
        return _fixed(f.quantizer)
    levels, clip = args.levels, None
    default = default_operating_point(model) if at_paper_split else None
    if args.clip and args.clip != "auto":
        clip = parse_clip(args.clip)
    if levels is None:
        levels = default[0] if default else 8
    if clip is None and args.clip != "auto" and default and default[0] == levels:
        clip = default[1]
    if clip is not None:
        return _fixed(sc.UniformQuantizer(clip[0], clip[1], levels))

    def auto(first):  # MSE-optimal on the first frame's activations
        return sc.UniformQuantizer(*sc.clip.calibrated_clip(first, levels), levels)

    return auto
