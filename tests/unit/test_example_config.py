"""config/opsbot.example.yaml validates and documents every key the config model accepts."""

from __future__ import annotations

import types
import typing
from pathlib import Path

from pydantic import BaseModel

from bot.app.config import Config, load_config

EXAMPLE = Path(__file__).parents[2] / "config" / "opsbot.example.yaml"


def _models(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models inside a field's type (through Optional, lists, dicts, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def _keys(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        keys.add(name)
        for inner in _models(field.annotation):
            keys |= _keys(inner, seen)
    return keys


def test_the_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.services and cfg.people and cfg.routes


def test_every_config_key_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    missing = sorted(k for k in _keys(Config, set()) if f"{k}:" not in text)
    assert missing == [], f"keys missing from {EXAMPLE.name}: {missing}"
