"""The stages' command-line help: every option documented, with its default (torch-free)."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """argparse's own two formatters combined: the description keeps its line breaks and each
    option's help ends with its default, unless it is required (no default) or its help already
    says what it defaults to or when it is required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").lower()
        if action.required or "default" in text or "required" in text:
            return action.help or ""
        return super()._get_help_string(action)


def parser(description: str | None, **kwargs) -> argparse.ArgumentParser:
    """A stage's parser: its module docstring as description, help showing the defaults."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter,
                                   **kwargs)
