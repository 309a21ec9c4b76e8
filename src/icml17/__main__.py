import sys

from icml17.cli import main

sys.exit(main())
