"""Every public name of the library's packages is documented: a docstring, and every parameter named in it.

The public names are each package's ``__all__`` (every package listed here must define one). For each exported
function, class, and public method or property of an exported class (also those it inherits from a class of
this project), the docstring must exist and its Google-style ``Args:`` section must name every parameter of
``inspect.signature``. For a dataclass, ``Attributes:`` names the fields; an ``__init__``'s own docstring counts
for its class; a method that overrides a documented method of a project class inherits its docstring, as
``help()`` shows it. ``self`` and ``cls`` are never listed; ``*args`` and ``**kwargs`` are, as ``*args:`` or
``args:``, because a reader cannot guess what they are for. Exported constants (tuples, dicts, type aliases)
carry no docstring of their own, so their package's docstring must mention them.

This is a floor, not a style guide: what the text says is reviewed by people; what is checked here is that
nothing a caller passes goes unexplained.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Iterator

import pytest

PACKAGES = (
    "icml17.maml",
    "icml17.maml.rl",
    "icml17.pixelcnn",
    "icml17.pixelcnn.video",
    "icml17.sharpness",
    "icml17.core",
    "icml17.core.curvature",
)
ARG_SECTIONS = (
    "Args",
    "Arguments",
    "Parameters",
    "Attributes",
    "Keyword Args",
    "Keyword Arguments",
    "Other Parameters",
)


def _exported() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", ()):
            yield package, name


def _params() -> list:
    return [pytest.param(package, name, id=f"{package}.{name}") for package, name in _exported()]


def parse_sections(doc: str) -> tuple[dict[str, list[tuple[str, bool]]], list[str]]:
    """The entries of a Google-style docstring's sections, and its malformed Args-like lines.

    Returns ``({section: [(name, has_type)]}, malformed)``: for Args-like sections each entry's name (leading ``*``
    dropped) and whether it gives a type in parentheses; other sections are listed with no entries. A line at an
    Args section's entry indentation that is not ``name: text`` or ``name (type): text`` is malformed (the
    documentation builder cannot read it either).
    """
    lines = inspect.cleandoc(doc).splitlines()
    sections: dict[str, list[tuple[str, bool]]] = {}
    malformed: list[str] = []
    i = 0
    while i < len(lines):
        header = re.fullmatch(r"(\s*)([A-Z][\w ]*):\s*", lines[i])
        if not header:
            i += 1
            continue
        title = header.group(2)
        entries = sections.setdefault(title, [])
        base = len(header.group(1))
        entry_indent = None
        i += 1
        while i < len(lines):
            line = lines[i]
            if line.strip():
                indent = len(line) - len(line.lstrip())
                if indent <= base:
                    break
                entry_indent = indent if entry_indent is None else entry_indent
                if indent == entry_indent and title in ARG_SECTIONS:
                    m = re.match(r"\s*\*{0,2}([A-Za-z_]\w*)\s*(\([^)]*\))?\s*:(\s|$)", line)
                    if m:
                        entries.append((m.group(1), m.group(2) is not None))
                    else:
                        malformed.append(line.strip())
            i += 1
    return sections, malformed


def documented_names(doc: str) -> set[str]:
    """The parameter names listed in the Args-like sections of a Google-style docstring (leading ``*`` dropped)."""
    sections, _ = parse_sections(doc)
    return {name for title, entries in sections.items() if title in ARG_SECTIONS for name, _ in entries}


def _readable(label: str, doc: str, sig: inspect.Signature | None, problems: list[str], returns: bool = True) -> None:
    """What the documentation builder (griffe, run with warnings as errors) would refuse: malformed entries,
    documented parameters the signature lacks, parameters without a type anywhere, a Returns section without a
    return annotation."""
    sections, malformed = parse_sections(doc)
    if malformed:
        problems.append(f"{label}: Args lines that are not 'name: description': {malformed}")
    if sig is None:
        return
    params = sig.parameters
    for title in ("Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments"):
        for name, typed in sections.get(title, []):
            if name not in params:
                problems.append(f"{label}: documents a parameter {name!r} that its signature does not have")
            elif not typed and params[name].annotation is inspect.Parameter.empty:
                problems.append(f"{label}: parameter {name!r} has no annotation (nor a type in its docstring)")
    if returns and "Returns" in sections and sig.return_annotation is inspect.Signature.empty:
        problems.append(f"{label}: a Returns section without a return annotation")


def _own_doc(obj) -> str | None:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
        return None  # the signature dataclasses write when the class has no docstring
    return doc if doc and doc.strip() else None


def _required(sig: inspect.Signature, skip_first: bool) -> list[str]:
    params = list(sig.parameters.values())
    if skip_first and params and params[0].name in ("self", "cls"):
        params = params[1:]
    return [p.name for p in params if p.name not in ("self", "cls")]


def _check_callable(label: str, fn, doc: str | None, skip_first: bool, problems: list[str]) -> None:
    if doc is None:
        problems.append(f"{label}: no docstring")
        return
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    missing = [n for n in _required(sig, skip_first) if n not in documented_names(doc)]
    if missing:
        problems.append(f"{label}: parameters {missing} are not named in its Args section")
    _readable(label, doc, sig, problems)


def _project_classes(cls: type) -> list[type]:
    return [c for c in cls.__mro__ if c.__module__.startswith("icml17")]


def _check_class(label: str, cls: type, problems: list[str]) -> None:
    doc = _own_doc(cls)
    if doc is None:
        problems.append(f"{label}: no docstring")
        return
    # the constructor's parameters, where a class of this project defines the constructor
    owner = next(
        (c for c in cls.__mro__ if c is not object and ("__init__" in c.__dict__ or "__new__" in c.__dict__)), None
    )
    is_protocol = getattr(cls, "_is_protocol", False)  # an interface: never constructed by a caller
    if owner is not None and owner.__module__.startswith("icml17") and not is_protocol:
        init = owner.__dict__.get("__init__")
        init_doc = _own_doc(init) if init is not None and not dataclasses.is_dataclass(owner) else None
        try:
            sig = inspect.signature(cls)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            documented = documented_names(doc) | documented_names(init_doc or "")
            if owner is not cls:  # an inherited constructor may be documented where it is defined
                documented |= documented_names(_own_doc(owner) or "")
            missing = [n for n in _required(sig, False) if n not in documented]
            if missing:
                problems.append(
                    f"{label}: constructor parameters {missing} are not named in an Args (or, for a "
                    f"dataclass, Attributes) section"
                )
            _readable(label, doc, sig, problems, returns=False)
    seen: set[str] = set()
    for c in _project_classes(cls):
        for name, attr in c.__dict__.items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            where = f"{label}.{name}"
            if isinstance(attr, property):
                if _own_doc(attr.fget) is None:
                    problems.append(f"{where}: property without a docstring")
            elif isinstance(attr, (staticmethod, classmethod)):
                _check_callable(
                    where,
                    attr.__func__,
                    _inherited_doc(cls, name, attr.__func__),
                    isinstance(attr, classmethod),
                    problems,
                )
            elif inspect.isfunction(attr):
                _check_callable(where, attr, _inherited_doc(cls, name, attr), True, problems)


def _inherited_doc(cls: type, name: str, fn) -> str | None:
    """``fn``'s docstring, or where it overrides a documented method of a project class, that one's (as
    ``help()`` shows it)."""
    doc = _own_doc(fn)
    for base in _project_classes(cls):
        if doc is not None:
            break
        attr = base.__dict__.get(name)
        attr = getattr(attr, "__func__", attr)
        if attr is not None and inspect.isfunction(attr):
            doc = _own_doc(attr)
    return doc


def check_name(package: str, name: str) -> list[str]:
    """What is missing from the documentation of ``package.name`` (empty when nothing is)."""
    module = importlib.import_module(package)
    obj = getattr(module, name)
    label = f"{package}.{name}"
    problems: list[str] = []
    if inspect.isclass(obj):
        _check_class(label, obj, problems)
    elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
        _check_callable(label, obj, _own_doc(obj), False, problems)
    elif name not in (module.__doc__ or ""):  # a constant or a type alias: its package says what it is
        problems.append(f"{label}: a constant that its package's docstring does not mention")
    return problems


def test_every_package_defines_all():
    for package in PACKAGES:
        module = importlib.import_module(package)
        assert hasattr(module, "__all__"), f"{package} defines no __all__: list its public names"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{package}.__all__ names {missing}, which it does not define"
        assert module.__doc__ and module.__doc__.strip(), f"{package} has no docstring"
        # where a package says which submodule defines each name (the API reference renders it there), it is so
        exports = getattr(module, "_EXPORTS", None)
        assert exports is None or set(exports) == set(module.__all__), f"{package}: _EXPORTS and __all__ differ"
        for name, sub in (exports or {}).items():
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__module__ == f"{package}.{sub}", f"{package}.{name} is defined in {obj.__module__}"
            else:
                assert hasattr(importlib.import_module(f"{package}.{sub}"), name), f"{package}.{sub} lacks {name}"


@pytest.mark.parametrize(("package", "name"), _params())
def test_public_name_is_documented(package: str, name: str):
    problems = check_name(package, name)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------ the checker
def test_checker_reads_google_args_and_finds_what_is_missing():
    def documented(a: int, *rest: int, key: int = 1, **extra: int) -> None:
        """Summary.

        Args:
            a: the first; a long description
                that continues here: with a colon.
            *rest: more.
            key (int): a keyword.
            **extra: the remainder.

        Returns:
            nothing: not a parameter.
        """

    def undocumented(a: int, b: int) -> None:
        """Summary.

        Args:
            a: only this one.
        """

    assert documented_names(documented.__doc__) == {"a", "rest", "key", "extra"}
    problems: list[str] = []
    _check_callable("documented", documented, documented.__doc__, False, problems)
    _check_callable("undocumented", undocumented, undocumented.__doc__, False, problems)
    _check_callable("bare", print, None, False, problems)
    assert problems == ["undocumented: parameters ['b'] are not named in its Args section", "bare: no docstring"]


def test_checker_finds_what_the_documentation_builder_refuses():
    def unannotated(a, b: int) -> None:
        """Summary.

        Args:
            a: no annotation and no type.
            b: fine.
            c: not a parameter.
            a bad line
        """

    def no_return_annotation(a: int):
        """Summary.

        Args:
            a (int): typed in the docstring.

        Returns:
            something.
        """

    problems: list[str] = []
    _check_callable("f", unannotated, unannotated.__doc__, False, problems)
    _check_callable("g", no_return_annotation, no_return_annotation.__doc__, False, problems)
    assert problems == [
        "f: Args lines that are not 'name: description': ['a bad line']",
        "f: parameter 'a' has no annotation (nor a type in its docstring)",
        "f: documents a parameter 'c' that its signature does not have",
        "g: a Returns section without a return annotation",
    ]


def test_checker_refuses_a_dataclass_without_a_docstring():
    @dataclasses.dataclass
    class Plain:
        x: int = 0

    Plain.__module__ = "icml17.fake"
    problems: list[str] = []
    _check_class("Plain", Plain, problems)
    assert problems == ["Plain: no docstring"]
