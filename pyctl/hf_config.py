"""Read a Hugging Face model's sizing facts from disk: its config.json and, in a model directory, the
safetensors headers (which give the exact parameter count without reading the weights).

The arithmetic is in pyctl/core/sizing.py; this module only reads files.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

from pyctl.core.sizing import HfModel, shape_from_config
from pyctl.errors import PyctlError

CONFIG_FILE = "config.json"
_HEADER_LIMIT = 100 * 2**20  # a safetensors header larger than this is not one


@dataclass(frozen=True)
class LoadedModel:
    model: HfModel
    source: Path  # the config.json read
    params_counted: bool  # True: counted from safetensors headers; False: estimated from the config


def safetensors_params(path: Path) -> int:
    """Elements of every tensor in one .safetensors file, from its header (8-byte length + JSON)."""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its header length)")
        (length,) = struct.unpack("<Q", raw)
        if length > _HEADER_LIMIT:
            raise ValueError(f"{path}: not a safetensors file (header length {length})")
        header = json.loads(f.read(length))
    return sum(prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


def load_model(path: Path) -> LoadedModel:
    """A config.json, or a model directory holding one (and, optionally, its *.safetensors)."""
    config_path = path / CONFIG_FILE if path.is_dir() else path
    if not config_path.is_file():
        raise PyctlError(f"--config: {config_path}: no such file (a config.json or a model directory)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PyctlError(f"--config: {config_path}: not readable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise PyctlError(f"--config: {config_path}: not a JSON object")
    params = None
    weights = sorted(config_path.parent.glob("*.safetensors")) if path.is_dir() else []
    # Quantized checkpoints pack several weights per stored element: count those from the config.
    if weights and "quantization_config" not in config:
        try:
            params = float(sum(safetensors_params(w) for w in weights))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PyctlError(f"--config: {exc}") from None
    try:
        model = shape_from_config(config, params)
    except ValueError as exc:
        raise PyctlError(f"--config: {config_path}: {str(exc).removeprefix('config.json: ')}") from None
    return LoadedModel(model, config_path, params is not None)
