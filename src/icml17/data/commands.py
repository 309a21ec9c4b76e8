"""``icml17 data``: ``info`` reports the datasets under a data folder, ``download`` fetches one of them.

Thin: parses and calls :func:`describe_datasets` / :func:`download_dataset`; DatasetError reaches the CLI,
which prints it as one message.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .download import DATASETS, download_dataset
from .paths import resolve_data_dir
from .summary import describe_datasets

_DATA_DIR_HELP = "datasets folder (default: $ICML17_DATA or ~/.cache/icml17/data)"


def _folder_url(text: str) -> str:
    """argparse type: a URL as given, or a local folder turned into its file:// URL."""
    if "://" in text:
        return text
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is neither a URL (http://..., file://...) nor an existing folder")
    return folder.resolve().as_uri()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="report or download datasets")
    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    info = actions.add_parser("info", help="which datasets are present, their sizes, and how to get the others")
    info.add_argument("--data-dir", type=Path, default=None, help=_DATA_DIR_HELP)
    info.add_argument("--json", action="store_true", help="print the report as JSON")
    info.set_defaults(func=_info)

    dl = actions.add_parser("download", help="download a dataset from its official home and check it")
    dl.add_argument("name", choices=DATASETS)
    dl.add_argument("--data-dir", type=Path, default=None, help=_DATA_DIR_HELP)
    dl.add_argument(
        "--base-url",
        type=_folder_url,
        default=None,
        help="folder URL of a mirror holding the same files (a local folder works too)",
    )
    dl.set_defaults(func=_download)


def _info(args: argparse.Namespace) -> int:
    rows = describe_datasets(args.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"data folder: {resolve_data_dir(args.data_dir)}")
    for r in rows:
        size = f"{r['size_bytes'] / 2**20:8.1f} MiB" if r["size_bytes"] else " " * 12
        text = r["summary"] if r["status"] != "missing" else r["how_to_get"]
        print(f"  {r['name']:<16} {r['status']:<8} {size}  {text}")
    return 0


def _download(args: argparse.Namespace) -> int:
    folder = download_dataset(args.name, args.data_dir, args.base_url)
    print(f"{args.name}: ready in {folder}")
    return 0
