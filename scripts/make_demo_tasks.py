"""Write the data of the demo lm-eval tasks (workflow/tasks/mergelab_demo/data/).

    python scripts/make_demo_tasks.py

The items come from scripts/mergelab/embedded/demo_tasks.py; a test checks that the
committed files equal what this writes.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mergelab.embedded.demo_tasks import task_data  # noqa: E402

DATA = HERE.parent / "workflow" / "tasks" / "mergelab_demo" / "data"


def render(rows) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, rows in task_data().items():
        (DATA / name).write_text(render(rows))
        print(f"{DATA / name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
