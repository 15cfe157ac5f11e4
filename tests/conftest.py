import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("mutation", max_examples=12, deadline=None, derandomize=True)  # make mutation
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def slow_tail(monkeypatch, service, seconds: float) -> None:
    """Make the (one) batcher's tail of a test server take ``seconds`` longer per run."""
    import time

    (batcher,) = service.batchers.values()
    run = batcher.tail.run

    def slow(*a, **kw):
        time.sleep(seconds)
        return run(*a, **kw)

    monkeypatch.setattr(batcher.tail, "run", slow)


def relu_field(rng, shape, scale=1.0, smooth=2):
    """Spatially correlated, ReLU-sparse activations (like a conv layer's output)."""
    x = rng.normal(size=shape)
    for _ in range(smooth):
        x = (x + np.roll(x, 1, -1) + np.roll(x, 1, -2) + np.roll(x, -1, -1) + np.roll(x, -1, -2)) / 2.2
    return (np.maximum(x - 0.3, 0) * scale).astype(np.float32)


# --- no silent skips ------------------------------------------------------------------------------
# A test skipped because a dependency is missing would vanish from the run without a trace.  Every skip
# must be declared here as expected on the platform it happens on; any other skip fails the run
# (set SPLITCODEC_ALLOW_SKIPS=1 to run a partial suite on purpose, e.g. without torch).
import platform as _platform  # noqa: E402

EXPECTED_SKIPS = {
    # a fragment of the skip reason -> machines (platform.machine()) where the skip is expected
    "constriction": {"aarch64"},  # no aarch64 wheel (a benchmark-only reference)
}
_skipped: list[tuple[str, str]] = []


def _skip_reason(report) -> str:
    lr = report.longrepr
    return str(lr[2]) if isinstance(lr, tuple) and len(lr) == 3 else str(lr)


def pytest_collectreport(report):
    if report.skipped:
        _skipped.append((report.nodeid, _skip_reason(report)))


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _skip_reason(report)))


def unexpected_skips(skipped, machine: str) -> list[tuple[str, str]]:
    return [(node, why) for node, why in skipped
            if not any(frag in why and machine in machines for frag, machines in EXPECTED_SKIPS.items())]


def pytest_sessionfinish(session, exitstatus):
    bad = unexpected_skips(_skipped, _platform.machine())
    if bad and not os.environ.get("SPLITCODEC_ALLOW_SKIPS") and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    bad = unexpected_skips(_skipped, _platform.machine())
    if bad and not os.environ.get("SPLITCODEC_ALLOW_SKIPS"):
        terminalreporter.write_line(f"FAILED: {len(bad)} test(s) skipped without being declared expected on "
                                    f"{_platform.machine()} (tests/conftest.py EXPECTED_SKIPS):", red=True)
        for node, why in bad[:20]:
            terminalreporter.write_line(f"  {node}: {why[:200]}")
