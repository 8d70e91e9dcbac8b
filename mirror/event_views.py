"""Read-only twins of the bus events, decoded by msgspec: the judge's parse of `shadow.pairs`.

The judge parses every pair it scores. pydantic builds ten models a pair, each with its
`__dict__`, fields-set and validators, about 30 µs a 2 kB pair with the batch held: a third of
the judge's Python per pair (issue 17). msgspec decodes the same JSON into slotted structs in
about a third of that. The contract stays `mirror.events`: the twins here are *generated* from
its pydantic models when this module is imported (same field names, types, defaults and
default factories, the models' properties such as `ArmResult.ok` and `ShadowPair.key`, unknown
fields refused), never written by hand, so a field added there is a field here. A model with a
field constraint or a validator, which a twin would not apply, makes the build fail at import.

`parse_shadow_pair_view` decides nothing itself that `mirror.events.parse_shadow_pair` would
decide otherwise:
- msgspec is strict (no "200" for an integer, no number for a datetime). Whatever it refuses
  or fails on (a nesting too deep included) is handed to pydantic, which accepts what its lax
  mode accepts, or raises the `SerializationError` naming the field: the same pairs reach the
  DLQ with the same reason.
- a pair that carries embedding reference texts (rare: the reference set's members) is parsed
  by pydantic, whose field constraints (a hash pattern, a range) the twins do not repeat, and
  whose `model_copy` the store uses on them;
- what msgspec accepts, pydantic accepts with equal values (`tests/mirror/test_event_views.py`
  checks both ways on the demo traffic and on mutated pairs). One difference is known: a
  timestamp given past the microsecond is rounded to it here and truncated by pydantic; every
  writer of ours sends microseconds.

A twin answers the pydantic model's read interface (fields and properties), not its methods
(`model_copy`, `model_dump`): the judge only reads a pair, then stores the bytes it came as.
The function is typed as returning `ShadowPair` for that reason; the test above pins that every
field and property of every model is present on its twin. Twins are frozen and kept out of the
cycle collector (`gc=False`): a decoded message holds no cycle, and a batch of 5,000 pairs in
flight would otherwise be scanned by every young collection.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, Literal, cast, get_args, get_origin

import msgspec
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mirror import events
from mirror.events import ShadowPair, parse_shadow_pair

#: The contract's models, in dependency order (a model's fields name only models before it).
MODELS: tuple[type[BaseModel], ...] = (
    events.ErrorInfo,
    events.ToolCall,
    events.Usage,
    events.EmbeddingSummary,
    events.Output,
    events.ArmResult,
    events.Truncation,
    events.ServedBy,
    events.CapturedCall,
    events.Arm,
    events.ShadowPair,
)


def _twin_type(annotation: Any, twins: dict[type[BaseModel], type[msgspec.Struct]]) -> Any:
    """`annotation` with every contract model replaced by its twin."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return twins[annotation]
    origin = get_origin(annotation)
    if origin is None or origin is Literal:
        if annotation is Any or origin is Literal:
            return annotation
        if isinstance(annotation, type) and issubclass(annotation, (Enum, str, int, float, bool)):
            return annotation
        if annotation in (type(None), datetime):
            return annotation
        raise TypeError(f"no msgspec twin for the annotation {annotation!r}")
    args = tuple(arg if arg is ... else _twin_type(arg, twins) for arg in get_args(annotation))
    if origin is types.UnionType or origin is typing.Union:
        return functools.reduce(operator.or_, args)
    if origin in (tuple, dict):
        return types.GenericAlias(origin, args)
    raise TypeError(f"no msgspec twin for the annotation {annotation!r}")


def _twin(
    model: type[BaseModel],
    twins: dict[type[BaseModel], type[msgspec.Struct]],
    overrides: dict[str, Any],
) -> type[msgspec.Struct]:
    decorators = model.__pydantic_decorators__
    if decorators.field_validators or decorators.model_validators or decorators.validators:
        # a validator could change or refuse a value the twin would take as it came
        raise TypeError(f"{model.__name__} has validators: a twin would not run them")
    fields: list[tuple[str, Any, Any]] = []
    for name, info in model.model_fields.items():
        if info.metadata and name not in overrides:
            # a constraint (pattern, range) the twin would not check: refuse to build one
            raise TypeError(f"{model.__name__}.{name} has constraints {info.metadata}")
        kind = overrides.get(name) or _twin_type(info.annotation, twins)
        if info.default_factory is not None:
            factory = cast(Callable[[], Any], info.default_factory)
            if isinstance(factory, type) and issubclass(factory, BaseModel):
                factory = twins[factory]
            fields.append((name, kind, msgspec.field(default_factory=factory)))
        elif info.default is PydanticUndefined:
            fields.append((name, kind, msgspec.NODEFAULT))
        else:
            fields.append((name, kind, info.default))
    namespace = {
        name: attribute
        for klass in model.__mro__
        if klass not in (BaseModel, object) and issubclass(klass, BaseModel)
        for name, attribute in vars(klass).items()
        if isinstance(attribute, property)
    }
    return msgspec.defstruct(
        model.__name__,
        [
            (name, kind) if default is msgspec.NODEFAULT else (name, kind, default)
            for name, kind, default in fields
        ],
        namespace=namespace,
        module=__name__,
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=True,
        gc=False,
    )


def _build() -> dict[type[BaseModel], type[msgspec.Struct]]:
    twins: dict[type[BaseModel], type[msgspec.Struct]] = {}
    for model in MODELS:
        # reference texts are handed to pydantic (constraints, model_copy): kept raw here
        overrides = {"reference": tuple[msgspec.Raw, ...]} if model is events.ShadowPair else {}
        twins[model] = _twin(model, twins, overrides)
    return twins


TWINS = _build()
_DECODER = msgspec.json.Decoder(TWINS[events.ShadowPair])


def parse_shadow_pair_view(raw: bytes) -> ShadowPair:
    """`mirror.events.parse_shadow_pair`, decoded into the twins when msgspec can (see the
    module docstring); raises `SerializationError` with pydantic's reason."""
    try:
        view = _DECODER.decode(raw)
    except Exception:  # noqa: BLE001 - pydantic decides, and names the reason
        return parse_shadow_pair(raw)
    if view.reference:  # type: ignore[attr-defined]
        return parse_shadow_pair(raw)
    return cast(ShadowPair, view)
