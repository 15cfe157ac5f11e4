"""splitcodec-eval: the one runner of every study, benchmark, documentation generator and demo.

    python -m eval --help                     # every entry, by kind
    python -m eval rate-accuracy --dataset folder:~/frames --levels 8,4 --output ra.json --csv ra.csv --plot ra.png
    python -m eval bench-codec --output docs/results/x86_64-2cpu/bench_codec.json --update-doc README.md

An entry is a module listed in ``ENTRIES`` that defines ``ENTRY`` (an ``eval.core.entry.Entry``: name, kind,
help, and optionally the generated section, the default thread limit and whether it prints JSON),
``add_arguments(parser)`` and ``run(args)``, which returns the result document (a dict) or, for a demo or an
entry that writes its own output, an exit status.  Optional: ``write_csv(doc, path)``, ``plot(doc, path)`` and
``markdown(doc)`` (the text of ``ENTRY.section``, rewritten by ``--update-doc``).

The runner does the rest once for all: it seeds numpy/torch/random, limits threads at run time
(threadpoolctl for BLAS/OpenMP, numba, torch), wraps the document in an envelope (splitcodec version, git
commit, library versions, machine), prints it as JSON on stdout (progress goes to stderr) and writes
``--output`` / ``--csv`` / ``--plot`` / ``--update-doc``.  A usage problem (a bad flag value, a missing file,
too few samples) is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from .entry import KINDS

ENTRIES = (
    "eval.studies.rate_accuracy", "eval.studies.clip_sweep", "eval.studies.ecq", "eval.studies.hevc",
    "eval.studies.calibrate", "eval.studies.target_rate", "eval.studies.rd_frontier", "eval.studies.explore",
    "eval.studies.merge", "eval.studies.context_study", "eval.studies.rdo_variants", "eval.studies.channel_steps",
    "eval.studies.operating_point", "eval.studies.darknet_fidelity", "eval.studies.video",
    "eval.bench.codec", "eval.bench.decode_cost", "eval.bench.link", "eval.bench.reliability",
    "eval.bench.system",
    "eval.docs.results", "eval.docs.model_table",
    "eval.demos.system", "eval.demos.codec",
)


class UsageError(ValueError):
    """A study's inputs cannot be used as given (the message names the flag to change)."""


def entries() -> dict:
    """{name: module} of every registered entry, in ``ENTRIES`` order; names must be unique."""
    out = {}
    for path in ENTRIES:
        m = importlib.import_module(path)
        name = m.ENTRY.name
        if name in out:
            raise RuntimeError(f"two entries are named {name!r}: {out[name].__name__} and {path}")
        if hasattr(m, "markdown") != bool(m.ENTRY.section):
            raise RuntimeError(f"{path}: markdown() and ENTRY.section come together")
        out[name] = m
    return out


def build_parser() -> argparse.ArgumentParser:
    mods = entries()
    listing = "\n".join(f"{title}:\n" + "\n".join(f"  {n:<20} {m.ENTRY.help}" for n, m in mods.items() if m.ENTRY.kind == kind)
                        for kind, title in KINDS.items())
    p = argparse.ArgumentParser(prog="splitcodec-eval", description=__doc__.split("\n\n")[0],
                                epilog=listing, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="entry", required=True, metavar="NAME")
    for name, m in mods.items():
        sp = sub.add_parser(name, description=(m.__doc__ or m.ENTRY.help).strip().split("\n\n")[0])
        m.add_arguments(sp)
        _add_runner_arguments(sp, m)
    return p


def _add_runner_arguments(sp, m) -> None:
    g = sp.add_argument_group("runner")
    g.add_argument("--seed", type=int, default=0, help="seed of numpy, torch and random (default 0)")
    g.add_argument("--threads", type=int, default=m.ENTRY.threads,
                   help=f"thread limit of BLAS/OpenMP, numba and torch (default {m.ENTRY.threads})")
    if not m.ENTRY.prints_json:  # prints or writes its own output (a demo, a whole page)
        return
    g.add_argument("--output", help="write the JSON document here too")
    if hasattr(m, "write_csv"):
        g.add_argument("--csv", help="write the rows as CSV")
    if hasattr(m, "plot"):
        g.add_argument("--plot", help="write a PNG plot")
    if hasattr(m, "markdown"):
        g.add_argument("--update-doc", metavar="PATH", help=f"rewrite the {m.ENTRY.section} section of this markdown file")
        g.add_argument("--from-json", metavar="PATH", help="do not run: re-render --update-doc/--csv/--plot from a "
                                                           "document this entry wrote before (its --output)")


def limit_threads(n: int) -> None:
    """At most ``n`` threads in BLAS/OpenMP pools (threadpoolctl), numba and torch, from now on."""
    if n < 1:
        raise UsageError(f"--threads must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(n)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    m = entries()[args.entry]
    if unknown and not m.ENTRY.passthrough:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.passthrough = unknown
    from .common import log

    if getattr(args, "from_json", None):
        return render_saved(m, args)
    try:
        limit_threads(args.threads)
        seed_everything(args.seed)
        result = m.run(args)
    except (UsageError, KeyError, FileNotFoundError, ValueError) as e:
        log(f"error: {e}")
        return 2
    if isinstance(result, int):
        return result
    return write_outputs(m, args, result, argv)


def write_outputs(m, args, doc: dict, argv) -> int:
    from .envelope import envelope
    from .report import write_json

    env = envelope(m.ENTRY.name, argv, threads=args.threads, seed=args.seed)
    if getattr(args, "measured_on", None):  # the deployment identity of the model a study measured (its weights)
        env["identity"] = args.measured_on
    doc = {**doc, "envelope": env}
    print(write_json(doc, args.output))
    if getattr(args, "csv", None):
        m.write_csv(doc, args.csv)
    if getattr(args, "plot", None):
        m.plot(doc, args.plot)
    if getattr(args, "update_doc", None):
        from .common import update_section

        update_section(args.update_doc, m.ENTRY.section, m.markdown(doc), source=args.output)
    return 0


def render_saved(m, args) -> int:
    """The outputs of a saved document (``--from-json``) without running the entry again."""
    import json
    from pathlib import Path

    from .common import log, update_section

    try:
        doc = json.loads(Path(args.from_json).read_text())
    except (OSError, ValueError) as e:
        log(f"error: --from-json {args.from_json}: {e}")
        return 2
    if getattr(args, "csv", None):
        m.write_csv(doc, args.csv)
    if getattr(args, "plot", None):
        m.plot(doc, args.plot)
    if args.update_doc:
        update_section(args.update_doc, m.ENTRY.section, m.markdown(doc), source=args.from_json)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
