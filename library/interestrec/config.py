"""Typed configuration: one frozen dataclass per stage, composed into :class:`PipelineConfig`.

Each stage owns its config dataclass in its own subpackage; this module only composes them and
converts plain mappings (parsed from YAML/CLI by the jobs) into dataclasses, rejecting unknown keys
with a message that names them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from interestrec.adapt.config import AdaptConfig
from interestrec.cluster.config import ClusterConfig
from interestrec.configcheck import ConfigError, check_config
from interestrec.data.config import IngestConfig
from interestrec.dynamics.config import DynamicsConfig
from interestrec.encode.config import EncodeConfig
from interestrec.evaluate.config import EvaluateConfig
from interestrec.graph.config import GraphConfig
from interestrec.recommend.config import ServeConfig
from interestrec.tracking import TrackingConfig

T = TypeVar("T")


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline's configuration (``configs/default.yaml`` mirrors it)."""

    ingest: IngestConfig = field(default_factory=IngestConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, "pipeline", ge={"seed": 0})


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, recursively.

    Unknown keys raise :class:`ConfigError` naming the key and the valid ones; lists become tuples
    so the result stays hashable and frozen.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} in '{where or cls.__name__}'; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid config for '{where or cls.__name__}': {e}") from e


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return from_mapping(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for a in args:
            if dataclasses.is_dataclass(a) and isinstance(value, Mapping):
                return from_mapping(a, value, where)
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        return tuple(value)
    if origin in (dict, Mapping) and isinstance(value, Mapping):
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_dict(cfg: Any) -> dict:
    """Plain-dict view of a config dataclass (for json manifests and hashing)."""
    return dataclasses.asdict(cfg)


def replace_path(cfg: T, dotted: str, value: Any) -> T:
    """Return a copy of ``cfg`` with ``a.b.c = value`` (used for ``--set a.b.c=v`` CLI overrides)."""
    head, _, rest = dotted.partition(".")
    names = {f.name for f in dataclasses.fields(cfg)}
    if head not in names:
        raise ConfigError(f"unknown config key '{head}' in override '{dotted}'; valid keys: {sorted(names)}")
    if rest:
        return dataclasses.replace(cfg, **{head: replace_path(getattr(cfg, head), rest, value)})
    hints = typing.get_type_hints(type(cfg))
    try:
        return dataclasses.replace(cfg, **{head: _coerce(hints[head], value, dotted)})
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:  # a dataclass's own cross-field checks
        raise ConfigError(f"invalid value for '{dotted}': {e}") from e
