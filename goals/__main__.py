"""``python -m goals``: see :mod:`goals.cli`."""

import sys

from goals.cli import main

if __name__ == "__main__":
    sys.exit(main())
