"""`where` conditions of the rules file, compiled into plain predicates.

A condition maps a dotted path to operators, all of which must hold:
`{company.employees: {gte: 50, lt: 500}}`. A missing path satisfies
only `exists: false` (so does a JSON null). Comparisons between a number and a numeric string
(Segment traits often carry "250") compare the numbers; other mismatched
types never match, and never raise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Any], bool]
Scalar = str | int | float | bool | None

MISSING: Any = object()


def lookup(root: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path; `MISSING` if any step is absent.

    The first step may be an attribute (a message field); the rest are keys of
    JSON objects (dicts).
    """
    first = path[0]
    value = root.get(first, MISSING) if type(root) is dict else getattr(root, first, MISSING)
    for step in path[1:]:
        if type(value) is not dict:
            return MISSING
        value = value.get(step, MISSING)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _ordered(operand: Scalar, test: Callable[[Any, Any], bool]) -> Predicate:
    if isinstance(operand, str):
        return lambda value: isinstance(value, str) and test(value, operand)
    bound = float(operand)  # type: ignore[arg-type]

    def compare(value: Any) -> bool:
        number = _number(value)
        return number is not None and test(number, bound)

    return compare


def _equal(operand: Scalar) -> Predicate:
    number = _number(operand) if not isinstance(operand, str) else None
    if number is None:
        return lambda value: bool(value == operand)
    return lambda value: _number(value) == number


def _member(operands: list[Scalar]) -> Predicate:
    tests = [_equal(operand) for operand in operands]
    return lambda value: any(test(value) for test in tests)


def _contains(operand: Scalar) -> Predicate:
    def contains(value: Any) -> bool:
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        if isinstance(value, list | tuple):
            return operand in value
        return False

    return contains


def _matches(pattern: str) -> Predicate:
    regex = re.compile(pattern)
    return lambda value: isinstance(value, str) and regex.search(value) is not None


def operator(name: str, operand: Any) -> Predicate:
    """The predicate for one operator; ValueError for an unknown operator or bad operand."""
    if name == "eq":
        return _equal(operand)
    if name == "ne":
        equal = _equal(operand)
        return lambda value: not equal(value)
    if name == "in":
        return _member(operand)
    if name == "not_in":
        member = _member(operand)
        return lambda value: not member(value)
    if name == "gt":
        return _ordered(operand, lambda a, b: a > b)
    if name == "gte":
        return _ordered(operand, lambda a, b: a >= b)
    if name == "lt":
        return _ordered(operand, lambda a, b: a < b)
    if name == "lte":
        return _ordered(operand, lambda a, b: a <= b)
    if name == "contains":
        return _contains(operand)
    if name == "starts_with":
        return lambda value: isinstance(value, str) and value.startswith(operand)
    if name == "ends_with":
        return lambda value: isinstance(value, str) and value.endswith(operand)
    if name == "matches":
        return _matches(operand)
    raise ValueError(f"unknown operator {name!r}")


def compile_condition(operators: Mapping[str, Any]) -> Predicate:
    """All operators of one path, as one predicate over the value found there (or MISSING)."""
    exists = operators.get("exists")
    tests = [operator(name, operand) for name, operand in operators.items() if name != "exists"]
    if exists is False:
        return lambda value: value is MISSING or value is None
    if len(tests) == 1:  # the common case, kept lean: it runs for every message
        test = tests[0]
        return lambda value: value is not MISSING and value is not None and test(value)

    def holds(value: Any) -> bool:
        if value is MISSING or value is None:
            return False
        return all(test(value) for test in tests)

    return holds


Where = tuple[tuple[tuple[str, ...], Predicate], ...]


def compile_where(where: Mapping[str, Mapping[str, Any]]) -> Where:
    return tuple((tuple(path.split(".")), compile_condition(ops)) for path, ops in where.items())


def where_holds(where: Where, root: Any) -> bool:
    for path, holds in where:  # noqa: SIM110 - faster than all() on the hot path
        if not holds(lookup(root, path)):
            return False
    return True
