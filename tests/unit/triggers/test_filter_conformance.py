"""Conformance table for Lambda event filtering on Kafka records.

Each row: (pattern JSON text, record, expected match). Sources of the rules:
https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html
https://docs.aws.amazon.com/lambda/latest/dg/kafka-filtering.html
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.triggers.event_shape import KafkaRecord
from runtime.triggers.filters import (
    InvalidFilterCriteria,
    compile_filter_criteria,
    parse_pattern,
    pattern_matches,
    validate_filter_criteria,
)


def rec(
    value: object = None,
    *,
    raw: bytes | None = None,
    key: bytes | None = None,
    headers: tuple[tuple[str, bytes | None], ...] = (),
) -> KafkaRecord:
    if raw is None and value is not None:
        raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    return KafkaRecord("sensors", 2, 41, 1_700_000_000_000, key=key, value=raw, headers=headers)


DEVICE = {"device_ID": "AB1234", "session": {"start_time": "2024-01-01T00:00:00", "duration": 162}}

# (id, pattern, record, expected)
VALUE_CASES = [
    # --- the AWS kafka-filtering example
    ("doc-prefix", '{"value": {"device_ID": [{"prefix": "AB"}]}}', rec(DEVICE), True),
    ("doc-prefix-miss", '{"value": {"device_ID": [{"prefix": "ZZ"}]}}', rec(DEVICE), False),
    # --- exact values, OR lists, type strictness
    ("equals", '{"value": {"device_ID": ["AB1234"]}}', rec(DEVICE), True),
    ("equals-case-sensitive", '{"value": {"device_ID": ["ab1234"]}}', rec(DEVICE), False),
    ("or-list", '{"value": {"device_ID": ["X", "AB1234"]}}', rec(DEVICE), True),
    ("string-vs-number", '{"value": {"n": ["5"]}}', rec({"n": 5}), False),
    ("number-exact", '{"value": {"n": [5]}}', rec({"n": 5}), True),
    # Lambda compares numbers by their string form for exact matches.
    ("number-text-300.0", '{"value": {"n": [300]}}', rec(raw=b'{"n": 300.0}'), False),
    ("number-text-3e2", '{"value": {"n": [300]}}', rec(raw=b'{"n": 3.0e2}'), False),
    ("bool", '{"value": {"ok": [true]}}', rec({"ok": True}), True),
    ("bool-vs-1", '{"value": {"ok": [true]}}', rec({"ok": 1}), False),
    # --- nested fields
    ("nested", '{"value": {"session": {"duration": [162]}}}', rec(DEVICE), True),
    ("nested-missing-parent", '{"value": {"other": {"duration": [162]}}}', rec(DEVICE), False),
    (
        "nested-and",
        '{"value": {"device_ID": ["AB1234"], "session": {"duration": [1]}}}',
        rec(DEVICE),
        False,
    ),
    # --- arrays in the event: any element
    ("array-any", '{"value": {"tags": ["b"]}}', rec({"tags": ["a", "b"]}), True),
    ("array-none", '{"value": {"tags": ["c"]}}', rec({"tags": ["a", "b"]}), False),
    (
        "array-of-objects",
        '{"value": {"items": {"sku": ["x2"]}}}',
        rec({"items": [{"sku": "x1"}, {"sku": "x2"}]}),
        True,
    ),
    # Both fields must hold in the same array element.
    (
        "array-element-consistency",
        '{"value": {"items": {"sku": ["x1"], "qty": [2]}}}',
        rec({"items": [{"sku": "x1", "qty": 1}, {"sku": "x2", "qty": 2}]}),
        False,
    ),
    ("array-numeric-any", '{"value": {"t": [{"numeric": [">", 10]}]}}', rec({"t": [1, 20]}), True),
    # --- null and empty
    ("null", '{"value": {"u": [null]}}', rec({"u": None}), True),
    ("null-vs-missing", '{"value": {"u": [null]}}', rec({}), False),
    ("null-vs-empty", '{"value": {"u": [null]}}', rec({"u": ""}), False),
    ("empty", '{"value": {"u": [""]}}', rec({"u": ""}), True),
    # --- prefix / suffix / equals-ignore-case
    ("suffix", '{"value": {"f": [{"suffix": ".h5"}]}}', rec({"f": "run1.h5"}), True),
    ("suffix-miss", '{"value": {"f": [{"suffix": ".h5"}]}}', rec({"f": "run1.h5.tmp"}), False),
    ("prefix-number", '{"value": {"f": [{"prefix": "1"}]}}', rec({"f": 12}), False),
    ("ignore-case", '{"value": {"s": [{"equals-ignore-case": "DONE"}]}}', rec({"s": "done"}), True),
    (
        "prefix-ignore-case",
        '{"value": {"s": [{"prefix": {"equals-ignore-case": "ERR"}}]}}',
        rec({"s": "error: x"}),
        True,
    ),
    # --- anything-but
    ("anything-but", '{"value": {"s": [{"anything-but": "init"}]}}', rec({"s": "run"}), True),
    (
        "anything-but-same",
        '{"value": {"s": [{"anything-but": "init"}]}}',
        rec({"s": "init"}),
        False,
    ),
    (
        "anything-but-list",
        '{"value": {"s": [{"anything-but": ["a", "b"]}]}}',
        rec({"s": "b"}),
        False,
    ),
    (
        "anything-but-numbers",
        '{"value": {"n": [{"anything-but": [100, 200]}]}}',
        rec({"n": 150}),
        True,
    ),
    ("anything-but-missing", '{"value": {"s": [{"anything-but": "init"}]}}', rec({}), False),
    (
        "anything-but-prefix",
        '{"value": {"r": [{"anything-but": {"prefix": "us-"}}]}}',
        rec({"r": "eu-west-1"}),
        True,
    ),
    (
        "anything-but-prefix-hit",
        '{"value": {"r": [{"anything-but": {"prefix": "us-"}}]}}',
        rec({"r": "us-east-1"}),
        False,
    ),
    (
        "anything-but-suffix",
        '{"value": {"f": [{"anything-but": {"suffix": ".png"}}]}}',
        rec({"f": "a.png"}),
        False,
    ),
    (
        "anything-but-ignore-case",
        '{"value": {"s": [{"anything-but": {"equals-ignore-case": ["INIT"]}}]}}',
        rec({"s": "Init"}),
        False,
    ),
    # An array matches anything-but when any element differs.
    (
        "anything-but-array",
        '{"value": {"s": [{"anything-but": "a"}]}}',
        rec({"s": ["a", "b"]}),
        True,
    ),
    # --- numeric
    ("numeric-range", '{"value": {"t": [{"numeric": [">", 50, "<=", 60]}]}}', rec({"t": 60}), True),
    (
        "numeric-range-open",
        '{"value": {"t": [{"numeric": [">", 50, "<=", 60]}]}}',
        rec({"t": 50}),
        False,
    ),
    (
        "numeric-eq-float",
        '{"value": {"t": [{"numeric": ["=", 300]}]}}',
        rec(raw=b'{"t": 3.0e2}'),
        True,
    ),
    ("numeric-ge", '{"value": {"t": [{"numeric": [">=", -1.5]}]}}', rec({"t": -1.5}), True),
    ("numeric-string", '{"value": {"t": [{"numeric": [">", 1]}]}}', rec({"t": "5"}), False),
    # --- exists
    ("exists", '{"value": {"a": [{"exists": true}]}}', rec({"a": 0}), True),
    ("exists-null-is-present", '{"value": {"a": [{"exists": true}]}}', rec({"a": None}), True),
    ("exists-missing", '{"value": {"a": [{"exists": true}]}}', rec({"b": 1}), False),
    ("exists-false", '{"value": {"a": [{"exists": false}]}}', rec({"b": 1}), True),
    ("exists-false-present", '{"value": {"a": [{"exists": false}]}}', rec({"a": 1}), False),
    # Exists only looks at leaves: an object-valued field does not "exist".
    ("exists-false-object", '{"value": {"a": [{"exists": false}]}}', rec({"a": {"x": 1}}), True),
    ("exists-false-empty-array", '{"value": {"a": [{"exists": false}]}}', rec({"a": []}), True),
    (
        "exists-false-nested-missing-parent",
        '{"value": {"p": {"a": [{"exists": false}]}}}',
        rec({"q": 1}),
        True,
    ),
    # --- $or
    (
        "or",
        '{"value": {"$or": [{"a": ["1"]}, {"b": [{"numeric": [">", 5]}]}]}}',
        rec({"b": 9}),
        True,
    ),
    (
        "or-none",
        '{"value": {"$or": [{"a": ["1"]}, {"b": [{"numeric": [">", 5]}]}]}}',
        rec({"b": 1}),
        False,
    ),
    # --- non-JSON values: plain strings vs JSON patterns
    (
        "plain-string-prefix",
        '{"value": [{"prefix": "Hello"}]}',
        rec("Hello, this is a test."),
        True,
    ),
    ("plain-string-equals", '{"value": ["ping"]}', rec("ping"), True),
    (
        "plain-string-vs-json-pattern",
        '{"value": {"a": [{"exists": false}]}}',
        rec("not json"),
        False,
    ),
    ("json-value-vs-string-pattern", '{"value": [{"prefix": "{"}]}', rec({"a": 1}), False),
    # A JSON scalar is not a JSON object: it is matched as its text.
    ("json-scalar-as-text", '{"value": ["42"]}', rec(raw=b"42"), True),
    ("binary-value", '{"value": [{"anything-but": "x"}]}', rec(raw=b"\xff\xfe\x00"), False),
    ("tombstone", '{"value": {"a": [{"exists": false}]}}', rec(None), False),
    (
        "binary-value-exists-false-elsewhere",
        '{"value": {"a": [{"exists": false}]}}',
        rec(raw=b"\x80abc"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("pattern", "record", "expected"), [c[1:] for c in VALUE_CASES], ids=[c[0] for c in VALUE_CASES]
)
def test_value_patterns(pattern: str, record: KafkaRecord, expected: bool) -> None:
    assert pattern_matches(parse_pattern(pattern), record) is expected


# Local mode only (value_only=False): key as base64 text, headers as Lambda's byte lists.
METADATA_CASES = [
    (
        "key-base64",
        json.dumps({"key": [base64.b64encode(b"run-7").decode()]}),
        rec({"a": 1}, key=b"run-7"),
        True,
    ),
    ("key-missing", '{"key": [{"exists": false}]}', rec({"a": 1}), True),
    ("key-prefix-on-base64", '{"key": [{"prefix": "cnVu"}]}', rec({"a": 1}, key=b"run-7"), True),
    (
        "header-exists",
        '{"headers": {"trace": [{"exists": true}]}}',
        rec({"a": 1}, headers=(("trace", b"ab"),)),
        True,
    ),
    (
        "header-bytes",
        '{"headers": {"trace": [97]}}',
        rec({"a": 1}, headers=(("trace", b"ab"),)),
        True,
    ),
    (
        "header-absent",
        '{"headers": {"trace": [{"exists": true}]}}',
        rec({"a": 1}, headers=(("other", b"x"),)),
        False,
    ),
    (
        "partition-numeric",
        '{"partition": [{"numeric": ["<", 3]}], "value": {"a": [1]}}',
        rec({"a": 1}),
        True,
    ),
    ("topic", '{"topic": [{"prefix": "sens"}]}', rec("x"), True),
]


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [c[1:] for c in METADATA_CASES],
    ids=[c[0] for c in METADATA_CASES],
)
def test_metadata_patterns_local(pattern: str, record: KafkaRecord, expected: bool) -> None:
    assert pattern_matches(parse_pattern(pattern, value_only=False), record) is expected


def test_metadata_patterns_refused_for_msk() -> None:
    with pytest.raises(InvalidFilterCriteria, match="only support filtering on the 'value' key"):
        parse_pattern('{"key": ["x"]}')


def test_filters_are_ored_and_empty_matches_all() -> None:
    criteria = {
        "Filters": [{"Pattern": '{"value": {"a": [1]}}'}, {"Pattern": '{"value": {"b": [2]}}'}]
    }
    compiled = compile_filter_criteria(criteria)
    assert compiled.matches(rec({"b": 2}))
    assert not compiled.matches(rec({"c": 3}))
    assert compile_filter_criteria({}).matches(rec(raw=b"\xff"))
    assert compiled.select([rec({"a": 1}), rec({"a": 2})]) == [rec({"a": 1})]


INVALID = [
    ("not-object", "nope", "FilterCriteria"),
    ("too-many", {"Filters": [{"Pattern": '{"value": {"a": [1]}}'}] * 6}, "at most 5"),
    (
        "pattern-too-long",
        {"Filters": [{"Pattern": '{"value": {"a": ["' + "x" * 4100 + '"]}}'}]},
        "at most 4096",
    ),
    ("bad-json", {"Filters": [{"Pattern": "{value"}]}, "not valid JSON"),
    ("extra-key", {"Filters": [{"Pattern": '{"value": {"a": [1]}}', "X": 1}]}, "exactly one key"),
    ("scalar-rule", {"Filters": [{"Pattern": '{"value": {"a": 1}}'}]}, "list of rules"),
    ("empty-rules", {"Filters": [{"Pattern": '{"value": {"a": []}}'}]}, "must not be empty"),
    (
        "unknown-op",
        {"Filters": [{"Pattern": '{"value": {"a": [{"contains": "x"}]}}'}]},
        "unknown operator 'contains'",
    ),
    (
        "wildcard",
        {"Filters": [{"Pattern": '{"value": {"a": [{"wildcard": "*x"}]}}'}]},
        "EventBridge",
    ),
    (
        "numeric-bad-op",
        {"Filters": [{"Pattern": '{"value": {"a": [{"numeric": ["!=", 1]}]}}'}]},
        "numeric operator",
    ),
    (
        "numeric-two-lower",
        {"Filters": [{"Pattern": '{"value": {"a": [{"numeric": [">", 1, ">=", 2]}]}}'}]},
        "one lower",
    ),
    (
        "numeric-empty-range",
        {"Filters": [{"Pattern": '{"value": {"a": [{"numeric": [">", 5, "<", 1]}]}}'}]},
        "empty",
    ),
    (
        "numeric-string-bound",
        {"Filters": [{"Pattern": '{"value": {"a": [{"numeric": [">", "1"]}]}}'}]},
        "JSON number",
    ),
    (
        "exists-string",
        {"Filters": [{"Pattern": '{"value": {"a": [{"exists": "yes"}]}}'}]},
        "true or false",
    ),
    (
        "anything-but-mixed",
        {"Filters": [{"Pattern": '{"value": {"a": [{"anything-but": ["x", 1]}]}}'}]},
        "only strings or only numbers",
    ),
    ("or-single", {"Filters": [{"Pattern": '{"value": {"$or": [{"a": [1]}]}}'}]}, "at least two"),
    ("value-scalar", {"Filters": [{"Pattern": '{"value": "x"}'}]}, "object"),
    (
        "two-ops",
        {"Filters": [{"Pattern": '{"value": {"a": [{"prefix": "x", "suffix": "y"}]}}'}]},
        "exactly one operator",
    ),
]


@pytest.mark.parametrize(
    ("criteria", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_criteria_name_the_problem(criteria: object, message: str) -> None:
    with pytest.raises(InvalidFilterCriteria, match=message) as info:
        validate_filter_criteria(criteria)
    assert info.value.status == 422


def test_quota_increase_allows_ten() -> None:
    validate_filter_criteria({"Filters": [{"Pattern": '{"value": ["x"]}'}] * 10}, max_filters=10)


# ------------------------------------------------------------------------------- properties

scalars = st.one_of(
    st.text(max_size=8),
    st.integers(-1000, 1000),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)


@given(field=scalars, excluded=scalars.filter(lambda v: v is not None and not isinstance(v, bool)))
def test_anything_but_is_the_complement_of_equals(field: object, excluded: object) -> None:
    record = rec({"f": field})
    literal = json.dumps(excluded)
    equals = parse_pattern('{"value": {"f": [' + literal + "]}}")
    anything_but = parse_pattern('{"value": {"f": [{"anything-but": ' + literal + "}]}}")
    assert pattern_matches(equals, record) != pattern_matches(anything_but, record)


def _value_pattern(field_rules: object) -> dict[str, object]:
    return parse_pattern(json.dumps({"value": field_rules}))


@given(x=st.integers(-10_000, 10_000), low=st.integers(-100, 100), width=st.integers(0, 100))
def test_numeric_range_agrees_with_python(x: int, low: int, width: int) -> None:
    high = low + width
    if width:
        pattern = _value_pattern({"n": [{"numeric": [">=", low, "<", high]}]})
        expected = low <= x < high
    else:
        pattern = _value_pattern({"n": [{"numeric": ["=", low]}]})
        expected = x == low
    assert pattern_matches(pattern, rec({"n": x})) is expected


@given(text=st.text(max_size=12), prefix=st.text(max_size=4))
def test_prefix_and_anything_but_prefix_partition_strings(text: str, prefix: str) -> None:
    record = rec({"s": text})
    has = pattern_matches(_value_pattern({"s": [{"prefix": prefix}]}), record)
    hasnt = pattern_matches(_value_pattern({"s": [{"anything-but": {"prefix": prefix}}]}), record)
    assert has is text.startswith(prefix)
    assert has != hasnt
