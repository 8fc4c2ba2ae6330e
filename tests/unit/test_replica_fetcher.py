"""A follower's fetcher for one leader must come back for a partition that arrives just as its last
one leaves (a controlled shutdown moving leaders does exactly that): the task used to end there, and
a partition added while it closed its connection was never fetched."""

from __future__ import annotations

import asyncio

from odradek.protocol.topic_partition import TopicPartition
from odradek.replica.fetcher import FetcherConfig, LeaderFetcher


class Replicas:
    """Hosts nothing: each fetch round drops its partitions, as when leadership moves."""

    def __init__(self) -> None:
        self.asked: list[TopicPartition] = []

    def partition(self, tp):
        self.asked.append(tp)
        return None


class Connection:
    connected = True

    def version_for(self, *args, **kwargs) -> int:
        return 12

    async def close(self) -> None:
        await asyncio.sleep(0.01)  # closing takes a moment, as a socket's does


def test_a_partition_followed_again_while_the_last_one_leaves_is_fetched():
    async def scenario():
        replicas = Replicas()
        fetcher = LeaderFetcher(replicas, 2, "127.0.0.1", 9, FetcherConfig(node_id=1, backoff_ms=20))
        tp = TopicPartition("t", 0)
        close = fetcher._close
        followed_again = []

        async def close_while_the_partition_comes_back() -> None:
            await close()
            fetcher._connection = Connection()  # no real leader here
            if not fetcher.partitions and not followed_again:
                followed_again.append(True)
                fetcher.add(tp, 2)  # the next metadata image, arriving while the connection closes

        fetcher._close = close_while_the_partition_comes_back
        fetcher._connection = Connection()
        try:
            fetcher.add(tp, 1)
            for _ in range(500):  # up to 5 s on a loaded machine; 0.05 s here
                if len(replicas.asked) >= 2:
                    break
                await asyncio.sleep(0.01)
            assert followed_again and len(replicas.asked) >= 2, "the fetcher took up the partition followed again"
        finally:
            await fetcher.stop()

    asyncio.run(scenario())
