"""Griffe extension: Sphinx cross-reference roles in docstrings (:func:`adapt`, :class:`~a.b.C`) shown as code.

The package's docstrings name related objects the Sphinx way; mkdocstrings renders Markdown, where the role would
show literally. The target is kept as inline code (``~`` shortens it to its last part, as in Sphinx).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|obj|exc|const):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # every module, class, function, attribute
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
