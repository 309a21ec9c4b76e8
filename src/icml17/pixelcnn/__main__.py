"""``python -m icml17.pixelcnn COMMAND ...`` is ``icml17 pixelcnn COMMAND ...``."""

import sys

from icml17.cli import main

sys.exit(main(["pixelcnn", *sys.argv[1:]]))
