"""Dagster ``Config`` classes made from the plain settings dataclasses, so every knob and
its default is defined once (in the module that uses it) and the launchpad, the YAML run
config and the benchmarks all see the same values. ``Literal`` fields stay ``Literal``:
Dagster rejects a mistyped choice (``mode: minbatch``) with the allowed values."""

from __future__ import annotations

import dataclasses
import typing

import dagster as dg
import pydantic


def _field(source: type, f: dataclasses.Field, hints: dict) -> tuple[object, object]:
    kind = hints[f.name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if typing.get_origin(kind) is tuple:  # Dagster config has lists, not tuples
        kind, default = list[typing.get_args(kind)[0]], list(default)
    return kind, pydantic.Field(default=default)


def config_from(name: str, doc: str, *sources: type, exclude: frozenset[str] = frozenset(), **extra) -> type[dg.Config]:
    """A ``dg.Config`` subclass with every field of the ``sources`` dataclasses (types and
    defaults as they are there) except ``exclude``, plus ``extra`` fields given as
    ``name=(type, default)``."""
    fields: dict[str, tuple[object, object]] = {}
    for source in sources:
        hints = typing.get_type_hints(source)
        for f in dataclasses.fields(source):
            if f.name in exclude:
                continue
            if f.name in fields:
                raise ValueError(f"{name}: field {f.name!r} is defined by two sources")
            fields[f.name] = _field(source, f, hints)
    fields.update(extra)
    return pydantic.create_model(name, __base__=dg.Config, __doc__=doc, **fields)


def build(source: type, config: dg.Config, **overrides):
    """The ``source`` dataclass from the fields of ``config`` it has (lists back to tuples)."""
    hints = typing.get_type_hints(source)
    values = {}
    for f in dataclasses.fields(source):
        if f.name in overrides or not hasattr(config, f.name):
            continue
        value = getattr(config, f.name)
        values[f.name] = tuple(value) if typing.get_origin(hints[f.name]) is tuple else value
    return source(**values, **overrides)
