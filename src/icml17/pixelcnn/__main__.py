"""``python -m icml17.pixelcnn COMMAND ...``: the ``icml17 pixelcnn`` commands without loading other systems."""

import sys

from icml17.pixelcnn.commands import main

sys.exit(main())
