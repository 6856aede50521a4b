"""The stages' parsers: every option documented, with its default; the options declared in
pipeline.vocab.options built from their declaration and the config schema (torch-free)."""

from __future__ import annotations

import argparse

from pipeline.vocab.options import schema_entry


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """argparse's own two formatters combined: the description keeps its line breaks and each
    option's help ends with its default, unless it is required (no default) or its help already
    says what it defaults to, what unset (a config key's null) means or when it is required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").lower()
        if action.required or any(w in text for w in ("default", "required", "null:")):
            return action.help or ""
        return super()._get_help_string(action)


def parser(description: str | None, **kwargs) -> argparse.ArgumentParser:
    """A stage's parser: its module docstring as description, help showing the defaults."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter,
                                   **kwargs)


SCHEMA_TYPES = {"integer": int, "number": float}


def schema_settings(entry: dict) -> dict:
    """argparse settings of a config key's schema entry: its type and choices; required unless
    it may be null (then None means unset) or is a switch (store_true)."""
    types = entry.get("type", [])
    types = [types] if isinstance(types, str) else types
    choices = [v for v in entry.get("enum", []) if v is not None]
    nullable = "null" in types or None in entry.get("enum", [])
    if "boolean" in types:
        return {"action": "store_true"}
    out = {"required": True} if not nullable else {"default": None}
    if "array" in types:
        out["nargs"] = "+"
        items = entry["items"]
        types = ["integer"] if "$ref" in items else [items.get("type")]  # positive_int
    if choices:
        out["choices"] = choices
        if not isinstance(choices[0], str):
            out["type"] = type(choices[0])
    kind = next((SCHEMA_TYPES[t] for t in types if t in SCHEMA_TYPES), None)
    if kind:
        out["type"] = kind
    return out


def in_schema_range(kind, entry: dict):
    """A parser type: `kind` (int or float) of the text, within the schema entry's bounds
    (minimum, exclusiveMinimum, maximum, exclusiveMaximum), else argparse's usage error."""
    lo = entry.get("exclusiveMinimum", entry.get("minimum"))
    hi = entry.get("exclusiveMaximum", entry.get("maximum"))
    lo_open, hi_open = "exclusiveMinimum" in entry, "exclusiveMaximum" in entry
    interval = (f"{'(' if lo_open else '['}{'-inf' if lo is None else lo:g}, "
                f"{'inf' if hi is None else hi:g}{')' if hi_open or hi is None else ']'}")

    def parse(text: str):
        value = kind(text)
        if (lo is not None and (value <= lo if lo_open else value < lo)) or \
                (hi is not None and (value >= hi if hi_open else value > hi)):
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid float value" for a non-number
    return parse


def add_options(parser: argparse.ArgumentParser, declared) -> argparse.ArgumentParser:
    """The options of pipeline.vocab.options' declarations: a config key's type, choices and
    help (its schema description) from the schema, then the declaration's own settings."""
    for o in declared:
        if o.key is None:
            settings, help = {}, o.help
        else:
            entry = schema_entry(o.key)
            settings = schema_settings(entry)
            help = entry["description"] + (f"; {o.help}" if o.help else "")
            if o.in_range:
                settings["type"] = in_schema_range(settings["type"], entry)
        parser.add_argument(o.flag, **{**settings, "help": help, **o.argparse})
    return parser
