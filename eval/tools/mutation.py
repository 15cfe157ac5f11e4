"""``make mutation``: mutation testing of the codec core and the server's admission, auth and batcher.

Two tools, each where it measured best on this codebase (docs/testing.md):

* **mutmut 3** for the Python code (``[tool.mutmut]`` in pyproject.toml).  It writes every mutant
  into one copy of each module behind a switch, forks a warm process per mutant and runs only the tests
  that reached the mutated function: ~2,600 mutants in ~7 minutes on two cores.  It does not mutate
  decorated functions, so it never sees a numba kernel.
* **cosmic-ray** for the numba kernels (every ``@numba.njit`` function of ``_jit.KERNEL_SOURCES``).
  It rewrites the source file for each mutant and runs the tests in a fresh process, where the kernel is
  compiled from the mutated source: the cache is keyed by the kernel sources (``splitcodec._jit``), so
  a mutant can never be tested against stale machine code.  Compiling costs seconds per mutant, so only
  the bodies of njit functions are mutated, with the operators in ``KERNEL_OPERATORS``, in two
  copies of the tree at once.

A surviving mutant is either killed by a test or listed in ``eval/tools/mutation_equivalent.json`` with the
reason it cannot change behaviour; the score counts the listed ones out.  Results go to
``docs/results/mutation.json`` and the generated section of docs/testing.md.

    python -m eval.tools.mutation run       # both tools, then the report (make mutation)
    python -m eval.tools.mutation report    # the docs section from docs/results/mutation.json
    python -m eval.tools.mutation survivors # the surviving mutants' diffs of the last run (to review)
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results" / "mutation.json"
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.json")
DOC = ROOT / "docs" / "testing.md"
PY = sys.executable

# the groups the targets are stated for, by module
GROUPS = {
    "codec core": ("splitcodec.quantization", "splitcodec.binarization", "splitcodec.bitstream", "splitcodec.codec",
                   "splitcodec.entropy"),
    "server admission/auth/batcher": ("cloud_app.admission", "cloud_app.batcher"),
}
TARGETS = {"codec core": 0.90, "server admission/auth/batcher": 0.80}

# kernel module -> the tests that exercise it (per-file test selection)
KERNEL_TESTS = {
    # golden streams first: most kernel mutants change the bytes, and -x stops at the first failure
    "splitcodec/entropy/kernels.py": ["tests/test_golden.py", "tests/test_entropy.py", "tests/test_rd.py",
                                      "tests/test_sequence.py"],
    "splitcodec/entropy/engine.py": ["tests/test_golden.py", "tests/test_entropy.py"],
    "splitcodec/entropy/contexts.py": ["tests/test_golden.py", "tests/test_entropy.py", "tests/test_sequence.py"],
    "splitcodec/quantization.py": ["tests/test_quantization.py"],
}
# cosmic-ray operators applied to kernels: one natural alternative per operator (as mutmut does), not
# every replacement cosmic-ray knows (that is ~4x the mutants for few extra kills, at seconds each)
KERNEL_OPERATORS = {
    "core/NumberReplacer", "core/ReplaceTrueWithFalse", "core/ReplaceFalseWithTrue", "core/ReplaceAndWithOr",
    "core/ReplaceOrWithAnd", "core/ZeroIterationForLoop", "core/ReplaceBreakWithContinue",
    "core/ReplaceContinueWithBreak", "core/ReplaceUnaryOperator_USub_UAdd",
    *(f"core/ReplaceBinaryOperator_{a}_{b}" for a, b in [
        ("Add", "Sub"), ("Sub", "Add"), ("Mul", "Div"), ("Mul", "FloorDiv"), ("FloorDiv", "Mul"), ("Div", "Mul"),
        ("Mod", "FloorDiv"), ("LShift", "RShift"), ("RShift", "LShift"), ("BitAnd", "BitOr"), ("BitOr", "BitAnd"),
        ("BitXor", "BitOr")]),
    *(f"core/ReplaceComparisonOperator_{a}_{b}" for a, b in [
        ("Lt", "LtE"), ("LtE", "Lt"), ("Gt", "GtE"), ("GtE", "Gt"), ("Eq", "NotEq"), ("NotEq", "Eq")]),
}
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow and not no_mutation"]
ENV = {"HYPOTHESIS_PROFILE": "mutation"}


# --- mutmut: the Python code ----------------------------------------------------------------------

_MUTMUT_DUMP = r"""
import json, sys
from mutmut.__main__ import walk_mutatable_files, SourceFileMutationData, status_by_exit_code
from mutmut.mutation.diff_apply import get_diff_for_mutant
out = []
for path in walk_mutatable_files():
    m = SourceFileMutationData(path=path)
    m.load()
    for name, code in m.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = get_diff_for_mutant(name, path=path) if status not in ("killed", "timeout") else ""
        out.append({"name": name, "path": str(path), "status": status, "diff": diff})
json.dump(out, sys.stdout)
"""


def run_mutmut(children: int) -> list[dict]:
    env = {**os.environ, **ENV}
    subprocess.run([PY, "-m", "mutmut", "run", "--max-children", str(children)], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return mutmut_results()


def mutmut_results() -> list[dict]:
    raw = subprocess.run([PY, "-c", _MUTMUT_DUMP], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    out = []
    for r in json.loads(raw):
        module, _, func = r["name"].partition("__mutmut")[0].rpartition(".x")
        func = func.replace("ǁ", ".").strip(".").lstrip("_") if func.startswith("ǁ") else func.lstrip("_")
        status = {"timeout": "killed", "suspicious": "killed", "segfault": "killed"}.get(r["status"], r["status"])
        out.append({"tool": "mutmut", "id": r["name"], "module": module, "function": func, "status": status,
                    "change": change_of(r["diff"])})
    return out


def change_of(diff: str) -> str:
    """The changed lines of a unified diff, ``-old`` / ``+new``, stripped (the key equivalents match on)."""
    lines = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return "\n".join(ln[0] + ln[1:].strip() for ln in lines)


# --- cosmic-ray: the numba kernels ----------------------------------------------------------------

def njit_spans(path: Path) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of every function decorated with numba.njit in ``path``."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and any("njit" in ast.unparse(d) for d in node.decorator_list):
            spans.append((node.name, node.body[0].lineno, node.end_lineno))
    return spans


def _kernel_session(rel: str, work: Path) -> list[dict]:
    """Mutate the njit functions of one module in a copy of the tree at ``work``."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans = njit_spans(work / rel)
    tests = " ".join(KERNEL_TESTS[rel])
    cfg = work / "cr.toml"
    cfg.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{rel}"\n'
        "timeout = 240.0\nexcluded-modules = []\n"
        f'test-command = "{PY} -m pytest {" ".join(PYTEST_ARGS)} {tests}"\n'
        '[cosmic-ray.distributor]\nname = "local"\n')
    session = work / "cr.sqlite"
    env = {**os.environ, **ENV, "NUMBA_CACHE_DIR": str(work / ".numba")}
    # baseline: the unmutated copy must pass (else every mutant would count as killed)
    base = subprocess.run([PY, "-m", "pytest", *PYTEST_ARGS, *KERNEL_TESTS[rel]], cwd=work, env=env,
                          capture_output=True, text=True)
    if base.returncode != 0:
        raise SystemExit(f"the tests of {rel} fail on the unmutated copy:\n{base.stdout[-3000:]}")
    subprocess.run([PY, "-m", "cosmic_ray.cli", "init", str(cfg), str(session)], cwd=work, env=env, check=True,
                   capture_output=True)
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            m = item.mutations[0]
            inside = any(a <= m.start_pos[0] <= b for _, a, b in spans)
            if not inside or m.operator_name not in KERNEL_OPERATORS:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    subprocess.run([PY, "-m", "cosmic_ray.cli", "exec", str(cfg), str(session)], cwd=work, env=env, check=True,
                   capture_output=True)
    out = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            m = item.mutations[0]
            func = next((n for n, a, b in spans if a <= m.start_pos[0] <= b), "?")
            killed = result.worker_outcome != WorkerOutcome.NORMAL or result.is_killed
            out.append({"tool": "cosmic-ray", "id": f"{rel}:{m.start_pos[0]}:{m.operator_name}:{m.occurrence}",
                        "module": rel[:-3].replace("/", "."), "function": func,
                        "status": "killed" if killed else "survived", "change": change_of(result.diff or "")})
    return out


def _copy_tree(dest: Path) -> None:
    for part in ("splitcodec", "tests", "pyproject.toml"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
        else:
            shutil.copy2(src, dest / part)


def run_kernels(workers: int) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="splitcodec-mutation-") as tmp:
        jobs = {}
        with futures.ThreadPoolExecutor(workers) as pool:
            for i, rel in enumerate(KERNEL_TESTS):
                work = Path(tmp) / str(i)
                work.mkdir()
                _copy_tree(work)
                jobs[pool.submit(_kernel_session, rel, work)] = rel
            for f in futures.as_completed(jobs):
                out += f.result()
    return out


# --- the report -----------------------------------------------------------------------------------

def load_equivalent() -> list[dict]:
    return json.loads(EQUIVALENT.read_text())["equivalent"]


# survivors that no test should kill, recognised by rule (each counted out of the score and reported)
RULES = {
    "message": "only the wording of an error message changes (the change lies inside a `raise` statement); "
               "the error class is the contract, and tests pin it",
    "negative reshape": "numpy's reshape treats any negative size as 'infer': reshape(-2) is reshape(-1)",
}


def _module_file(module: str) -> Path:
    p = ROOT / (module.replace(".", "/") + ".py")
    return p if p.exists() else ROOT / module.replace(".", "/") / "__init__.py"


def _is_text(node) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) and _is_text(node.orelse)
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str"


@functools.lru_cache(maxsize=None)
def _raise_lines(module: str) -> dict[str, bool]:
    """Stripped source line -> True if every occurrence of it lies in the message text of a ``raise``
    (and in nothing else of that statement: not the status, not a retry hint)."""
    src = _module_file(module).read_text().splitlines()
    text, other = set(), set()
    for node in ast.walk(ast.parse("\n".join(src))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for a in node.exc.args + [k.value for k in node.exc.keywords]:
                (text if _is_text(a) else other).update(range(a.lineno, a.end_lineno + 1))
    lines: dict[str, bool] = {}
    for i, line in enumerate(src, 1):
        key = line.strip()
        lines[key] = lines.get(key, True) and i in text and i not in other
    return lines


def rule_for(m: dict) -> str | None:
    old = [ln[1:] for ln in m["change"].splitlines() if ln.startswith("-")]
    new = [ln[1:] for ln in m["change"].splitlines() if ln.startswith("+")]
    if not old:
        return None
    if len(old) == len(new) == 1:
        parts = old[0].split(".reshape(-1)")
        variants = {".reshape(-1)".join(parts[:i]) + ".reshape(-2)" + ".reshape(-1)".join(parts[i:])
                    for i in range(1, len(parts))}
        if new[0] in variants:
            return "negative reshape"
    lines = _raise_lines(m["module"])
    if all(lines.get(ln.strip(), False) for ln in old):
        return "message"
    return None


def classify(mutants: list[dict], equivalent: list[dict]) -> list[dict]:
    """Mark the survivors that a rule recognises, or that match an entry of the equivalent-mutant list
    (module, function, change)."""
    used = set()
    for m in mutants:
        if m["status"] != "survived":
            continue
        rule = rule_for(m)
        if rule is not None:
            m["status"], m["why"] = "equivalent", rule
            continue
        for i, e in enumerate(equivalent):
            if m["module"] == e["module"] and m["function"] == e["function"] and m["change"] == e["change"]:
                m["status"], m["why"] = "equivalent", e["why"]
                used.add(i)
                break
    stale = [e for i, e in enumerate(equivalent) if i not in used]
    if stale:
        print(f"{len(stale)} equivalent-mutant entries matched no surviving mutant:", file=sys.stderr)
        for e in stale:
            print(f"  {e['module']}.{e['function']}: {e['change']!r}", file=sys.stderr)
    return mutants


def group_of(module: str) -> str | None:
    for g, prefixes in GROUPS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return g
    return None


def summarize(mutants: list[dict]) -> dict:
    def score(rows):
        c = {s: sum(r["status"] == s for r in rows) for s in ("killed", "survived", "equivalent", "no tests")}
        counted = c["killed"] + c["survived"] + c["no tests"]
        return {**c, "total": len(rows), "score": round(c["killed"] / counted, 4) if counted else None}

    modules = sorted({m["module"] for m in mutants})
    by_module = {}
    for mod in modules:
        rows = [m for m in mutants if m["module"] == mod]
        by_module[mod] = {t: score([r for r in rows if r["tool"] == t]) for t in sorted({r["tool"] for r in rows})}
    groups = {g: {**score([m for m in mutants if group_of(m["module"]) == g]), "target": TARGETS[g]}
              for g in GROUPS}
    return {"groups": groups, "modules": by_module}


def markdown(doc: dict) -> str:
    """The docs/testing.md section for a run's results."""
    def pct(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    lines = ["| group | mutants | killed | survived | no test reaches it | equivalent | score | target |",
             "|---|---|---|---|---|---|---|---|"]
    for g, s in doc["summary"]["groups"].items():
        lines.append(f"| {g} | {s['total']} | {s['killed']} | {s['survived']} | {s['no tests']} | "
                     f"{s['equivalent']} | **{pct(s['score'])}** | ≥ {pct(s['target'])} |")
    lines += ["", "| module | tool | mutants | killed | survived | no test | equivalent | score |",
              "|---|---|---|---|---|---|---|---|"]
    for mod, tools in doc["summary"]["modules"].items():
        for tool, s in tools.items():
            lines.append(f"| `{mod}` | {tool} | {s['total']} | {s['killed']} | {s['survived']} | {s['no tests']} | "
                         f"{s['equivalent']} | {pct(s['score'])} |")
    why = {}
    for m in doc["mutants"]:
        if m["status"] == "equivalent":
            why[m["why"]] = why.get(m["why"], 0) + 1
    lines += ["", "Equivalent mutants by reason (the rules in `eval/tools/mutation.py`, the list in "
              "`eval/tools/mutation_equivalent.json`):", ""]
    lines += [f"* {n} × {RULES.get(w, w)}" for w, n in sorted(why.items(), key=lambda kv: -kv[1])]
    t = doc["timing"]
    lines += ["", f"Run of {doc['date']} on {doc['machine']}: mutmut {t['mutmut_s']:.0f} s, cosmic-ray (kernels) "
              f"{t['kernels_s']:.0f} s, {t['total_s'] / 60:.1f} min in all (`make mutation`)."]
    surv = [m for m in doc["mutants"] if m["status"] in ("survived", "no tests")]
    if surv:
        lines += ["", f"Mutants still surviving ({len(surv)}; to kill or to list as equivalent):", ""]
        lines += [f"* `{m['module']}.{m['function']}` ({m['tool']}, {m['status']}): "
                  f"`{m['change'].replace(chr(10), ' ⏎ ').replace('`', chr(39))}`" for m in surv[:40]]
        if len(surv) > 40:
            lines.append(f"* … and {len(surv) - 40} more (docs/results/mutation.json)")
    return "\n".join(lines)


def write_report(doc: dict) -> None:
    sys.path.insert(0, str(ROOT))
    from eval.core.common import update_section

    update_section(DOC, "mutation", markdown(doc), source=str(RESULTS.relative_to(ROOT)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.tools.mutation", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["run", "report", "survivors"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-kernels", action="store_true", help="mutmut only (a quicker partial run; not recorded)")
    args = ap.parse_args(argv)
    if args.command == "run":
        t0 = time.perf_counter()
        mutants = run_mutmut(args.workers)
        t1 = time.perf_counter()
        if not args.skip_kernels:
            mutants += run_kernels(args.workers)
        t2 = time.perf_counter()
        mutants = classify(mutants, load_equivalent())
        import platform

        doc = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "timing": {"mutmut_s": round(t1 - t0, 1), "kernels_s": round(t2 - t1, 1), "total_s": round(t2 - t0, 1)},
               "kernels_run": not args.skip_kernels, "summary": summarize(mutants), "mutants": mutants}
        if args.skip_kernels:
            print(json.dumps(doc["summary"], indent=1))
            return 0
        doc["mutants"] = [m for m in doc["mutants"] if m["status"] != "killed"]  # the counts are in the summary
        RESULTS.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        write_report(doc)
        print(json.dumps(doc["summary"]["groups"], indent=1))
        return 0
    if args.command == "report":
        write_report(json.loads(RESULTS.read_text()))
        return 0
    mutants = classify(mutmut_results(), load_equivalent())
    for m in mutants:
        if m["status"] in ("survived", "no tests"):
            print(f"## {m['id']} [{m['status']}] {m['module']}::{m['function']}\n{m['change']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
