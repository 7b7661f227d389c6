"""The tables' store: Faust's RocksDB store (rocksdict underneath), read and written one
partition at a time.

Registered with Faust's `faust.stores` entry point as `leadscore-rocksdb` (pyproject.toml)
and selected by `create_app`'s `store="leadscore-rocksdb://"`. Faust's own `table.get`
looks in the partition of the stream's current event, and without one (the scoring
intake has none) in every partition's RocksDB in turn; the lead store knows each key's
partition and reads and writes it there (`streams.state.store`). faust-streaming is
pinned (`streams.kafka.pins`), and this is how its own changelog recovery writes.
"""

from __future__ import annotations

from typing import cast

from faust.stores import rocksdb
from faust.types import TableT
from rocksdict import WriteBatch


class Store(rocksdb.Store):
    def read(self, partition: int, key: bytes) -> bytes | None:
        """`key`'s value in the RocksDB of `partition`."""
        value: bytes | None = self._db_for_partition(partition).get(key)
        return value

    def write(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """`records` into the RocksDB of `partition` in one write batch (None: delete)."""
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db_for_partition(partition).write(batch)


def store_of(table: TableT[bytes, bytes]) -> Store:
    """A table's store, which `create_app` makes a `Store`."""
    return cast(Store, table.data)
