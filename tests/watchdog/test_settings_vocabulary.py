"""One settings vocabulary: env.yaml's `watchdog:` names, bounds and defaults (pyctl.spec) are the source;
the core table (`pyctl.core.idle.SETTINGS`), `Settings`, the `WATCHDOG_*` map and both Terraform modules'
`settings` objects, validations and function environments must say the same. Any drift fails here."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from typing import Any

import pytest

from pyctl import spec
from pyctl.core import idle
from pyctl.core.idle import SETTINGS, Settings
from tests.terraform.tfconfig import INFRA, load_module

MODULES = {"aws": INFRA / "modules" / "aws-gpu-watchdog", "gcp": INFRA / "modules" / "gcp-gpu-watchdog"}
HCL_DEFAULT = {"true": True, "false": False}


def spec_field(path: str) -> Any:
    """The pydantic field behind a `spec_path` (under `watchdog:`, or `env.` for the env's own fields)."""
    model: Any = spec.Watchdog
    parts = path.split(".")
    if parts[0] == "env":
        model, parts = spec.EnvSpec.model_fields["env"].annotation, parts[1:]
    for part in parts[:-1]:
        model = model.model_fields[part].annotation
    return model.model_fields[parts[-1]]


def bounds_of(field: Any) -> tuple[float | None, float | None, bool]:
    low = high = None
    exclusive = False
    for item in field.metadata:
        if getattr(item, "ge", None) is not None:
            low = item.ge
        if getattr(item, "gt", None) is not None:
            low, exclusive = item.gt, True
        if getattr(item, "le", None) is not None:
            high = item.le
    return low, high, exclusive


def test_settings_fields_are_the_table_in_order_with_its_defaults() -> None:
    fields = dataclasses.fields(Settings)
    assert [f.name for f in fields] == [s.name for s in SETTINGS]
    assert [f.default for f in fields] == [s.default for s in SETTINGS]
    assert Settings() == Settings(**{s.name: s.default for s in SETTINGS})


def test_environment_variables_are_the_names_upper_cased() -> None:
    assert {s.name: (f"WATCHDOG_{s.name.upper()}", s.kind) for s in SETTINGS} == idle.ENVIRONMENT


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.spec_path], ids=lambda s: s.name)
def test_the_spec_is_the_source_of_names_bounds_and_defaults(setting: idle.SettingSpec) -> None:
    assert setting.spec_path is not None
    field = spec_field(setting.spec_path)
    assert setting.spec_path.replace(".", "_").removeprefix("env_") in (setting.name, "protected")
    assert field.default == setting.default
    assert bounds_of(field) == (setting.minimum, setting.maximum, setting.exclusive_minimum)
    choices = (
        typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
    )
    assert tuple(choices) == setting.choices


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.minimum is not None], ids=lambda s: s.name)
def test_core_refuses_what_the_spec_refuses(setting: idle.SettingSpec) -> None:
    assert setting.minimum is not None
    below = (
        setting.minimum
        if setting.exclusive_minimum
        else setting.minimum - (1 if setting.kind == "int" else 0.01)
    )
    kind = int if setting.kind == "int" else float
    with pytest.raises(ValueError, match=setting.name):
        Settings(**{setting.name: kind(below)})
    if setting.maximum is not None:
        with pytest.raises(ValueError, match=setting.name):
            Settings(**{setting.name: kind(setting.maximum + 1)})


def test_idle_minutes_below_five_is_refused_as_in_the_spec_and_modules() -> None:
    with pytest.raises(ValueError, match="idle_minutes must be >= 5, got 2"):
        Settings(idle_minutes=2)
    assert Settings(idle_minutes=5).idle_minutes == 5


_OPTIONAL = re.compile(r"(\w+)\s*=\s*optional\((\w+),\s*([^)]+)\)")
_COMPARISON = re.compile(r"var\.settings\.(\w+)\s*(>=|>|<=|<)\s*(-?[\d.]+)")
_CONTAINS = re.compile(r"contains\(\[([^\]]*)\],\s*var\.settings\.(\w+)\)")


def module_settings(
    cloud: str,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, tuple[str, ...]]]:
    """(name -> default, name -> {op: bound}, name -> choices) of the module's `settings` variable."""
    variable = load_module(MODULES[cloud]).labelled("variable")["settings"]
    defaults: dict[str, Any] = {}
    for name, _kind, raw in _OPTIONAL.findall(variable["type"]):
        text = raw.strip()
        defaults[name] = HCL_DEFAULT.get(text, json.loads(text) if text[0] in '"-0123456789' else text)
    bounds: dict[str, dict[str, Any]] = {}
    choices: dict[str, tuple[str, ...]] = {}
    for validation in variable["validation"]:
        for name, op, value in _COMPARISON.findall(validation["condition"]):
            bounds.setdefault(name, {})[op] = float(value)
        for listed, name in _CONTAINS.findall(validation["condition"]):
            choices[name] = tuple(json.loads(f"[{listed}]"))
    return defaults, bounds, choices


@pytest.mark.parametrize("cloud", sorted(MODULES))
def test_each_module_settings_object_follows_the_table(cloud: str) -> None:
    table = [s for s in SETTINGS if cloud in s.modules]
    defaults, bounds, choices = module_settings(cloud)
    assert list(defaults) == [s.name for s in table]
    assert defaults == {s.name: s.default for s in table}
    expected_bounds = {}
    for s in table:
        wanted = {}
        if s.minimum is not None:
            wanted[">" if s.exclusive_minimum else ">="] = s.minimum
        if s.maximum is not None:
            wanted["<="] = s.maximum
        if wanted:
            expected_bounds[s.name] = wanted
    assert bounds == expected_bounds
    assert choices == {s.name: s.choices for s in table if s.choices}


@pytest.mark.parametrize("cloud", sorted(MODULES))
def test_each_module_writes_every_setting_under_its_variable(cloud: str) -> None:
    environment = json.dumps(load_module(MODULES[cloud]).locals()["environment"])
    for s in SETTINGS:
        pattern = rf'{s.env_var}"?\s*[:=]\s*"?[^,\n]*?var\.settings\.{s.name}\b'
        written = re.search(pattern, environment) is not None
        assert written == (cloud in s.modules), (cloud, s.name)


def test_rendered_watchdog_inputs_use_the_same_names() -> None:
    from pyctl.render import _watchdog
    from pyctl.spec import load_env

    loaded = load_env("prod").spec
    rendered = _watchdog(loaded)
    for s in SETTINGS:
        if s.spec_path is None or s.spec_path.startswith("env."):
            continue
        value: Any = loaded.watchdog
        for part in s.spec_path.split("."):
            value = getattr(value, part)
        if s.name == "warn_minutes" and not value:
            assert s.name not in rendered  # rendered only when set
            continue
        assert rendered[s.name] == value, s.name
