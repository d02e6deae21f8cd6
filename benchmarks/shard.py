"""`--shard I/N`: a deterministic, balanced part of the benchmark matrix. No pytest here.

Every shard computes the same split from the combination ids alone (nothing about the
machine it runs on), so N machines given the same options run disjoint parts whose union
is the whole matrix. Balance: combinations are dealt, most expensive first, to the shard
with the least estimated work so far (longest-processing-time-first); the estimate is the
registry's multiply-adds of one image x the batch size, plus a fixed overhead per
combination for building, compiling and the first call.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

# Work every combination costs whatever its size (build, compile, first call), in
# multiply-adds of a forward pass: about one ResNet-18 image.
OVERHEAD_MACS = 1.8e9

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' as (2, 4); ValueError with the fix for anything else (shards count from 1)."""
    match = _SHARD.match(text)
    if match is None:
        raise ValueError(f"expected I/N such as 2/4, got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"expected I/N with 1 <= I <= N (shards count from 1), got {text!r}")
    return index, count


def combination_cost(combo: Any) -> float:
    """Estimated work of one combination: multiply-adds of its batch plus a fixed overhead."""
    from models.registry import UnknownModelError, get_spec

    try:
        macs = float(get_spec(combo.model).macs)
    except UnknownModelError:
        macs = 0.0
    return OVERHEAD_MACS + macs * max(int(getattr(combo, "batch_size", 1)), 1)


def pair_key(combo_id: str) -> str:
    """The id without its framework: torch and JAX of one combination share a shard, so they can be interleaved."""
    import dataclasses

    from reports.vocabulary import parse_id

    try:
        return dataclasses.replace(parse_id(combo_id), framework="*").id
    except ValueError:  # not a benchmark id: a group of its own
        return combo_id


def assign(costs: Mapping[str, float], count: int) -> dict[str, int]:
    """Each id's shard (1..count): framework pairs dealt together, the most expensive first, each to the least-loaded shard."""
    groups: dict[str, list[str]] = {}
    for combo_id in costs:
        groups.setdefault(pair_key(combo_id), []).append(combo_id)
    cost = {key: sum(costs[i] for i in ids) for key, ids in groups.items()}
    loads = [0.0] * count
    out: dict[str, int] = {}
    for key in sorted(groups, key=lambda k: (-cost[k], k)):
        shard = min(range(count), key=lambda s: (loads[s], s))
        loads[shard] += cost[key]
        out.update({combo_id: shard + 1 for combo_id in groups[key]})
    return out


def select(costs: Mapping[str, float], index: int, count: int) -> set[str]:
    """The ids of shard `index` of `count`."""
    return {combo_id for combo_id, shard in assign(costs, count).items() if shard == index}


def loads(costs: Mapping[str, float], count: int) -> list[float]:
    """The estimated work of each shard, for reporting the balance."""
    out = [0.0] * count
    for combo_id, shard in assign(costs, count).items():
        out[shard - 1] += costs[combo_id]
    return out


def costs_of(combos: Iterable[Any]) -> dict[str, float]:
    """{combo.id: estimated cost} of `combos`."""
    return {combo.id: combination_cost(combo) for combo in combos}
