"""How a config key is declared, parsed and documented, once.

A key is one field of a settings dataclass (planning/config.py for the stack, planning/models.py for each entry
of `nim_models`):

    limit: int = key("gpu_limit", whole(1, 1024), 16, "Most GPUs all GPU nodes together may have ...")

The field's name is the typed attribute (`cfg.gpu.limit`); `key` holds what users type, how a raw value parses,
the default and the help text. From these declarations come the parsing (`parse_keys`), the typed object
(`build`), the error messages (`<key>: <value> is not valid; allowed: ...`) and the README tables
(`readme_table`). This module owns that mechanism and the generic value parsers (each raises `Bad`, saying what
is allowed); the keys themselves and the parsers only they use live with their settings.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator, get_type_hints

# dataclass field metadata: a key's declaration, or a nested settings group
KEY = "nim-on-eks/key"
GROUP = "nim-on-eks/group"


class Bad(ValueError):
    """A value that does not parse; the message says what is allowed."""


@dataclass(frozen=True)
class Key:
    """One config key: what users type, how its raw value parses and what it means."""

    name: str  # as users type it, e.g. gpu_limit (`pulumi config set gpu_limit 8`)
    parse: Callable[[Any], Any] | None  # raw value -> typed value, raising Bad; None: parsed in a later step
    default: Any  # the value when unset (None: none, or computed)
    help: str  # the README's "meaning" column
    shown_default: str | None = None  # the README's "default" column, when it is not the default itself
    required: str | None = None  # for a key that must be set: what to tell a user who has not set it
    secret: bool = False  # must be set with `pulumi config set --secret`

    def readme_default(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.required:
            return "(required, secret)" if self.secret else "(required)"
        if self.default is None:
            return "(none)"
        if isinstance(self.default, bool):
            text = str(self.default).lower()
        elif isinstance(self.default, (tuple, list, dict)):
            text = json.dumps(self.default if isinstance(self.default, dict) else list(self.default),
                              separators=(",", ":"))
        elif isinstance(self.default, float):
            text = f"{self.default:g}"
        else:
            text = str(self.default)
        return f"`{text}`"


def key(name: str, parse: Callable[[Any], Any] | None, default: Any, help: str, **more: Any) -> Any:
    """Declare a settings field as the config key `name` (see Key for `more`)."""
    return field(metadata={KEY: Key(name, parse, default, help, **more)})


def group() -> Any:
    """Declare a settings field as a nested group of keys (its type is the group's dataclass)."""
    return field(metadata={GROUP: True})


@dataclass(frozen=True)
class Secret:
    """A secret config value: kept for the program, never shown."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('[secret]')"


def keys_of(cls: type) -> Iterator[Key]:
    """Every key a settings dataclass declares, its groups' included, in declaration order."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        if KEY in f.metadata:
            yield f.metadata[KEY]
        elif GROUP in f.metadata:
            yield from keys_of(hints[f.name])


def build(cls: type, values: dict[str, Any], **computed: Any) -> Any:
    """The settings object: each key field from `values` (by key name), each group built alike, other fields
    from `computed`."""
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if KEY in f.metadata:
            kwargs[f.name] = values[f.metadata[KEY].name]
        elif GROUP in f.metadata:
            kwargs[f.name] = build(hints[f.name], values)
        else:
            kwargs[f.name] = computed[f.name]
    return cls(**kwargs)


def value_of(settings: Any, name: str) -> Any:
    """The typed value of the key `name` in a settings object, its groups searched."""
    for f in fields(settings):
        if KEY in f.metadata and f.metadata[KEY].name == name:
            return getattr(settings, f.name)
        if GROUP in f.metadata:
            try:
                return value_of(getattr(settings, f.name), name)
            except KeyError:
                continue
    raise KeyError(name)


def parse_keys(keys: Iterator[Key] | list[Key], given: dict[str, Any], secret: set[str], where: str,
               problems: list[str]) -> dict[str, Any]:
    """Parse each key's value in `given` (its default when unset); a problem per bad or missing value.

    A value that does not parse is left out of the result, so a later step can tell it from a default. `where`
    prefixes key names in messages (`nim_models[0].`, or "" for the stack's keys).
    """
    values: dict[str, Any] = {}
    for k in keys:
        name = where + k.name
        if k.name not in given or (k.required and given[k.name] in ("", None)):
            if k.required:
                problems.append(f"{name}: not set; {k.required}")
            else:
                values[k.name] = k.default
            continue
        value = given[k.name]
        if k.secret and k.name not in secret:
            problems.append(f"{name}: stored in clear text in the stack file; allowed: a secret, set with "
                            f"`pulumi config set --secret {k.name} ...`")
            continue
        if k.parse is None:
            values[k.name] = value
            continue
        try:  # surrounding blanks are dropped, except from a secret, which is used exactly as given
            values[k.name] = k.parse(value.strip() if isinstance(value, str) and not k.secret else value)
        except Bad as bad:
            problems.append(f"{name}: {show(value)} is not valid; {bad}")
    return values


def unknown_keys(given: dict[str, Any], known: list[str], where: str, allowed: str) -> list[str]:
    """A problem per key of `given` nobody declared, with the closest known one."""
    return [f"{where}{k}: unknown key{suggest(k, known)}; {allowed}" for k in given if k not in known]


def readme_table(cls: type, first_column: str) -> str:
    """The README table of a settings dataclass's keys: name, default, meaning."""
    lines = [f"| {first_column} | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{k.name}` | {k.readme_default()} | {k.help} |" for k in keys_of(cls)]
    return "\n".join(lines)


def show(value: Any) -> str:
    """A raw value as messages quote it: as typed, at most 80 characters."""
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def suggest(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------------------------------------- parsers


def boolean(raw: Any) -> bool:
    value = str(raw).strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise Bad("allowed: true or false")


def whole(lo: int, hi: int) -> Callable[[Any], int]:
    return _ranged(int, lo, hi, f"a whole number from {lo} to {hi}")


def number(lo: float, hi: float) -> Callable[[Any], float]:
    return _ranged(float, lo, hi, f"a number from {lo:g} to {hi:g}")


def _ranged(convert: Callable[[str], Any], lo: Any, hi: Any, what: str) -> Callable[[Any], Any]:
    """A number `convert` reads (not a boolean) from `lo` to `hi`; `what` says what is allowed."""

    def parse(raw: Any) -> Any:
        try:
            value = convert(str(raw).strip())
        except ValueError:
            value = None
        if isinstance(raw, bool) or value is None or not lo <= value <= hi:
            raise Bad(f"allowed: {what}")
        return value

    return parse


def whole_choice(options: tuple[int, ...]) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            value = None
        if value not in options:
            raise Bad(f"allowed: one of {', '.join(map(str, options))}")
        return value

    return parse


def matching(pattern: str | re.Pattern[str], what: str) -> Callable[[Any], str]:
    """A string that matches `pattern` whole; `what` says what is allowed."""
    compiled = re.compile(pattern)

    def parse(raw: Any) -> str:
        if not isinstance(raw, str) or not compiled.fullmatch(raw):
            raise Bad(f"allowed: {what}")
        return raw

    return parse


def one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str) or raw not in options:
            raise Bad(f"allowed: one of {', '.join(options)}")
        return raw

    return parse


def names(raw: Any) -> Any:
    """A JSON list, or comma-separated names, or one name, as a list (anything else as it came)."""
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw else []
        except json.JSONDecodeError:
            value = [part.strip() for part in raw.split(",") if part.strip()]
    else:
        value = raw
    return [value] if isinstance(value, str) else value


def distinct_list(options: tuple[str, ...], what: str) -> Callable[[Any], tuple[str, ...]]:
    """A JSON list (or comma-separated names) of distinct values from `options`."""

    def parse(raw: Any) -> tuple[str, ...]:
        value = names(raw)
        if (not isinstance(value, list) or not value or len(set(value)) != len(value)
                or not all(isinstance(v, str) and v in options for v in value)):
            raise Bad(f"allowed: a non-empty list of distinct {what} from {', '.join(options)}")
        return tuple(value)

    return parse

