"""The `odradek` command line: a thin front end that parses flags, calls into odradek, prints.

Talks to running brokers only through `odradek.client`. A user's mistake becomes one line
on stderr and exit code 2 (raise `UsageError`), never a traceback.
"""


class UsageError(Exception):
    """A mistake on the command line or in the config; `odradek.cli.main` prints it as
    `odradek: <message>` and exits 2."""
