"""Where option values come from besides the command line: `HMR_SERVE_*` environment variables
and the `[tool.hmr-serve]` table of `pyproject.toml` in the current directory. Precedence:
command line > environment > pyproject.toml > built-in default. Keys are flag names, with
dashes or underscores (`reload-dir`, `reload_dir`, `HMR_SERVE_RELOAD_DIR`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

ENV_PREFIX = "HMR_SERVE_"
# Set by hmr-serve itself for the process that replaces it on a restart; not an option.
INTERNAL_ENV = {"HMR_SERVE_INHERITED_FD"}
_BOOL_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SourceError(ValueError):
    """A key or value in the environment or pyproject.toml that hmr-serve cannot use."""


def read_pyproject(path: str = "pyproject.toml") -> dict[str, Any]:
    """The `[tool.hmr-serve]` table (`[tool.hmr_serve]` works too), or {} without one."""
    if not os.path.isfile(path):
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        try:
            import tomli as tomllib
        except ImportError:
            raise SourceError(
                f"{path}: reading it on Python 3.10 needs `pip install tomli`"
            ) from None
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SourceError(f"{path}: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("hmr-serve", tool.get("hmr_serve", {}))
    if not isinstance(table, dict):
        raise SourceError(f"{path}: [tool.hmr-serve] must be a table")
    return table


def read_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name[len(ENV_PREFIX) :]: value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name not in INTERNAL_ENV
    }


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every long option by its name without dashes (`reload-dir`), positive forms only."""
    options = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        for option in action.option_strings:
            if option.startswith("--") and not option.startswith("--no-"):
                options[option[2:]] = action
    return options


def parse_bool(text: str) -> bool:
    """An option's true/false value as uvicorn's (click's) boolean options take it
    (`--ws-per-message-deflate false`)."""
    word = text.strip().lower()
    if word in _TRUE | {"t", "y"}:
        return True
    if word in (_FALSE - {""}) | {"f", "n"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise SourceError(f"{where}: expected true or false, got {value!r}")


def _as_value(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, (list, dict)) or (isinstance(value, bool) and action.type is not None):
        raise SourceError(f"{where}: expected a single value, got {value!r}")
    text = value if isinstance(value, str) else str(value)
    converted: Any = text
    if action.type is not None:
        try:
            converted = action.type(text)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise SourceError(f"{where}: invalid value {value!r} ({exc})") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise SourceError(f"{where}: {value!r} is not one of {choices}")
    return converted


def _coerce(action: argparse.Action, value: Any, where: str, from_env: bool) -> Any:
    if (
        isinstance(action, _BOOL_ACTIONS)
        or isinstance(action, argparse.BooleanOptionalAction)
        or action.type is parse_bool
    ):
        flag = _as_bool(value, where)
        if isinstance(action, argparse._StoreFalseAction):
            return not flag
        return flag
    if isinstance(action, argparse._AppendAction):
        if from_env:
            items: list[Any] = [item for item in value.split(",") if item.strip()]
        elif isinstance(value, list):
            items = value
        else:
            items = [value]
        return [_as_value(action, item, where) for item in items]
    return _as_value(action, value, where)


def collect(
    parser: argparse.ArgumentParser,
    pyproject: Mapping[str, Any],
    env: Mapping[str, str],
    pyproject_path: str = "pyproject.toml",
) -> dict[str, Any]:
    """Option values by `dest`, environment over pyproject.toml. Raises SourceError naming the
    key for an unknown option or a bad value."""
    options = _options(parser)
    values: dict[str, Any] = {}
    sources = [
        (pyproject, lambda key: f"{pyproject_path} [tool.hmr-serve] {key}", False),
        (env, lambda key: f"environment variable {ENV_PREFIX}{key}", True),
    ]
    for table, describe, from_env in sources:
        for key, value in table.items():
            action = options.get(key.lower().replace("_", "-"))
            if action is None:
                raise SourceError(
                    f"{describe(key)}: unknown option; known: {', '.join(sorted(options))}"
                )
            values[action.dest] = _coerce(action, value, describe(key), from_env)
    return values


class Unset:
    """Marks a dest the command line did not give."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET = Unset()


def blank_namespace(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """A namespace in which every option starts unset, so after parsing, what is not UNSET
    (or None for repeatable options) came from the command line."""
    namespace = argparse.Namespace()
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            unset = None if isinstance(action, argparse._AppendAction) else UNSET
            setattr(namespace, action.dest, unset)
    return namespace


def merge(
    parser: argparse.ArgumentParser, given: argparse.Namespace, defaults: Mapping[str, Any]
) -> argparse.Namespace:
    """Command line > `defaults` (from collect) > the parser's built-in defaults."""
    merged = argparse.Namespace(**vars(given))
    for action in parser._actions:
        dest = action.dest
        if not action.option_strings or dest in ("help", "version"):
            continue
        value = getattr(given, dest, UNSET)
        if value is UNSET or value is None and isinstance(action, argparse._AppendAction):
            if dest in defaults:
                value = defaults[dest]
            else:
                value = action.default
                if isinstance(value, list):
                    value = list(value)
        setattr(merged, dest, value)
    return merged
