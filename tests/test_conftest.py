"""The suite's own guard: a skip that is not declared expected on the platform fails the run."""

import os
import subprocess
import sys

from .conftest import unexpected_skips


def test_undeclared_skips_are_reported_and_declared_ones_are_not():
    skipped = [("tests/test_x.py", "could not import 'constriction': No module"),
               ("tests/test_y.py::t", "could not import 'torch': No module named 'torch'")]
    assert unexpected_skips(skipped, "aarch64") == [skipped[1]]
    assert unexpected_skips(skipped, "x86_64") == skipped


def test_a_silent_skip_fails_the_session(tmp_path):
    (tmp_path / "conftest.py").write_text(open(os.path.join(os.path.dirname(__file__), "conftest.py")).read())
    (tmp_path / "test_s.py").write_text("import pytest\n\ndef test_a():\n    pytest.skip('no such thing')\n\n"
                                        "def test_b():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "SPLITCODEC_ALLOW_SKIPS"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "skipped without being declared" in r.stdout, r.stdout[-2000:]
    r = subprocess.run(cmd, cwd=tmp_path, env=dict(env, SPLITCODEC_ALLOW_SKIPS="1"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
