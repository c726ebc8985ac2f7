"""Offline stand-in for the get-pip script ansible-test downloads from a host this machine cannot reach.

ansible-test runs it as __main__ inside a fresh venv that has no pip, with pip-install arguments. We put the
pip wheel that scripts/deps.sh downloaded from PyPI on sys.path and run its installer with those arguments.
"""

from __future__ import annotations

import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    wheels = sorted(glob.glob(os.path.join(HERE, "pip-*.whl")))
    if not wheels:
        sys.stderr.write(f"no pip wheel next to {__file__}: run scripts/deps.sh\n")
        return 1
    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    return int(pip_main(["install", *args]))


if __name__ == "__main__":
    sys.exit(main())
