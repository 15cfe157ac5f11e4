"""bench-link's parts that need no root: the refusal without it, the 1 s windows against a changing link, and the
targets it reports (the benchmark itself runs in `make bench-link`)."""

import argparse

import numpy as np
import pytest

from eval.bench import link, netns
from eval.core.runner import UsageError


def test_without_root_the_benchmark_says_what_it_needs(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(netns.LinkUnavailable, match="needs root"):
        netns.check_available()
    with pytest.raises(UsageError, match="needs root"):
        link.run(argparse.Namespace(quick=True, seconds=None))


def test_windows_are_judged_against_the_rate_the_link_had():
    # 1 Mbit/s for 4 s, then 0.25 Mbit/s: frames sized to 1 Mbit/s throughout overflow only after the step
    t = np.arange(0, 8, 1 / 30)
    sizes = np.full(t.shape, 1e6 / 8 / 30)
    ratio = link._worst_window_ratio(t, sizes, [(0, 1.0), (4, 0.25)], 8)
    assert ratio == pytest.approx(4.0, rel=0.05)
    assert link._worst_window_ratio(t[t < 4], sizes[t < 4], [(0, 1.0), (4, 0.25)], 4) == pytest.approx(1.0, rel=0.05)


def _run(point, mode, rate, **kw):
    base = {"point": point, "mode": mode, "link": rate, "latency_ms_p99": 50.0, "latency_bound_ms": 280.0,
            "latency_growth": 1.0, "worst_1s_window_vs_link": 0.5, "skipped": 0, "steady_kbps": 300.0,
            "steady_kl_every_frame": 0.03}
    return {**base, **kw}


def test_targets_name_the_runs_that_miss_them_and_compare_at_the_same_bitrate():
    runs = [_run("demo", "fixed", "1 Mbit/s"), _run("demo", "auto", "1 Mbit/s", steady_kl_every_frame=0.0303),
            _run("demo", "auto", "0.25 Mbit/s", latency_ms_p99=400.0, worst_1s_window_vs_link=1.2, steady_kbps=100.0)]
    x264 = [{"kbps": 200.0, "kl": 0.2}, {"kbps": 800.0, "kl": 0.05}]
    t = link._targets(runs, x264)
    assert t["latency_p99_over_bound"] == ["demo 0.25 Mbit/s"] == t["windows_over_link"] and t["growing"] == []
    (same,) = t["kl_vs_x264_same_bitrate"]  # 100 kbit/s is below x264's lowest rate: not compared
    assert same["x264_kl"] == pytest.approx(0.2 * (0.05 / 0.2) ** (np.log(300 / 200) / np.log(4)))
    (cost,) = t["no_cost_where_the_link_fits"]
    assert cost["bytes_ratio"] == 1.0 and cost["kl_ratio"] == pytest.approx(1.01)
