"""python -m eval: the one runner of every study, benchmark, documentation generator and demo
(eval.core.runner; ``python -m eval --help`` lists them)."""

import sys

from eval.core.runner import main

if __name__ == "__main__":
    sys.exit(main())
