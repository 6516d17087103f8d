"""``python -m c3a_tutorial.assignments``: forwards to ``c3a_tutorial.tools.assignments`` (code and docs there)."""

import sys

from .tools.assignments import main

if __name__ == "__main__":
    sys.exit(main())
