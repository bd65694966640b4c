"""python -m afluente_embedded <split_tables|load_warehouse> --spec <uri> [--lake-root <uri>] (see cli.py)."""
import sys

from afluente_embedded.cli import main

if __name__ == "__main__":
    sys.exit(main())
