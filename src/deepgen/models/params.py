"""Model hyper-parameters described and checked, generically, from what a model class declares.

A model class states the allowed values of its constructor's keyword parameters in
``param_constraints`` and their meaning in its ``__init__`` docstring::

    param_constraints = {"hidden": ">= 1", "alpha": "in [0, 0.5)", "order": ("natural", "random")}

    def __init__(self, spec, hidden: int = 64, alpha: float = 0.05, order: str = "random"):
        '''Build ...

        Args:
            hidden: units per hidden layer.  Further sentences are kept out of
                the one-line meaning (continuation lines are indented deeper).
        '''

A constraint is ``">= A"``, ``"> A"``, ``"<= A"``, ``"< A"``, ``"in [A, B]"`` (either bracket
open or closed: ``"in (0, 1]"``), or a tuple of allowed values.  A constraint that does not
parse is a bug in the model class (``ValueError`` naming the class), not a user error.

Pure Python (no torch): :func:`check_params` runs before a model is built, so a bad value is
one line naming the parameter, never an error from deep inside the constructor.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from deepgen.errors import ConfigError, unknown_name

_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf)"
_BOUND_RE = re.compile(rf"^(>=|>|<=|<)\s*({_NUMBER})$")
_RANGE_RE = re.compile(rf"^in\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])$")


@dataclass(frozen=True)
class Constraint:
    """Allowed values: a numeric interval ``[low, high]`` (each end open or closed) or a set of choices."""

    text: str  # as shown to users: ">= 1", "in [0, 1)", "one of: natural, random"
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = True
    high_open: bool = True
    choices: tuple | None = None

    @property
    def is_choice(self) -> bool:
        return self.choices is not None

    def allows(self, value: Any) -> bool:
        if self.choices is not None:
            return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


@lru_cache(maxsize=None)
def _parse_text(text: str) -> Constraint | None:
    t = " ".join(text.split())
    m = _BOUND_RE.match(t)
    if m:
        op, num = m.group(1), float(m.group(2))
        if op in (">=", ">"):
            return Constraint(f"{op} {m.group(2)}", low=num, low_open=op == ">")
        return Constraint(f"{op} {m.group(2)}", high=num, high_open=op == "<")
    m = _RANGE_RE.match(t)
    if m:
        lo, hi = float(m.group(2)), float(m.group(3))
        if lo > hi:
            return None
        return Constraint(f"in {m.group(1)}{m.group(2)}, {m.group(3)}{m.group(4)}", low=lo, high=hi,
                          low_open=m.group(1) == "(", high_open=m.group(4) == ")")
    return None


def parse_constraint(spec: Any, owner: str = "param_constraints") -> Constraint:
    """A constraint from its declaration (a string such as ``">= 1"`` or a tuple of choices).

    ``owner`` names where it was declared (e.g. ``"MADE.param_constraints['hidden']"``) for the
    ``ValueError`` raised when it does not parse.
    """
    if isinstance(spec, Constraint):
        return spec
    if isinstance(spec, (tuple, list, frozenset, set)) and spec:
        choices = tuple(spec) if isinstance(spec, (tuple, list)) else tuple(sorted(spec, key=str))
        return Constraint("one of: " + ", ".join(_show(c) for c in choices), choices=choices)
    if isinstance(spec, str):
        parsed = _parse_text(spec)
        if parsed is not None:
            return parsed
    raise ValueError(f"{owner}: cannot parse constraint {spec!r}; expected '>= A', '> A', '<= A', '< A', "
                     "'in [A, B]' (brackets open or closed) or a tuple of allowed values")


def class_constraints(cls) -> dict[str, Constraint]:
    """Every declared constraint of model class ``cls``, parsed; a malformed one, or one naming a
    parameter the constructor does not take, raises ``ValueError`` (a bug in the class)."""
    declared = dict(getattr(cls, "param_constraints", None) or {})
    names = set(signature_params(cls))
    out = {}
    for key, spec in declared.items():
        owner = f"{cls.__name__}.param_constraints[{key!r}]"
        if key not in names:
            raise ValueError(f"{owner}: '{key}' is not a parameter of {cls.__name__}.__init__")
        out[key] = parse_constraint(spec, owner)
    return out


def signature_params(cls) -> dict[str, inspect.Parameter]:
    """The constructor's keyword hyper-parameters (all but ``self``, ``spec``, ``*args``, ``**kwargs``)."""
    sig = inspect.signature(cls.__init__)
    return {k: p for k, p in sig.parameters.items()
            if k not in ("self", "spec") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _show(value: Any) -> str:
    """A value as a user would write it on the command line (YAML spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def show_value(value: Any) -> str:
    return _show(value)


def check_params(cls, model: str, params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Check user-given ``params`` of model ``model`` (class ``cls``): known names, the types of
    their defaults, and ``cls.param_constraints``.  Returns the params with numbers converted to
    their default's type (an int 3 for a float parameter becomes 3.0).  Raises ConfigError."""
    constraints = class_constraints(cls)
    out = dict(params)
    for key, value in params.items():
        if key not in defaults:
            raise unknown_name(f"parameter of model '{model}'", key, defaults)
        what = f"model parameter '{key}' of {model}"
        default, given = defaults[key], value
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{what} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{what} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{what} must be a finite number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise ConfigError(f"{what} must be an integer, got {value!r}")
            value = type(default)(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{what} must be a string, got {value!r}")
        out[key] = value
        c = constraints.get(key)
        if c is None or c.allows(value) or (value is None and default is None):
            continue
        if c.is_choice:
            shown = [_show(x) for x in c.choices]
            raise unknown_name(f"value of {what}:", _show(given), shown)
        raise ConfigError(f"{what} must be {c.text}, got {_show(given)}")
    return out


# --- docstrings -----------------------------------------------------------------
_SECTION_RE = re.compile(r"^(Args|Arguments|Parameters|Keyword Args|Keyword Arguments)\s*:\s*$")
_ANY_SECTION_RE = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")
_ENTRY_RE = re.compile(r"^\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_args_section(doc: str | None) -> dict[str, str]:
    """``{name: text}`` from the ``Args:`` section of a Google-style docstring ({} if none).

    An entry is ``name: text`` (or ``name (type): text``) at the section's entry indentation;
    deeper-indented lines continue it (joined with single spaces); the section ends at a line
    indented no deeper than ``Args:`` or at the next ``Section:`` header.
    """
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    i = 0
    while i < len(lines) and not _SECTION_RE.match(lines[i].strip()):
        i += 1
    if i == len(lines):
        return {}
    header_indent = len(lines[i]) - len(lines[i].lstrip())
    entry_indent = None
    current = None
    for line in lines[i + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent <= header_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        if indent <= entry_indent:
            m = _ENTRY_RE.match(text)
            if m is None:
                if _ANY_SECTION_RE.match(text):
                    break
                current = None
                continue
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current is not None:
            out[current] = f"{out[current]} {text}".strip()
    return out


def first_sentence(text: str) -> str:
    """The one-line meaning of an entry: its text up to the first sentence end ('. ')."""
    text = " ".join(text.split())
    m = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)\.\s", text + " ")
    return text[: m.start()] if m else text


def param_meanings(cls) -> dict[str, str]:
    """``{param: one-line meaning}`` from ``cls.__init__``'s docstring ``Args:`` section, falling back to
    the class docstring's (a parameter with no entry is absent)."""
    own = parse_args_section(getattr(cls.__init__, "__doc__", None))
    fallback = parse_args_section(cls.__doc__)
    return {k: first_sentence(v) for k, v in {**fallback, **own}.items()}


def _annotation(p: inspect.Parameter) -> str:
    ann = p.annotation
    if ann is inspect.Parameter.empty:
        return type(p.default).__name__ if p.default is not inspect.Parameter.empty and p.default is not None else ""
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def describe_params(cls) -> list[dict[str, Any]]:
    """One dict per constructor hyper-parameter: name, type, default, constraint (text, "" if none),
    meaning (one line from the docstring, "" if undocumented)."""
    constraints = class_constraints(cls)
    meanings = param_meanings(cls)
    rows = []
    for name, p in signature_params(cls).items():
        c = constraints.get(name)
        rows.append({
            "name": name,
            "type": _annotation(p),
            "default": None if p.default is inspect.Parameter.empty else p.default,
            "constraint": c.text if c is not None else "",
            "meaning": meanings.get(name, ""),
        })
    return rows
