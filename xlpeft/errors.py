"""User-facing errors.

Every problem a user can fix (a typo in a language code, a missing data directory, a label word that
is not one token) raises :class:`XlpeftError` with a one-line message naming the problem *and* the fix.
The CLI prints that line and exits non-zero instead of showing a traceback.
"""


class XlpeftError(Exception):
    """A user-facing error: the message names the problem and the fix."""
