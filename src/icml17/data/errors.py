"""The one exception the data layer raises for missing, truncated or corrupt dataset files."""

from __future__ import annotations

from pathlib import Path

from icml17.core.errors import UserError


class DatasetError(UserError):
    """A dataset file is missing, truncated or not in the expected format.

    The message names the file, what was expected, and how to obtain the data.
    """


def how_to_get(name: str, data_dir: Path | str | None = None) -> str:
    """The sentence appended to every error: how to put dataset ``name`` where the loaders look."""
    where = f" --data-dir {data_dir}" if data_dir is not None else " --data-dir DIR"
    if name == "miniimagenet":
        return (
            "Mini-ImageNet cannot be downloaded automatically: place the Ravi & Larochelle split "
            "(train.csv, val.csv, test.csv and images/) under <data-dir>/miniimagenet/, "
            "then pass --data-dir or set ICML17_DATA"
        )
    if name == "cifar10-subset":
        return (
            "the CIFAR-10 subset is not distributed; run `icml17 data download cifar10"
            f"{where}` for the full dataset, or pass --data-dir / set ICML17_DATA"
        )
    return f"run `icml17 data download {name}{where}` or pass --data-dir / set ICML17_DATA"
