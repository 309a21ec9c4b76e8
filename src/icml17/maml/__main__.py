"""``python -m icml17.maml maml train ...`` (same parser as ``icml17 maml``)."""

import sys

from icml17.maml.commands import main

sys.exit(main())
