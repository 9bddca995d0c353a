"""rigshift-agent: placeholder entry point, completed by the node agent work."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("rigshift-agent: not implemented yet", file=sys.stderr)
    return 2
