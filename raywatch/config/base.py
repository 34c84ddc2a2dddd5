"""The building blocks of the schema: errors, durations, secrets, plain data, YAML.

Every model forbids unknown keys (:class:`StrictModel`), so a typo is an error rather than a
silently ignored setting. :func:`validate` turns pydantic's validation errors into a
:class:`ConfigError` whose lines name the file, the field path and what was expected, e.g.::

    monitor.yaml: alerting.rules[0].for: expected a duration such as '30s' or '5m', got 'soon'

Secrets (webhook URLs, API keys, tokens) are :class:`pydantic.SecretStr`; a value of the
form ``${ENV_VAR}`` is read from the environment when the config is loaded, so YAML files
can be committed without secrets in them. A secret remembers its reference, so a config is
written out (:func:`to_data`) with its references, never with the resolved value.

No error repeats a secret: a wrong value given to a secret field (a number, a list, a
mapping, a string where a mapping of secrets is expected, a malformed ``${...}``, an unset
variable) is reported by its field path and type only (:func:`_problems`), and pydantic's own
messages leave every input out (``hide_input_in_errors`` on every model), so neither
:class:`ConfigError` nor a raw :class:`pydantic.ValidationError` carries one.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple, Union, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WrapValidator,
)

__all__ = [
    "ConfigError",
    "parse_duration",
    "Duration",
    "PositiveDuration",
    "MASK",
    "EnvSecret",
    "Secret",
    "env_references",
    "secret_text",
    "has_masked_secrets",
    "secret_values",
    "deep_merge",
    "import_path_of",
    "to_data",
    "StrictModel",
    "ImportPath",
    "validate",
    "read_yaml",
]


class ConfigError(ValueError):
    """A configuration could not be loaded; ``str(err)`` has one line per problem."""

    def __init__(self, problems: List[str], source: Optional[str] = None):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- durations

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``1.5``, ``'250ms'``, ``'30s'``, ``'5m'``, ``'2h'`` or ``'1d'``.

    Milliseconds are divided by 1000 rather than multiplied by 0.001, so that ``'1001ms'``
    is the float nearest to 1.001 s and is written back as ``1s1ms`` exactly.

    >>> parse_duration("5m"), parse_duration("250ms"), parse_duration(3), parse_duration("1001ms")
    (300.0, 0.25, 3.0, 1.001)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s' or '5m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"expected a duration such as '30s' or '5m', got {value!r}")
        number = float(m.group(1))
        seconds = number / 1000 if m.group(2) == "ms" else number * _UNITS[m.group(2)]
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"expected a non-negative duration, got {value!r}")
    return seconds


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("expected a positive duration such as '30s' or '5m'")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written as a number or as ``'250ms'``, ``'30s'``, ``'5m'``, ``'2h'``, ``'1d'``."""
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A :data:`Duration` that must be more than zero."""


# --------------------------------------------------------------------------- secrets

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "**********"
"""What a secret becomes when it is written out and has no ``${ENV}`` reference (pydantic's mask)."""


class EnvSecret(SecretStr):
    """A :class:`~pydantic.SecretStr` that remembers the ``${ENV_VAR}`` text it was resolved
    from (``reference``), so that a configuration is stored and shown with its references and
    resolved again when it is loaded: a resolved secret is never written out."""

    __slots__ = ("reference",)

    def __init__(self, secret_value: str, reference: Optional[str] = None):
        super().__init__(secret_value)
        self.reference = reference

    def __reduce__(self):  # pickles (Ray's transport between processes) keep the reference
        return (EnvSecret, (self.get_secret_value(), self.reference))


def env_references(text: str) -> List[str]:
    """The environment variables a ``${VAR}`` text refers to.

    >>> env_references("https://hooks.example/${TEAM}/${TOKEN}")
    ['TEAM', 'TOKEN']
    """
    return _ENV_RE.findall(text)


_BAD_REF_RE = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*\})")


def _secret(value: Any, handler: Any, info: ValidationInfo) -> SecretStr:
    """Validate a secret: ``${VAR}`` references are resolved from the environment (unset
    variables are collected in the validation context's ``unset_env`` set when it has one,
    else an error). The error never repeats the value."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        if "${" not in value:
            return EnvSecret(value)
        if _BAD_REF_RE.search(value):
            raise ValueError("a ${...} reference must name an environment variable: letters, digits and '_', "
                             "such as ${SLACK_WEBHOOK_URL} (the value is not shown: it is a secret)")
        unset = (info.context or {}).get("unset_env") if info is not None else None

        def sub(m: "re.Match[str]") -> str:
            name = m.group(1)
            if name not in os.environ:
                if unset is not None:
                    unset.add(name)
                    return ""
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]

        return EnvSecret(_ENV_RE.sub(sub, value), value)
    raise ValueError(f"expected a string (a secret, or a ${{ENV_VAR}} reference), got {_a(type(value).__name__)}")


def _a(noun: str) -> str:
    """``"an int"``, ``"a list"``."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


Secret = Annotated[SecretStr, WrapValidator(_secret)]
"""A secret string; ``${ENV_VAR}`` references are resolved at load time and remembered."""


def secret_text(value: SecretStr) -> str:
    """How a secret is written out: its ``${ENV}`` reference, or the mask.

    >>> secret_text(EnvSecret("s3cr3t", "${TOKEN}")), secret_text(SecretStr("s3cr3t"))
    ('${TOKEN}', '**********')
    """
    ref = getattr(value, "reference", None)
    return ref if ref else MASK


def _secrets(obj: Any) -> Iterator[SecretStr]:
    """Every secret in a config (or part of one), depth first."""
    if isinstance(obj, SecretStr):
        yield obj
    elif isinstance(obj, BaseModel):
        for f in type(obj).model_fields:
            yield from _secrets(getattr(obj, f))
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _secrets(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _secrets(v)


def has_masked_secrets(obj: Any) -> bool:
    """Whether a config (or part of one) holds a secret whose value is the mask: it was
    written out without an ``${ENV}`` reference and read back, so its value is lost."""
    return any(s.get_secret_value() == MASK for s in _secrets(obj))


def secret_values(obj: Any) -> List[str]:
    """Every resolved secret value in a config (for redaction)."""
    return [v for v in (s.get_secret_value() for s in _secrets(obj)) if v and v != MASK]


# --------------------------------------------------------------------------- plain data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Dict[str, Any]:
    """``base`` with ``override`` merged in, recursively for nested mappings.

    >>> deep_merge({"capture": {"sample_rate": 1.0, "methods": ["__call__"]}}, {"capture": {"sample_rate": 0.1}})
    {'capture': {'sample_rate': 0.1, 'methods': ['__call__']}}
    """
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def import_path_of(fn: Any) -> str:
    """``"module:qualname"`` of a callable (how a callable setting is written out)."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def to_data(obj: Any) -> Any:
    """A config model as plain JSON-able data that validates back into the same model:
    field aliases as keys, secrets as their ``${ENV}`` reference (or the mask), datetimes as
    ISO text, callables as import paths, and no field derived from another (a rule's
    ``metric``/``op``/``threshold``/``matchers`` when it has ``expr``)."""
    if isinstance(obj, SecretStr):
        return secret_text(obj)
    if isinstance(obj, BaseModel):
        derived = getattr(obj, "_derived_fields", lambda: ())()
        out: Dict[str, Any] = {}
        for name, field in type(obj).model_fields.items():
            if name in derived:
                continue
            out[field.alias or name] = to_data(getattr(obj, name))
        return out
    if isinstance(obj, Mapping):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if callable(obj):
        return import_path_of(obj)
    return obj


class StrictModel(BaseModel):
    # hide_input_in_errors: a raw ValidationError (model_validate from Python) never repeats a
    # value, which may be a secret; ConfigError adds "got ..." back where no secret can be
    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """A model pickled by an older raywatch (a schema-1 state file being migrated) lacks
        the fields added since: they get their defaults, as a config written without them
        would."""
        super().__setstate__(state)
        values = self.__dict__
        for name, field in type(self).model_fields.items():
            if name not in values and not field.is_required():
                values[name] = field.get_default(call_default_factory=True)

    def __setstate__(self, state: Dict[Any, Any]) -> None:
        # a settings object pickled by an older raywatch (a schema-1 state file) lacks the
        # settings added since: they take their defaults
        super().__setstate__(state)
        for name, f in type(self).model_fields.items():
            if name not in self.__dict__:
                self.__dict__[name] = f.get_default(call_default_factory=True)


def _check_import_path(value: Any) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, str) and re.match(r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$", value):
        return value
    raise ValueError(f"expected an import path such as 'my_pkg.features:extract' or a callable, got {value!r}")


ImportPath = Annotated[Any, BeforeValidator(_check_import_path)]
"""``"module:attribute"`` (or ``"module.attribute"``), resolved in the replica; a callable in Python."""


# --------------------------------------------------------------------------- errors and YAML


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _holds_secret(tp: Any, seen: Set[Any]) -> bool:
    """Whether a type annotation can hold a secret (a SecretStr, or a model with one)."""
    if isinstance(tp, type):
        if issubclass(tp, SecretStr):
            return True
        if issubclass(tp, BaseModel):
            if tp in seen:
                return False
            seen.add(tp)
            return any(_holds_secret(f.annotation, seen) for f in tp.model_fields.values())
    return any(_holds_secret(a, seen) for a in get_args(tp) if not isinstance(a, (str, int, float)) or a is None)


def _walk_models(root: type) -> Iterator[type]:
    todo, seen = [root], set()
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
                yield sub


@functools.lru_cache(maxsize=1)
def _secret_field_names() -> Tuple[Set[str], Set[str]]:
    """(names of secret fields, names of fields that hold secret-bearing models), by name and
    alias, over every model of the schema. Errors located at or under a secret field, or on
    a secret-bearing item itself (a sink given as a string), never show their input."""
    secret: Set[str] = set()
    holders: Set[str] = set()
    for model in _walk_models(StrictModel):
        for name, f in model.model_fields.items():
            names = {name} | ({f.alias} if f.alias else set())
            if _holds_secret(f.annotation, set()):
                inner = [a for a in _flatten(f.annotation) if isinstance(a, type) and issubclass(a, SecretStr)]
                (secret if inner else holders).update(names)
    return secret, holders


def _flatten(tp: Any) -> Iterator[Any]:
    """The types inside an annotation, models not entered (Optional, List, Dict, Annotated)."""
    yield tp
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return
    for a in get_args(tp):
        yield from _flatten(a)


def _hides_input(loc: tuple) -> bool:
    secret, holders = _secret_field_names()
    fields = [(i, p) for i, p in enumerate(loc) if isinstance(p, str) and not p.startswith("[")
              and not p.startswith("function-")]
    if any(p in secret for _, p in fields):
        return True
    if fields and fields[-1][1] in holders:
        # the item itself is wrong (e.g. a sink given as a string): it may be a pasted secret
        return all(isinstance(p, int) or str(p).startswith("[") for p in loc[fields[-1][0] + 1:])
    return False


def _problems(err: ValidationError, source: Optional[str]) -> List[str]:
    """One line per validation error: ``source: field.path[0]: what was expected``. The one
    formatter of validation errors (for YAML files, Python mappings and builder args). An
    error at a secret field (or on an item that holds secrets) never shows its input."""
    prefix = f"{source}: " if source else ""
    lines = []
    for e in err.errors(include_url=False):
        # drop pydantic's tagged-union / function-wrapper noise from the location
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the YAML reference in the README)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif "input" in e and e["type"] not in ("value_error",):
            inp = e["input"]
            if isinstance(inp, (dict, list)):
                pass
            elif _hides_input(tuple(e["loc"])):
                msg = f"{msg}, got {_a(type(inp).__name__)} (not shown: this field holds a secret)"
            else:
                msg = f"{msg}, got {inp!r}"
        lines.append(f"{prefix}{_loc(loc)}: {msg}")
    return lines


def validate(model: type, data: Any, source: Optional[str] = None, *, unset_env: Optional[Set[str]] = None) -> Any:
    """``data`` (a mapping from YAML, JSON or Python) validated into ``model``; a
    :class:`ConfigError` naming ``source`` and each field path otherwise.

    With ``unset_env`` (a set), ``${VAR}`` references to unset variables are not errors:
    their names are added to the set and the secret is left empty.
    """
    if isinstance(data, model):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{source or 'config'}: expected a mapping at the top level, got {type(data).__name__}"], source)
    try:
        return model.model_validate(dict(data), context={"unset_env": unset_env} if unset_env is not None else None)
    except ValidationError as err:
        raise ConfigError(_problems(err, source), source) from None


def read_yaml(path: Union[str, Path]) -> Any:
    """The data of a YAML file; a ConfigError naming the file (and line) when it cannot be
    read or parsed. Every YAML raywatch reads goes through here."""
    source = str(path)
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the file: {exc.strerror or exc}"], source) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"], source) from None
