"""rigshift: placeholder entry point, completed by the customer CLI work."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("rigshift: not implemented yet", file=sys.stderr)
    return 2
