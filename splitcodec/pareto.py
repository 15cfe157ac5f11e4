"""Frontiers of measured points: the Pareto set (no other point is as good on both axes and better on one)
and its lower convex hull (what time-sharing two settings across frames reaches).

Points are dicts (or anything indexable by key).  ``x`` is a cost (bits, bytes: lower is better); ``y`` is a
distortion (lower is better) unless ``maximize_y`` (agreement, accuracy); ``tie`` (lower is better) decides
between points equal on both axes.

>>> pts = [{"b": 1, "d": 5}, {"b": 2, "d": 3}, {"b": 2, "d": 4}, {"b": 3, "d": 3.5}, {"b": 4, "d": 1}]
>>> [p["b"] for p in pareto(pts, "b", "d")], [(p["b"], p["d"]) for p in lower_hull(pts, "b", "d")]
([1, 2, 4], [(1, 5), (2, 3), (4, 1)])
"""

from __future__ import annotations

import math

__all__ = ["pareto", "lower_hull"]


def pareto(points, x: str, y: str, *, maximize_y: bool = False, tie: str | None = None) -> list:
    """The points no other point beats (``x`` no higher, ``y`` no worse, one of them strictly better, or both
    equal and ``tie`` lower), by increasing ``x``; of exact duplicates the first is kept."""
    sign = -1.0 if maximize_y else 1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][x], sign * points[i][y],
                                                     points[i][tie] if tie else 0, i))
    front, best = [], math.inf
    for i in order:
        v = sign * points[i][y]
        if v < best:
            front.append(points[i])
            best = v
    return front


def lower_hull(points, x: str, y: str) -> list:
    """The Pareto points (``y`` lower is better) on the lower convex hull, by increasing ``x``."""
    hull: list = []
    for p in pareto(points, x, y):
        while len(hull) >= 2 and ((hull[-1][y] - hull[-2][y]) * (p[x] - hull[-2][x])
                                  >= (p[y] - hull[-2][y]) * (hull[-1][x] - hull[-2][x])):
            hull.pop()
        hull.append(p)
    return hull
