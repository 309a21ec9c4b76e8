"""The one exception the data layer raises for missing, truncated or corrupt dataset files."""

from __future__ import annotations

from pathlib import Path

from icml17.core.errors import UserError


class DatasetError(UserError):
    """A dataset file is missing, truncated or not in the expected format.

    The message names the file, what was expected, and how to obtain the data.
    """

    same_on_every_rank = True  # every process reads the same files: under torchrun, rank 0 alone reports it


def how_to_get(name: str, data_dir: Path | str | None = None) -> str:
    """The sentence appended to every error: how to put dataset ``name`` where the loaders look.

    It speaks to a Python caller (``data_dir``, ``$ICML17_DATA``); the download is a shell command, quoted whole.
    """
    where = f" --data-dir {data_dir}" if data_dir is not None else ""
    if name == "miniimagenet":
        return (
            "Mini-ImageNet cannot be downloaded automatically: place the Ravi & Larochelle split "
            "(train.csv, val.csv, test.csv and images/) in a miniimagenet/ folder of the data folder "
            "(data_dir, else $ICML17_DATA)"
        )
    if name == "cifar10-subset":
        return (
            "the CIFAR-10 subset is not distributed; get the full dataset with `icml17 data download cifar10"
            f"{where}`, or point data_dir (or $ICML17_DATA) at a folder that holds it"
        )
    return (
        f"get it with `icml17 data download {name}{where}`, or point data_dir (or $ICML17_DATA) at a folder "
        f"that holds {name}/"
    )


def not_found(what: str, path: Path | str, name: str, root: Path | str) -> DatasetError:
    """The error for a dataset file or folder ``path`` missing under the data folder ``root``.

    Before suggesting a download it looks for the usual mistakes, so the message names the actual fix: ``root``
    is a file, ``root`` is one or more levels too deep (the dataset's own folder was given) or one level too
    shallow, or the file was extracted (an unzipped Omniglot, a gunzipped MNIST file).

    Args:
        what: the file's description ("Omniglot file", "CIFAR-10 folder").
        path: the expected file or folder.
        name: the dataset ('omniglot', 'mnist', 'cifar10', 'cifar10-subset', 'miniimagenet').
        root: the data folder that was searched (``data_dir``, else ``$ICML17_DATA``, else the default).

    Returns:
        A :class:`DatasetError` (to raise) whose parameter is ``data_dir``.
    """
    path, root = Path(path), Path(root)
    fix = diagnose(name, path, root)
    return DatasetError(
        f"{what} {path} not found" + (f": {fix}" if fix else f"; {how_to_get(name, root)}"), param="data_dir"
    )


def diagnose(name: str, path: Path, root: Path) -> str | None:
    """Why ``path`` is missing under the data folder ``root`` when it is a usual mistake, else None."""
    if root.is_file():
        return f"the data folder {root} is a file; pass as data_dir (or $ICML17_DATA) the folder that holds {name}/"
    try:
        rel = path.relative_to(root).parts
    except ValueError:
        rel = ()
    for k in range(1, len(rel)):  # the dataset's own folder (or one inside it) was given as the data folder
        if root.joinpath(*rel[k:]).exists():
            parent = root.absolute().parents[k - 1]
            return (
                f"{root} is the {'/'.join(rel[:k])} folder itself, not the data folder that holds it: "
                f"pass its parent {parent} as data_dir (or $ICML17_DATA)"
            )
    if rel and root.is_dir():  # the data folder is one level down
        for i, child in enumerate(sorted(root.iterdir())):
            if i >= 1000:
                break
            if child.is_dir() and child.joinpath(*rel).exists():
                return f"it is under {child}: pass {child} as data_dir (or $ICML17_DATA)"
    unpacked = path.with_suffix("")
    if path.suffix == ".zip" and unpacked.is_dir():
        return (
            f"{unpacked} is extracted, but the loader reads the official {path.name} as downloaded: zip it "
            f"back (cd {path.parent} && zip -qr {path.name} {unpacked.name}), or {how_to_get(name, root)}"
        )
    if path.suffix == ".gz" and unpacked.is_file():
        return (
            f"{unpacked} is decompressed, but the loader reads the official {path.name}: compress it again "
            f"(gzip -k {unpacked}), or {how_to_get(name, root)}"
        )
    return None
