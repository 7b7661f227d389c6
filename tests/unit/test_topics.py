"""Partitioning: leadscore's murmur2 is Kafka's, as aiokafka computes it."""

from __future__ import annotations

import random
import socket

import pytest
from aiokafka.partitioner import murmur2 as aiokafkas_murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.kafka.topics import murmur2, partition_for


def test_murmur2_equals_aiokafkas_for_every_length_up_to_64() -> None:
    rng = random.Random(1)
    for length in range(65):
        for _ in range(50):
            data = rng.randbytes(length)
            assert murmur2(data) == aiokafkas_murmur2(data), data


@given(st.binary(max_size=200))
def test_murmur2_equals_aiokafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafkas_murmur2(data)


def test_lead_ids_go_where_the_java_client_puts_them() -> None:
    # Kafka's own test vectors (clients/src/test/.../UtilsTest.java, testMurmur2): the
    # hash of each string, as a signed 32-bit int.
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, signed in vectors.items():
        assert murmur2(data) == signed & 0xFFFFFFFF
    assert partition_for(b"lead-000131", 4) == (murmur2(b"lead-000131") & 0x7FFFFFFF) % 4


def test_an_unreachable_broker_is_the_error_send_and_tail_raise() -> None:
    """`ensure_topics` (the worker, rescore) raises what `send` and `tail` raise for a broker
    that does not answer (`streams.kafka.errors`; the commands' own test is in
    tests/integration/test_dev.py)."""
    from streams.kafka.errors import BrokerUnreachable
    from streams.kafka.topics import ensure_topics
    from streams.settings import Settings

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    settings = Settings(broker=f"kafka://127.0.0.1:{port}")
    with pytest.raises(BrokerUnreachable, match=f"cannot reach Kafka at 127.0.0.1:{port}"):
        ensure_topics(settings, timeout_s=1.0)
