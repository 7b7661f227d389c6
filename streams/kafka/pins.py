"""The library versions leadscore's overrides of their private internals were written for.

This package (`streams.kafka`: the transport's consumer, producer and Tansu tuning, the
transactions, the worker's stop deadline) and the tables' store
(`streams.state.rocksdb`) reach into faust-streaming, mode-streaming, aiokafka and
rocksdict below their public APIs (see each override's comment). Those libraries are
pinned exactly in pyproject.toml; a different installed version may have moved what they
reach for, so the worker warns at start-up, and `tests/unit/test_pins.py` fails, naming
what changed. Re-read each override against the new version before moving a pin here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

WRITTEN_FOR = {
    "faust-streaming": "0.15.3",
    "mode-streaming": "0.7.1",
    "aiokafka": "0.14.0",
    "rocksdict": "0.3.29",
}


def mismatches() -> list[str]:
    """A line per library whose installed version is not the one the overrides expect."""
    found = []
    for name, expected in WRITTEN_FOR.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != expected:
            found.append(
                f"{name} {installed} is installed, but leadscore's overrides of its internals "
                f"were written for {expected} (see streams/kafka/pins.py)"
            )
    return found
