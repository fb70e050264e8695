"""The application builder: a Serve config's ``args`` (or ``serve run … key=value``) → :class:`AppArgs`, a
frozen, validated dataclass → the bound application (``Recommender`` over an optional ``Encoder``).

Ray Serve's typed builders annotate their one parameter with a pydantic model; Serve passes any other
annotation the raw ``args`` dict, which :func:`build_app` parses with :meth:`AppArgs.from_args` (an
:class:`AppArgs` built in Python is taken as is).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ray.serve import Application

from interestrec.configcheck import ConfigError, check_config
from interestrec.recommend.config import ServeConfig
from interestrec.serving.deployments import Encoder, Recommender
from interestrec.serving.versions import pin_version

log = logging.getLogger("ray.serve")
TOKEN_ENV = {"token": "INTERESTREC_TOKEN", "read_token": "INTERESTREC_READ_TOKEN"}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class AppArgs:
    """What :func:`build_app` deploys.

    Attributes:
        serve: the :class:`~interestrec.recommend.config.ServeConfig` (its fields are flat keys of ``args``:
            ``store``, ``token``, ``read_token``, ``recommender_replicas``, …).
        artifacts: a pipeline output / publish root (its ``publish/LATEST`` is resolved once, at build, and
            pinned in both deployments' ``user_config``); ``None`` = the YAML ``user_config`` pins it.
        version: pin this version id instead of ``LATEST`` (with ``artifacts``).
        model: the text encoder's directory (``None`` = the packaged one).
        text: deploy the ``Encoder`` (cold-start text); ``false`` deploys none.
        encoder_gpus: GPUs per encoder replica.
    """

    serve: ServeConfig = field(default_factory=ServeConfig)
    artifacts: str | None = None
    version: str | None = None
    model: str | None = None
    text: bool = True
    encoder_gpus: float = 0.0

    def __post_init__(self):
        check_config(self, "serve", ge={"encoder_gpus": 0})

    @classmethod
    def keys(cls) -> set[str]:
        """Every key ``args`` may hold: this class's own fields and the ``ServeConfig`` fields."""
        return {f.name for f in fields(cls) if f.name != "serve"} | {f.name for f in fields(ServeConfig)}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> AppArgs:
        """From YAML ``args`` or ``serve run`` ``key=value`` strings (converted; ``None`` / ``""`` = the default).

        Raises:
            ConfigError (a ValueError): unknown keys (all named) or a value of the wrong type or range (named).
        """
        if not isinstance(args, Mapping):
            raise ConfigError(f"serve args must be a mapping of settings, got {type(args).__name__}")
        unknown = set(args) - cls.keys()
        if unknown:
            raise ConfigError(f"unknown serve settings {sorted(unknown)}; known: {sorted(cls.keys())}")
        own = {f.name for f in fields(cls) if f.name != "serve"}
        settings = ServeConfig.from_args({k: v for k, v in args.items() if k not in own})
        return cls(serve=settings, artifacts=_text(args.get("artifacts")), version=_version(args.get("version")),
                   model=_text(args.get("model")), text=_flag("text", args.get("text")),
                   encoder_gpus=_number(args.get("encoder_gpus")))


def _text(v):
    """A path-like or string; ``None`` / ``""`` = unset (anything else is left for the type check to name)."""
    if v is None or v == "":
        return None
    return os.fspath(v) if isinstance(v, os.PathLike) else v


def _version(v):
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else _text(v)


def _flag(name: str, v) -> bool:
    if v is None or v == "":
        return True
    if isinstance(v, bool):
        return v
    if str(v).lower() in _TRUE + _FALSE:
        return str(v).lower() in _TRUE
    raise ConfigError(f"serve.{name} must be a bool (true/false, yes/no, 1/0), got {v!r} ({type(v).__name__})")


def _number(v):
    """A number or its string; ``None`` / ``""`` = 0 (anything else is left for the type check to name)."""
    if v is None or v == "":
        return 0.0
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def resolve_tokens(cfg: ServeConfig, environ: Mapping[str, str]) -> ServeConfig:
    """The tokens a deployment runs with: ``$INTERESTREC_TOKEN`` / ``$INTERESTREC_READ_TOKEN`` where ``cfg``
    has none; a ``change-me`` placeholder refused; with no write token still, one generated and logged
    (writes are never open)."""
    tokens = {key: getattr(cfg, key) or environ.get(env) or None for key, env in TOKEN_ENV.items()}
    for key, value in tokens.items():
        if str(value or "").startswith("change-me"):
            raise ConfigError(f"serve {key} is still a placeholder ({value!r}, as in serving/cluster.yaml): "
                             "set a secret of your own")
    if not tokens["token"]:
        import secrets

        tokens["token"] = secrets.token_urlsafe(24)
        log.warning("interestrec: no write token configured ($INTERESTREC_TOKEN or `token`); POST /events needs "
                    "this generated one: 'Authorization: Bearer %s'", tokens["token"])
    return replace(cfg, **tokens)


def build_app(args: Mapping[str, Any] | AppArgs) -> Application:
    """Application builder (``serve run interestrec.serving.app:build_app artifacts=DIR …`` or YAML ``args``).

    Args: an :class:`AppArgs` or its ``args`` mapping (strings from the CLI are accepted): ``artifacts``,
    ``version``, ``model``, ``text``, ``encoder_gpus`` and any :class:`~interestrec.recommend.config.ServeConfig`
    field (``store``, ``token``, ``read_token``, …; the tokens default to ``$INTERESTREC_TOKEN`` /
    ``$INTERESTREC_READ_TOKEN``). Writes are never open: with no write token one is generated here, once per
    build (a redeploy that changes only ``user_config`` keeps it), and logged.
    A YAML ``deployments[].user_config`` overrides the pinned version without a restart.
    """
    a = args if isinstance(args, AppArgs) else AppArgs.from_args(args)
    cfg = resolve_tokens(a.serve, os.environ)
    if cfg.read_token is None:
        log.warning("interestrec: reads open to anyone (no read_token): users' histories and their sizes are hidden")
    user_config = pin_version(a.artifacts, a.version) if a.artifacts else None
    opts = {"num_replicas": cfg.recommender_replicas, "max_ongoing_requests": cfg.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": cfg.recommender_cpus}}
    if user_config is not None:
        opts["user_config"] = user_config
    encoder = None
    if a.text:
        eopts = {"num_replicas": cfg.encoder_replicas,
                 "ray_actor_options": {"num_cpus": 0.25, "num_gpus": a.encoder_gpus}}
        if user_config is not None:
            eopts["user_config"] = user_config
        encoder = Encoder.options(**eopts).bind(a.model, cfg.max_tokens)
    return Recommender.options(**opts).bind(cfg, encoder)
