"""``python -m icml17.maml COMMAND ...`` is ``icml17 maml COMMAND ...``."""

import sys

from icml17.cli import main

sys.exit(main(["maml", *sys.argv[1:]]))
