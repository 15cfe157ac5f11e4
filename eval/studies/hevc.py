"""The HEVC baseline: the split tensor as an 8-bit channel mosaic through x265, at several qualities."""

from __future__ import annotations

from eval.core import options, report
from eval.core.evaluate import OperatingPoint, evaluate
from eval.core.studies import document, sample_sets
from eval.core.entry import Entry

ENTRY = Entry("hevc", "study", "HEVC baseline: 8-bit channel mosaic through x265")
write_csv, plot = report.write_csv, report.plot  # a row per operating point


def add_arguments(s) -> None:
    options.add_dataset_arguments(s)
    s.add_argument("--qualities", type=options.ints, default=[10, 30, 50, 70, 90])


def run(args) -> dict:
    return hevc(options.open_study_cache(args), qualities=args.qualities, shard=args.shard,
                device=options.device_of(args))


def hevc(cache, *, qualities=(10, 30, 50, 70, 90), calib=0, shard=None, device="cpu"):
    """The HEVC baseline (x265 main intra on an 8-bit channel mosaic) at several qualities."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard)
    points = [OperatingPoint("hevc", quality=int(q)) for q in qualities]
    accs = evaluate(cache, points, eval_idx, device=device)
    return document("hevc", cache, points, accs, calib_idx, eval_idx, shard,
                     {"note": "HEVC main intra via x265/libheif, not the paper's HM-16.20 + SCM (screen content)"})
