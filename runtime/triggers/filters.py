"""Lambda event filtering (``FilterCriteria.Filters[].Pattern``) for Kafka records.

One implementation, used both to validate what users send the API and to evaluate filters in
local mode (on AWS the event source mapping evaluates them itself).

Rules implemented, from AWS's documentation:

- Lambda: https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html
  (filters are ORed; up to 5 per mapping by default, 10 with a quota increase; a record must
  contain every field a pattern names; exact matching is character by character, numbers
  compared by their string form, so 300, 300.0 and 3.0e2 are different values; operators:
  null, empty, equals, equals-ignore-case, and, or, anything-but, numeric (=, <, <=, >, >=,
  one lower and one upper bound), exists true/false, prefix, suffix).
- Kafka/MSK: https://docs.aws.amazon.com/lambda/latest/dg/kafka-filtering.html
  ("Amazon MSK and self-managed Apache Kafka event source mappings only support filtering on
  the ``value`` key"; producers write values "either in valid JSON format or as plain
  strings"). As for SQS bodies (same page family), the format of ``value`` in the pattern must
  match the record's: an object pattern only matches a JSON-object value, a list of rules only
  matches a plain-string value; on a mismatch the record is dropped.
- Operator semantics Lambda inherits from EventBridge:
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html
  and https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
  (anything-but with a value, a list of strings or of numbers, or ``{"prefix"|"suffix"|
  "equals-ignore-case": ...}``; ``$or``; exists only looks at leaf values; arrays in the event
  match when any element matches).

Not accepted because Lambda's operator table does not list them (EventBridge-only):
``wildcard``, ``cidr``, ``anything-but`` with ``wildcard``.

A value that is not valid UTF-8 is neither JSON nor a plain string: no pattern that names
``value`` matches it. Local mode may also match on the record's other fields (``key`` as its
base64 text, ``headers`` as Lambda's list of ``{name: [byte, ...]}``, ``topic``, ...) when
validation is run with ``value_only=False``; the AWS API accepts only ``value``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from runtime.domain.errors import Unprocessable
from runtime.triggers.event_shape import KafkaRecord, record_to_lambda

MAX_FILTERS_DEFAULT: Final = 5
MAX_FILTERS_WITH_QUOTA_INCREASE: Final = 10
MAX_PATTERN_CHARS: Final = 4096

# Fields of a Lambda MSK record a local pattern may name (value_only=False).
RECORD_FIELDS: Final = frozenset(
    {"topic", "partition", "offset", "timestamp", "timestampType", "key", "value", "headers"}
)
_NUMERIC_OPS: Final = frozenset({"=", "<", "<=", ">", ">="})
_LOWER_OPS: Final = frozenset({">", ">="})
_UPPER_OPS: Final = frozenset({"<", "<="})
_EVENTBRIDGE_ONLY: Final = frozenset({"wildcard", "cidr"})
_OPERATORS: Final = frozenset(
    {"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"}
)


class InvalidFilterCriteria(Unprocessable):
    """Filter criteria Lambda would refuse; the message names the filter and the path."""

    code = "invalid_filter_criteria"


@dataclass(frozen=True, slots=True)
class JsonNumber:
    """A JSON number kept with its text: exact matches compare text, ``numeric`` the value."""

    text: str
    value: float


class _Unmatchable:
    """A record value no pattern on ``value`` can match (not UTF-8)."""


_UNMATCHABLE: Final = _Unmatchable()
_MISSING: Final = object()


def _number(text: str) -> JsonNumber:
    return JsonNumber(text, float(text))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_json(text: str | bytes) -> Any:
    """Parse JSON keeping numbers as :class:`JsonNumber` (NaN/Infinity refused)."""
    return json.loads(text, parse_int=_number, parse_float=_number, parse_constant=_reject_constant)


# --------------------------------------------------------------------------- validation


def _fail(where: str, message: str) -> InvalidFilterCriteria:
    return InvalidFilterCriteria(f"{where}: {message}", details={"path": where})


def _is_number(value: Any) -> bool:
    return isinstance(value, JsonNumber)


def _validate_numeric(operand: Any, where: str) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise _fail(where, 'numeric takes [op, number] or [op, number, op, number], e.g. [">", 0]')
    ops = operand[0::2]
    nums = operand[1::2]
    for op in ops:
        if op not in _NUMERIC_OPS:
            raise _fail(where, f"numeric operator {op!r} is not one of {sorted(_NUMERIC_OPS)}")
    for num in nums:
        if not _is_number(num):
            raise _fail(where, f"numeric bound {num!r} must be a JSON number")
        if not math.isfinite(num.value):
            raise _fail(where, "numeric bounds must be finite")
    if len(ops) == 2:
        if "=" in ops:
            raise _fail(where, "numeric '=' cannot be combined with another operator")
        lower = [op for op in ops if op in _LOWER_OPS]
        upper = [op for op in ops if op in _UPPER_OPS]
        if len(lower) != 1 or len(upper) != 1:
            raise _fail(where, "a numeric range needs one lower (> or >=) and one upper (< or <=)")
        low = nums[ops.index(lower[0])].value
        high = nums[ops.index(upper[0])].value
        if low > high:
            raise _fail(where, f"numeric range is empty (lower bound {low} > upper bound {high})")


def _validate_string_operand(operator: str, operand: Any, where: str) -> None:
    if isinstance(operand, str):
        return
    if (
        operator in ("prefix", "suffix")
        and isinstance(operand, dict)
        and set(operand) == {"equals-ignore-case"}
        and isinstance(operand["equals-ignore-case"], str)
    ):
        return
    raise _fail(where, f"{operator} takes a string")


def _validate_anything_but(operand: Any, where: str) -> None:
    if isinstance(operand, str) or _is_number(operand):
        return
    if isinstance(operand, list):
        if not operand:
            raise _fail(where, "anything-but list must not be empty")
        if all(isinstance(v, str) for v in operand) or all(_is_number(v) for v in operand):
            return
        raise _fail(where, "anything-but list must hold only strings or only numbers")
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise _fail(
                where, "anything-but object takes exactly one of prefix, suffix, equals-ignore-case"
            )
        ((inner, inner_operand),) = operand.items()
        if inner in ("prefix", "suffix"):
            if isinstance(inner_operand, str):
                return
            raise _fail(where, f"anything-but {inner} takes a string")
        if inner == "equals-ignore-case":
            if isinstance(inner_operand, str) or (
                isinstance(inner_operand, list)
                and inner_operand
                and all(isinstance(v, str) for v in inner_operand)
            ):
                return
            raise _fail(where, "anything-but equals-ignore-case takes a string or list of strings")
        if inner in _EVENTBRIDGE_ONLY:
            raise _fail(
                where, f"anything-but {inner} is EventBridge-only; Lambda does not support it"
            )
        raise _fail(where, f"unknown anything-but operator {inner!r}")
    raise _fail(where, "anything-but takes a string, a number, a list, or an object")


def _validate_rule(rule: Any, where: str) -> None:
    if rule is None or isinstance(rule, str | bool) or _is_number(rule):
        return
    if isinstance(rule, list):
        raise _fail(where, "rules cannot be nested lists")
    if not isinstance(rule, dict):
        raise _fail(where, f"unsupported rule {rule!r}")
    if len(rule) != 1:
        raise _fail(where, f"a rule object holds exactly one operator, got {sorted(rule)}")
    ((operator, operand),) = rule.items()
    if operator in _EVENTBRIDGE_ONLY:
        raise _fail(
            where,
            f"{operator!r} is an EventBridge operator Lambda event filtering does not support",
        )
    if operator not in _OPERATORS:
        raise _fail(where, f"unknown operator {operator!r}; Lambda supports {sorted(_OPERATORS)}")
    if operator == "exists":
        if not isinstance(operand, bool):
            raise _fail(where, "exists takes true or false")
    elif operator == "numeric":
        _validate_numeric(operand, where)
    elif operator == "anything-but":
        _validate_anything_but(operand, where)
    else:
        _validate_string_operand(operator, operand, where)


def _validate_rules(rules: list[Any], where: str) -> None:
    if not rules:
        raise _fail(where, "a rule list must not be empty")
    for index, rule in enumerate(rules):
        _validate_rule(rule, f"{where}[{index}]")


def _validate_object(pattern: Any, where: str) -> None:
    if not isinstance(pattern, dict):
        raise _fail(where, "must be an object")
    if not pattern:
        raise _fail(where, "must not be empty")
    for key, sub in pattern.items():
        path = f"{where}.{key}"
        if key == "$or":
            _validate_or(sub, path, _validate_object)
        elif isinstance(sub, dict):
            _validate_object(sub, path)
        elif isinstance(sub, list):
            _validate_rules(sub, path)
        else:
            raise _fail(
                path,
                "must be a list of rules or an object of fields "
                f'(e.g. ["{sub}"]), got {type(sub).__name__}',
            )


def _validate_or(alternatives: Any, where: str, check: Any) -> None:
    if not isinstance(alternatives, list) or len(alternatives) < 2:
        raise _fail(where, "$or takes a list of at least two patterns")
    for index, alternative in enumerate(alternatives):
        check(alternative, f"{where}[{index}]")


def _validate_value(sub: Any, where: str) -> None:
    # ``value`` is either an object pattern (JSON values) or a rule list (plain strings).
    if isinstance(sub, dict):
        _validate_object(sub, where)
    elif isinstance(sub, list):
        _validate_rules(sub, where)
    else:
        raise _fail(where, "must be an object (JSON values) or a list of rules (plain strings)")


def _validate_top(pattern: Any, where: str, value_only: bool) -> None:
    if not isinstance(pattern, dict):
        raise _fail(where, "the pattern must be a JSON object")
    if not pattern:
        raise _fail(where, "the pattern must name at least one field")
    for key, sub in pattern.items():
        path = f"{where}.{key}"
        if key == "$or":
            _validate_or(sub, path, lambda alt, p: _validate_top(alt, p, value_only))
        elif key == "value":
            _validate_value(sub, path)
        elif value_only:
            raise _fail(
                path,
                "Amazon MSK and Kafka event source mappings only support "
                "filtering on the 'value' key",
            )
        elif key not in RECORD_FIELDS:
            raise _fail(path, f"unknown record field; use one of {sorted(RECORD_FIELDS)}")
        elif isinstance(sub, dict):
            _validate_object(sub, path)
        elif isinstance(sub, list):
            _validate_rules(sub, path)
        else:
            raise _fail(path, "must be a list of rules or an object")


def parse_pattern(pattern_text: str, *, where: str = "Pattern", value_only: bool = True) -> Any:
    """Parse and validate one ``Pattern`` string; return the parsed pattern."""
    if not isinstance(pattern_text, str):
        raise _fail(where, "Pattern must be a string holding a JSON object")
    if len(pattern_text) > MAX_PATTERN_CHARS:
        raise _fail(
            where,
            f"Pattern is {len(pattern_text)} characters; Lambda allows at most {MAX_PATTERN_CHARS}",
        )
    try:
        pattern = loads_json(pattern_text)
    except ValueError as exc:
        raise _fail(where, f"Pattern is not valid JSON: {exc}") from exc
    _validate_top(pattern, where, value_only)
    return pattern


def validate_filter_criteria(
    criteria: Any,
    *,
    max_filters: int = MAX_FILTERS_DEFAULT,
    value_only: bool = True,
) -> None:
    """Raise :class:`InvalidFilterCriteria` naming what is wrong, or return ``None``.

    ``criteria`` is Lambda's ``FilterCriteria``: ``{"Filters": [{"Pattern": "<json>"}]}``.
    ``{}`` or ``{"Filters": []}`` means no filtering.
    """
    compile_filter_criteria(criteria, max_filters=max_filters, value_only=value_only)


# ----------------------------------------------------------------------------- matching


def _leaves(value: Any) -> list[Any]:
    """Leaf values at a field: scalars, with arrays flattened; objects are not leaves."""
    if value is _MISSING:
        return []
    if isinstance(value, list):
        out: list[Any] = []
        for element in value:
            out.extend(_leaves(element))
        return out
    if isinstance(value, dict):
        return []
    return [value]


def _objects(value: Any) -> list[dict[str, Any]]:
    """Objects at a field, with arrays flattened (arrays match when any element matches)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        out: list[dict[str, Any]] = []
        for element in value:
            out.extend(_objects(element))
        return out
    return []


def _exact(rule: Any, leaf: Any) -> bool:
    if rule is None:
        return leaf is None
    if isinstance(rule, bool):
        return isinstance(leaf, bool) and leaf is rule
    if isinstance(rule, JsonNumber):
        return isinstance(leaf, JsonNumber) and leaf.text == rule.text
    return isinstance(leaf, str) and leaf == rule


def _string_op(operator: str, operand: Any, leaf: Any) -> bool:
    if not isinstance(leaf, str):
        return False
    needle: str
    haystack: str = leaf
    if isinstance(operand, dict):  # {"prefix": {"equals-ignore-case": "..."}}
        needle, haystack = operand["equals-ignore-case"].casefold(), leaf.casefold()
    elif operator == "equals-ignore-case":
        needle, haystack = str(operand).casefold(), leaf.casefold()
    else:
        needle = str(operand)
    if operator == "prefix":
        return haystack.startswith(needle)
    if operator == "suffix":
        return haystack.endswith(needle)
    return haystack == needle  # equals-ignore-case


def _numeric(operand: list[Any], leaf: Any) -> bool:
    if not isinstance(leaf, JsonNumber):
        return False
    x = leaf.value
    for op, bound in zip(operand[0::2], operand[1::2], strict=True):
        b = bound.value
        ok = {
            "=": x == b,
            "<": x < b,
            "<=": x <= b,
            ">": x > b,
            ">=": x >= b,
        }[op]
        if not ok:
            return False
    return True


def _anything_but(operand: Any, leaf: Any) -> bool:
    if isinstance(operand, dict):
        ((inner, inner_operand),) = operand.items()
        if not isinstance(leaf, str):
            return False
        if inner == "equals-ignore-case":
            excluded = [inner_operand] if isinstance(inner_operand, str) else inner_operand
            return leaf.casefold() not in {e.casefold() for e in excluded}
        return not _string_op(inner, inner_operand, leaf)
    excluded = operand if isinstance(operand, list) else [operand]
    return not any(_exact(e, leaf) for e in excluded)


def _leaf_matches(rule: Any, leaf: Any) -> bool:
    if not isinstance(rule, dict):
        return _exact(rule, leaf)
    ((operator, operand),) = rule.items()
    if operator == "numeric":
        return _numeric(operand, leaf)
    if operator == "anything-but":
        return _anything_but(operand, leaf)
    return _string_op(operator, operand, leaf)


def _rules_match(rules: list[Any], value: Any) -> bool:
    leaves = _leaves(value)
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if bool(leaves) == rule["exists"]:
                return True
        elif any(_leaf_matches(rule, leaf) for leaf in leaves):
            return True
    return False


def _field_matches(sub: Any, value: Any) -> bool:
    if isinstance(sub, list):
        return _rules_match(sub, value)
    # Nested object pattern: a missing or scalar field has no sub-fields, which still lets
    # ``exists: false`` below it match.
    candidates = _objects(value) or [{}]
    return any(_object_matches(sub, candidate) for candidate in candidates)


def _object_matches(pattern: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    for key, sub in pattern.items():
        if key == "$or":
            if not any(_object_matches(alt, obj) for alt in sub):
                return False
        elif not _field_matches(sub, obj.get(key, _MISSING)):
            return False
    return True


def _value_matches(sub: Any, value: Any) -> bool:
    if value is _UNMATCHABLE or value is _MISSING:
        return False
    if isinstance(sub, dict):  # JSON pattern: only JSON-object values
        return isinstance(value, dict) and _object_matches(sub, value)
    return isinstance(value, str) and _rules_match(sub, value)  # plain-string pattern


def _top_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    for key, sub in pattern.items():
        if key == "$or":
            if not any(_top_matches(alt, event) for alt in sub):
                return False
        elif key == "value":
            if not _value_matches(sub, event.get("value", _MISSING)):
                return False
        elif not _field_matches(sub, event.get(key, _MISSING)):
            return False
    return True


def decode_value_for_filtering(value: bytes | None) -> Any:
    """How Lambda sees a record value when filtering: JSON object, plain string, or neither."""
    if value is None:
        return _MISSING
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return _UNMATCHABLE
    try:
        parsed = loads_json(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, dict) else text


def filter_view(record: KafkaRecord) -> dict[str, Any]:
    """The record as a pattern sees it: Lambda's record fields, ``value`` decoded."""
    view = loads_json(json.dumps(record_to_lambda(record)))  # numbers as JsonNumber
    view["value"] = decode_value_for_filtering(record.value)
    return dict(view)


def pattern_matches(pattern: Mapping[str, Any], record: KafkaRecord) -> bool:
    """Whether one parsed pattern (from :func:`parse_pattern`) matches a record."""
    return _top_matches(pattern, filter_view(record))


@dataclass(frozen=True)
class CompiledFilters:
    """Parsed, validated filter criteria; ``matches`` ORs the patterns."""

    patterns: tuple[Any, ...]

    def matches(self, record: KafkaRecord) -> bool:
        if not self.patterns:
            return True
        view = filter_view(record)
        return any(_top_matches(p, view) for p in self.patterns)

    def select(self, records: Iterable[KafkaRecord]) -> list[KafkaRecord]:
        return [r for r in records if self.matches(r)]


def compile_filter_criteria(
    criteria: Any,
    *,
    max_filters: int = MAX_FILTERS_DEFAULT,
    value_only: bool = True,
) -> CompiledFilters:
    """Validate ``FilterCriteria`` and return an evaluator for it."""
    if criteria is None:
        return CompiledFilters(())
    if not isinstance(criteria, Mapping):
        raise _fail("FilterCriteria", 'must be an object like {"Filters": [{"Pattern": ...}]}')
    unknown = set(criteria) - {"Filters"}
    if unknown:
        raise _fail("FilterCriteria", f"unknown keys {sorted(unknown)}; only 'Filters' is allowed")
    filters = criteria.get("Filters", [])
    if not isinstance(filters, Sequence) or isinstance(filters, str | bytes):
        raise _fail("FilterCriteria.Filters", "must be a list")
    if len(filters) > max_filters:
        raise _fail(
            "FilterCriteria.Filters",
            f"{len(filters)} filters; at most {max_filters} are allowed per trigger",
        )
    patterns: list[Any] = []
    for index, entry in enumerate(filters):
        where = f"FilterCriteria.Filters[{index}]"
        if not isinstance(entry, Mapping) or set(entry) != {"Pattern"}:
            raise _fail(where, "each filter must be an object with exactly one key, 'Pattern'")
        patterns.append(
            parse_pattern(entry["Pattern"], where=f"{where}.Pattern", value_only=value_only)
        )
    return CompiledFilters(tuple(patterns))
