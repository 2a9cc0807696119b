"""Checks Vigil's kas files offline, with kas's own loader.

Usage: python check_kas.py KAS_DIR

Every top-level kas file in KAS_DIR (not the *.lock.yml files) is loaded the
way `kas build` loads it, includes and lock file merged: each file is
validated against kas's JSON schema and its format version. Then the merged
configuration must make sense for a pinned build: every repository but the
Vigil checkout has a URL and a branch, the lock file only pins repositories
the configuration defines, and every pin is a full commit id.

Prints what is wrong, one line each, and exits 1; prints nothing and exits 0
when all is well. Needs the kas Python package (the venv `cargo xtask` makes)
and no network: no repository is fetched.
"""

import argparse
import logging
import re
import sys
from pathlib import Path

from kas.context import create_global_context
from kas.includehandler import IncludeHandler
from kas.kasusererror import KasUserError

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def problems(top: Path) -> list[str]:
    """What is wrong with the configuration `top` describes."""
    handler = IncludeHandler([str(top)], use_lock=True)
    try:
        config, missing = handler.get_config()
    except KasUserError as e:
        return [f"{top}: {e}"]
    found = []
    if missing:
        found.append(f"{top}: includes from repositories kas would have to fetch: {', '.join(missing)}")
    repos = config.get("repos", {})
    defaults = config.get("defaults", {}).get("repos", {})
    for name, repo in repos.items():
        if repo is None or repo.get("url") is None:
            continue  # the Vigil repository itself
        ref = {key: repo.get(key, defaults.get(key)) for key in ("branch", "tag", "commit")}
        if not any(ref.values()):
            found.append(f"{top}: repository {name} names no branch, tag or commit")
    locks = handler.get_lockfiles()
    if not locks:
        found.append(f"{top}: no lock file next to it or its includes (expected {handler.get_lock_filename()})")
    for lock in locks:
        pins = lock.config.get("overrides", {}).get("repos", {})
        for name, pin in pins.items():
            if name not in repos:
                found.append(f"{lock.filename}: pins {name}, which no kas file defines")
            commit = (pin or {}).get("commit")
            if commit is not None and not COMMIT.match(commit):
                found.append(f"{lock.filename}: {name}: commit {commit!r} is not a full 40-hex-digit commit id")
    return found


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    # kas logs schema errors itself; keep them, at error level only.
    logging.basicConfig(level=logging.ERROR, format="kas: %(message)s")
    kas_dir = Path(sys.argv[1])
    # The loader finds the top repository with git, through kas's context;
    # nothing is fetched, checked out or written.
    create_global_context(argparse.Namespace(no_color=True))
    tops = sorted(p for p in kas_dir.glob("*.yml") if not p.name.endswith(".lock.yml"))
    if not tops:
        print(f"{kas_dir}: no kas files", file=sys.stderr)
        return 1
    found = [line for top in tops for line in problems(top)]
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
