"""The Pareto front of (cost, accuracy) points: the models no other model beats on both at once."""

from __future__ import annotations

import math
from typing import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, value) points on the front, cheapest first; lower cost and higher value are better.

    A point is off the front when another is at least as good on both axes and better on
    one. Equal points do not beat each other, so duplicates are all on the front (or all
    off it); a point with a NaN is on neither side. Quadratic: a front of tens of models.
    """
    usable = [i for i, (cost, value) in enumerate(points) if not (math.isnan(cost) or math.isnan(value))]

    def beaten(i: int) -> bool:
        cost, value = points[i]
        return any(points[j][0] <= cost and points[j][1] >= value and tuple(points[j]) != (cost, value) for j in usable)

    return sorted((i for i in usable if not beaten(i)), key=lambda i: (points[i][0], -points[i][1], i))
