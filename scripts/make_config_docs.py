"""Write the configuration reference (docs/configuration.md) from the config schema.

    python scripts/make_config_docs.py

The page comes from workflow/schemas/config.schema.yaml through
scripts/mergelab/schema_docs.py; tests/test_docs.py checks that the committed
file equals what this writes.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mergelab.schema_docs import OUTPUT, SCHEMA, load, render, rows  # noqa: E402

REPO = HERE.parent


def main() -> None:
    schema = load(REPO / SCHEMA)
    out = REPO / OUTPUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(schema))
    print(f"{out}: {len(rows(schema))} keys")


if __name__ == "__main__":
    main()
