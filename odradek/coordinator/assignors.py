"""Server-side assignors of consumer-protocol groups (KIP-848): `uniform` and `range`.

Input: each member's subscribed topics and current target, and each topic's partition count.
Output: member id -> {topic: set of partitions}. Both are deterministic. `uniform` balances the
number of partitions per member and keeps a member's partitions where it can (sticky); `range`
gives each member a contiguous range of every topic it subscribes to, as the client-side range
assignor does, so co-partitioned topics line up.
"""

from __future__ import annotations

from collections.abc import Mapping

Assignment = dict[str, set[int]]


def uniform(
    subscriptions: Mapping[str, set[str]],
    partitions: Mapping[str, int],
    current: Mapping[str, Assignment],
) -> dict[str, Assignment]:
    members = sorted(subscriptions)
    result: dict[str, Assignment] = {m: {} for m in members}
    counts = {m: 0 for m in members}
    every = [(topic, p) for topic in sorted(partitions) for p in range(partitions[topic])]
    wanted = [(t, p) for t, p in every if any(t in subscriptions[m] for m in members)]
    if not members or not wanted:
        return result
    # A member's fair share, computed over the members that can take each partition.
    quota = -(-len(wanted) // len(members))
    unassigned = []
    for topic, partition in wanted:
        owner = next(
            (m for m in members if partition in current.get(m, {}).get(topic, ()) and topic in subscriptions[m]), None
        )
        if owner is not None and counts[owner] < quota:
            result[owner].setdefault(topic, set()).add(partition)
            counts[owner] += 1
        else:
            unassigned.append((topic, partition))
    for topic, partition in unassigned:
        candidates = [m for m in members if topic in subscriptions[m]]
        chosen = min(candidates, key=lambda m: (counts[m], m))
        result[chosen].setdefault(topic, set()).add(partition)
        counts[chosen] += 1
    return result


def range_assignor(
    subscriptions: Mapping[str, set[str]],
    partitions: Mapping[str, int],
    current: Mapping[str, Assignment],
) -> dict[str, Assignment]:
    result: dict[str, Assignment] = {m: {} for m in subscriptions}
    for topic in sorted(partitions):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not members:
            continue
        count = partitions[topic]
        per_member, extra = divmod(count, len(members))
        start = 0
        for index, member in enumerate(members):
            size = per_member + (1 if index < extra else 0)
            if size:
                result[member][topic] = set(range(start, start + size))
            start += size
    return result


ASSIGNORS = {"uniform": uniform, "range": range_assignor}
