"""The one checkpoint format: a typed ``Checkpoint``, atomic save, safe load, rebuild through the registry.

On disk a checkpoint is a plain dict of tensors, numbers and strings that
``torch.load(weights_only=True)`` reads (the config as JSON text), so loading one never runs
code. It names its architecture and options, so ``build_model`` rebuilds the network through
the model registry alone.

    ckpt = load_checkpoint("run-3.pt")
    model = build_model(ckpt)            # eval mode, weights loaded
    save_checkpoint(ckpt, "copy.pt")     # temp file + fsync + os.replace

``init`` strings such as ``run:<id>`` are resolved through a table of resolvers
(``register_init_resolver``, ``resolve_init``); ``cnnviz.runs`` registers the ``run`` prefix when
imported. ``get_model(init=...)`` needs the table and the safe file reader, and ``models`` sits
below this module, so the reader lives in ``cnnviz.models.weights`` and the table in the torch-free
``cnnviz.paths`` (registering a resolver must not import torch); both are re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from cnnviz.models import INPUT, ProbeModel, WeightsError, get_model, load_weights_file
from cnnviz.paths import register_init_resolver, resolve_init

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "CheckpointError", "build_model", "is_checkpoint", "load_checkpoint",
           "load_state_dict_file", "register_init_resolver", "resolve_init", "save_checkpoint"]

CHECKPOINT_FORMAT = "cnnviz-checkpoint/1"
REQUIRED_KEYS = ("format", "arch", "num_classes", "state_dict")


class CheckpointError(WeightsError):
    """A file that is not a loadable cnnviz checkpoint (missing, foreign, corrupt or unsafe); one line."""


@dataclass
class Checkpoint:
    """Everything needed to rebuild a trained model, and to resume its training later."""

    arch: str
    num_classes: int  # outputs of the head (1 for binary cross-entropy)
    state_dict: dict[str, torch.Tensor]
    options: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    mean: list[float] | None = None  # the normalisation the weights expect
    std: list[float] | None = None
    image_size: int | None = None
    mode: str = "scratch"
    probe_layer: str | None = None  # probe mode: the probe point, its pooled grid and feature count
    probe_grid: int | None = None
    probe_features: int | None = None
    epoch: int | None = None  # the epoch these weights are from
    metrics: dict[str, Any] = field(default_factory=dict)  # that epoch's row, with best_val_acc
    config: dict[str, Any] = field(default_factory=dict)  # TrainConfig.to_dict()
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    rng_state: dict[str, torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know (run_id, loss, ...)
    format: str = CHECKPOINT_FORMAT

    def to_payload(self) -> dict[str, Any]:
        """The plain dict written to disk (config as JSON text, unknown keys kept at the top level)."""
        payload = {**self.extra}
        for f in dataclasses.fields(self):
            if f.name != "extra":
                payload[f.name] = getattr(self, f.name)
        payload["config"] = json.dumps(self.config, sort_keys=True)
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], *, name: str = "checkpoint") -> "Checkpoint":
        """Read a payload dict (this version's or an older one's); CheckpointError names what is wrong."""
        if not isinstance(payload, Mapping) or payload.get("format") != CHECKPOINT_FORMAT:
            found = payload.get("format") if isinstance(payload, Mapping) else type(payload).__name__
            raise CheckpointError(f"{name} is not a cnnviz checkpoint (format {found!r}, expected "
                                  f"{CHECKPOINT_FORMAT!r})")
        missing = [k for k in REQUIRED_KEYS if k not in payload]
        if missing:
            raise CheckpointError(f"{name} is missing {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in payload.items() if k in known}
        extra = {k: v for k, v in payload.items() if k not in known}
        config = values.get("config")
        if isinstance(config, str):
            try:
                values["config"] = json.loads(config) if config else {}
            except json.JSONDecodeError:
                raise CheckpointError(f"{name} holds a config that is not JSON") from None
        values["config"] = dict(values.get("config") or {})
        values["options"] = dict(values.get("options") or {})
        values["metrics"] = dict(values.get("metrics") or {})
        if "best_val_acc" in extra:  # written before metrics existed
            values["metrics"].setdefault("best_val_acc", extra.pop("best_val_acc"))
        values["num_classes"] = int(values["num_classes"])
        values["classes"] = list(values.get("classes") or [])
        return cls(**values, extra=extra)

    @property
    def best_val_acc(self) -> float | None:
        """The validation accuracy of these weights' epoch, when recorded."""
        return self.metrics.get("best_val_acc")


def is_checkpoint(payload: Any) -> bool:
    """Whether an already loaded object is a cnnviz checkpoint payload (vs a plain state_dict)."""
    return isinstance(payload, Mapping) and payload.get("format") == CHECKPOINT_FORMAT


def save_checkpoint(ckpt: Checkpoint | Mapping[str, Any], path: Path | str) -> Path:
    """Write ``ckpt`` to ``path`` atomically (a temp file in the same folder, fsync, then replace)."""
    if not isinstance(ckpt, Checkpoint):
        ckpt = Checkpoint.from_payload({"format": CHECKPOINT_FORMAT, **ckpt})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(ckpt.to_payload(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a cnnviz checkpoint safely (``weights_only=True``); anything else is a one-line CheckpointError."""
    path = Path(path).expanduser()
    try:
        state, meta = load_weights_file(path, what="checkpoint")
    except WeightsError as exc:
        raise CheckpointError(str(exc)) from None
    if not is_checkpoint(meta):
        found = meta.get("format")
        what = f"format {found!r}" if found is not None else f"a plain state_dict of {len(state)} tensors"
        raise CheckpointError(f"{path.name} is not a cnnviz checkpoint ({what}; expected {CHECKPOINT_FORMAT!r})")
    return Checkpoint.from_payload({**meta, "state_dict": state}, name=path.name)


def load_state_dict_file(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A plain weights file or checkpoint as ``(state_dict, metadata)``; wrappers and ``module.`` unwrapped."""
    return load_weights_file(path)


def build_model(ckpt: Checkpoint | Mapping[str, Any]) -> nn.Module:
    """The eval-mode model a checkpoint describes, with its weights loaded (probe checkpoints too)."""
    if not isinstance(ckpt, Checkpoint):
        ckpt = Checkpoint.from_payload(ckpt)
    try:
        if ckpt.mode == "probe":
            model = _probe_model(ckpt)
        else:
            model = get_model(ckpt.arch, num_classes=ckpt.num_classes, options=ckpt.options)
        model.load_state_dict(ckpt.state_dict)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the weights in this checkpoint do not fit {ckpt.arch} with options "
                              f"{ckpt.options} ({first[:200]})") from None
    return model.eval()


def _probe_model(ckpt: Checkpoint) -> ProbeModel:
    """The empty ProbeModel a probe checkpoint's layout describes (the backbone from the registry)."""
    if ckpt.probe_layer is None or ckpt.probe_features is None:
        raise KeyError("probe_layer and probe_features")
    backbone = None
    if ckpt.probe_layer != INPUT:
        backbone = get_model(ckpt.arch, num_classes=ckpt.num_classes, options=ckpt.options)
    return ProbeModel(backbone, ckpt.probe_layer, ckpt.probe_grid, int(ckpt.probe_features), ckpt.num_classes)
