"""The exception for bad input that a stage reports as one line, without a traceback."""


class UserError(Exception):
    """Bad input (a file, a value) that the user can fix; the message names it."""


class ConfigError(ValueError):
    """A config value that cannot work, found when the Snakefile reads the config; the message
    names the key."""
