"""`make bench`: the load suite against the system of a running `make up`.

    uv run python bench/run.py [--seconds 8] [--scenarios 'list*,get'] [--label before] ...

See bench/README.md; `--help` lists every option.
"""

from __future__ import annotations

import sys

from suite.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
