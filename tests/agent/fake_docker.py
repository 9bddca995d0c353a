#!/usr/bin/env python3
"""A fake `docker` for the executor tests: records each call's arguments (one JSON line per call in
$FAKE_DOCKER_LOG) and plays back what $FAKE_DOCKER_PLAY (a JSON file, re-read on every call) says:

    {"inspect": {...State...} | null, "port": "22/tcp -> 0.0.0.0:40021\\n", "stdout": "<ts> line\\n...",
     "stderr": "...", "pull_rc": 0, "pull_err": "", "create_rc": 0}
"""

import json
import os
import sys


def main() -> int:
    args = sys.argv[1:]
    with open(os.environ["FAKE_DOCKER_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(args) + "\n")
    with open(os.environ["FAKE_DOCKER_PLAY"], encoding="utf-8") as fh:
        play = json.load(fh)
    command = args[0] if args else ""
    if command == "pull":
        if play.get("pull_rc", 0):
            sys.stderr.write(play.get("pull_err", "pull failed") + "\n")
        return int(play.get("pull_rc", 0))
    if command == "create":
        return int(play.get("create_rc", 0))
    if command == "inspect":
        state = play.get("inspect")
        if state is None:
            sys.stderr.write("Error: No such object\n")
            return 1
        sys.stdout.write(json.dumps(state) + "\n")
        return 0
    if command == "port":
        sys.stdout.write(play.get("port", ""))
        return 0
    if command == "logs":
        sys.stdout.write(play.get("stdout", ""))
        sys.stderr.write(play.get("stderr", ""))
        return 0
    return 0  # network, start, stop, rm, info


if __name__ == "__main__":
    sys.exit(main())
