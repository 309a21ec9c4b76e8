"""The one base class of every error a user can fix by changing a command, a file or a setting.

The CLI prints any :class:`UserError` as a single line (what is wrong and how to fix it) instead of a traceback;
everything else is a bug and keeps its traceback. Each layer subclasses it once: configs, checkpoints, run
directories, non-finite training, datasets.

Library code speaks Python: a message names the function's parameters or the config's fields (``steps``,
``data_dir``, ``meta_batch``), never a command-line flag, and passes those names as ``param=``. The CLI, which
alone knows its flags, adds them when it reports the error (:func:`icml17.cli_args.describe`): ``steps`` becomes
``--steps``, a config field with no flag of its own becomes ``--set meta_batch=...``.
"""

from __future__ import annotations

from collections.abc import Sequence


class UserError(Exception):
    """Bad input, a missing or damaged file, or an impossible setting; the message names the fix.

    Args:
        *args: the message (one line: what is wrong, then how to fix it), as for any exception.
        param: the parameter or config field (or several) whose value is at fault, by its Python name; the CLI
            maps it to the flag that sets it.

    Examples:
        >>> e = UserError("steps must be >= 0, got -1", param="steps")
        >>> e.params
        ('steps',)
    """

    same_on_every_rank = (
        False  # True for errors every torchrun process raises alike (see :func:`icml17.cli_args.defer_to_rank0`)
    )

    def __init__(self, *args: object, param: str | Sequence[str] | None = None) -> None:
        super().__init__(*args)
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())
