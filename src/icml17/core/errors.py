"""The one base class of every error a user can fix by changing a command, a file or a setting.

The CLI prints any :class:`UserError` as a single line (what is wrong and how to fix it) instead of a traceback;
everything else is a bug and keeps its traceback. Each layer subclasses it once: configs, checkpoints, run
directories, non-finite training, datasets.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a missing or damaged file, or an impossible setting; the message names the fix."""
