"""Combine the --shard outputs of one study into one document (accumulators add exactly)."""

from __future__ import annotations

import json

from eval.core import report
from eval.core.studies import merge_documents
from eval.core.entry import Entry

ENTRY = Entry("merge", "study", "combine --shard outputs of one study")
write_csv, plot = report.write_csv, report.plot  # a row per operating point


def add_arguments(s) -> None:
    s.add_argument("inputs", nargs="+")
    s.add_argument("--coco", help="annotation json (detection studies)")


def run(args) -> dict:
    try:
        docs = [json.loads(open(p).read()) for p in args.inputs]
        return merge_documents(docs, coco=args.coco)
    except (OSError, KeyError) as e:
        raise ValueError(f"cannot merge: {e}") from None
