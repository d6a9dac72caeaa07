"""Write every generated doc: the configuration reference, the merge-method table of docs/usage.md
and the defaults in config/experiment.yaml's comments.

    python scripts/make_config_docs.py            # (or `make docs`) rewrites what is out of date
    python scripts/make_config_docs.py --check    # writes nothing; exit 1 naming what is out of date

The list of generated files and how each is made is scripts/mergelab/docs/generated_docs.py (the config
reference: scripts/mergelab/docs/schema_docs.py); tests/test_docs.py checks that the committed files equal
what this writes.
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mergelab.docs.generated_docs import stale, write  # noqa: E402

REPO = HERE.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this script's)")
    args = parser.parse_args(argv)
    if args.check:
        out = stale(args.root)
        for path in out:
            print(f"{path}: out of date: run `python scripts/make_config_docs.py`", file=sys.stderr)
        return 1 if out else 0
    for path in write(args.root):
        print(f"{path}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
