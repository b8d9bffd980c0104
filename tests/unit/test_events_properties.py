"""Property tests: any input yields a typed event or EventParseError — nothing else escapes.

Random JSON, random bytes, and the published/hand-made events mutated the ways real payloads
drift (keys dropped, values of the wrong type, stray whitespace, swapped case).
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import EventParseError
from shared.events import ArmEvent, KeyVaultEvent, UnknownEvent, parse_batch, parse_event
from tests.events import all_event_files
from tests.fixtures.samples import SAMPLES_DIR

SAMPLES: list[Any] = [
    json.loads(p.read_text(encoding="utf-8"))
    for p in [*sorted((SAMPLES_DIR / "eventgrid").glob("*.json")), *all_event_files()]
]
EVENTS: list[dict[str, Any]] = [
    e for s in SAMPLES for e in (s if isinstance(s, list) else [s]) if "id" in e
]  # every event object (the validation *response* sample is not one)
TYPED = (KeyVaultEvent, ArmEvent, UnknownEvent)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
#: Out-of-range epochs and years are where date handling breaks.
extreme_numbers = st.sampled_from(
    [2**70, -(2**70), 1e300, float("inf"), -1e20, 10**12, 253402300800]
)
numeric_strings = (extreme_numbers | st.integers() | st.floats()).map(str)
field_values = json_values | extreme_numbers | numeric_strings
#: Envelope and data field names of the events (both spellings).
DATA_KEYS = frozenset(
    {"Id", "VaultName", "ObjectType", "ObjectName", "Version", "NBF", "EXP"}
    | {"authorization", "claims", "httpRequest", "resourceUri", "operationName", "tenantId"}
    | {"subscriptionId", "correlationId", "status"}
)
FIELD_NAMES = sorted(
    DATA_KEYS
    | {"id", "topic", "source", "subject", "eventType", "type", "eventTime", "time", "data"}
    | {"specversion", "specVersion", "dataVersion"}
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(body: Any) -> None:
    try:
        events = parse_batch(body)
    except EventParseError:
        return
    assert all(isinstance(e, TYPED) for e in events)


@PROPERTY
@given(json_values)
def test_random_json(value: Any) -> None:
    _check(json.dumps(value))
    if isinstance(value, dict):
        with contextlib.suppress(EventParseError):
            assert isinstance(parse_event(value), TYPED)


@PROPERTY
@given(st.binary(max_size=200))
def test_random_bytes(body: bytes) -> None:
    _check(body)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside ``obj``."""
    out: list[tuple[Any, ...]] = []
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _parent(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        obj = obj[key]
    return obj


def _swap(text: str) -> str:
    return text.swapcase()


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    event = copy.deepcopy(draw(st.sampled_from(EVENTS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(event)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(event, path), path[-1]
        action = draw(st.sampled_from(["drop", "retype", "space_key", "space_value", "case"]))
        if action == "drop":
            del parent[key]
        elif action == "retype":
            parent[key] = draw(field_values)
        elif isinstance(parent, dict) and action in ("space_key", "case"):
            value = parent.pop(key)
            parent[f" {key}\t" if action == "space_key" else _swap(key)] = value
        elif isinstance(parent[key], str):
            value = parent[key]
            parent[key] = f"  {value} " if action == "space_value" else _swap(value)
    return event


@PROPERTY
@given(
    st.sampled_from(EVENTS),
    st.dictionaries(st.sampled_from(FIELD_NAMES), field_values, min_size=1, max_size=3),
)
def test_any_value_in_any_known_field(event: dict[str, Any], replacements: dict[str, Any]) -> None:
    event = copy.deepcopy(event)
    data = event.get("data")
    for name, value in replacements.items():
        target = (
            data if (isinstance(data, dict) and name[0].isupper()) or name in DATA_KEYS else event
        )
        if isinstance(target, dict):
            target[name] = value
    _check(event)


@PROPERTY
@given(mutated_events(), st.booleans())
def test_mutated_published_events(event: Any, as_batch: bool) -> None:
    _check(json.dumps([event] if as_batch else event))
    _check(event)


def test_the_mutation_corpus_covers_both_families() -> None:
    kinds = {type(parse_event(e)) for e in EVENTS}
    assert kinds == {KeyVaultEvent, ArmEvent, UnknownEvent}
