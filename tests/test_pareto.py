import random

from splitcodec.pareto import lower_hull, pareto


def _dominated(p, q, x, y, sign, tie):
    """q dominates p (brute force, the definition)."""
    better_or_equal = q[x] <= p[x] and sign * q[y] <= sign * p[y]
    strictly = q[x] < p[x] or sign * q[y] < sign * p[y] or (tie and q[x] == p[x] and q[y] == p[y] and q[tie] < p[tie])
    return better_or_equal and strictly


def test_pareto_matches_the_definition_on_random_points():
    rng = random.Random(0)
    for trial in range(200):
        pts = [{"b": rng.randint(0, 9), "d": rng.randint(0, 9), "k": rng.randint(0, 3)} for _ in range(rng.randint(1, 12))]
        for maximize, tie in ((False, None), (True, None), (True, "k")):
            sign = -1 if maximize else 1
            front = pareto(pts, "b", "d", maximize_y=maximize, tie=tie)
            want = [p for p in pts if not any(_dominated(p, q, "b", "d", sign, tie) for q in pts)]
            # of exact duplicates (all keys equal) one is kept
            assert {(p["b"], p["d"]) + ((p["k"],) if tie else ()) for p in front} == \
                   {(p["b"], p["d"]) + ((p["k"],) if tie else ()) for p in want}
            assert [p["b"] for p in front] == sorted(p["b"] for p in front)
            assert all(any(p is q for q in pts) for p in front)


def test_lower_hull_is_convex_and_on_the_front():
    rng = random.Random(1)
    for _ in range(100):
        pts = [{"b": rng.random(), "d": rng.random()} for _ in range(15)]
        h = lower_hull(pts, "b", "d")
        front = pareto(pts, "b", "d")
        assert all(any(p is q for q in front) for p in h) and h[0] is front[0] and h[-1] is front[-1]
        for a, b, c in zip(h, h[1:], h[2:]):  # slopes increase: strictly convex
            assert (b["d"] - a["d"]) / (b["b"] - a["b"]) < (c["d"] - b["d"]) / (c["b"] - b["b"])
        for p in front:  # nothing on the front lies below the hull
            for a, b in zip(h, h[1:]):
                if a["b"] <= p["b"] <= b["b"]:
                    assert p["d"] >= a["d"] + (b["d"] - a["d"]) * (p["b"] - a["b"]) / (b["b"] - a["b"]) - 1e-12
