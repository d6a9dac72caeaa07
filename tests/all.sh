#!/usr/bin/env bash
# `make test-all`: every test, in two pytest processes at once. The SLURM tests (marker `slurm`)
# spend most of their time waiting for the cluster's status polls, so they run beside the rest
# rather than after it; their output follows the main run's. Exit status: non-zero when either
# half fails, and when no test was collected at all (pytest's exit code 5 from both halves).
# Usage: tests/all.sh PYTHON [pytest arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."
py="$1"
shift
log="$(mktemp -t mergelab-slurm-tests.XXXXXX)"
# what both processes share: one training of the demo models (tests/conftest.py, trained_demo)
MERGELAB_TEST_SHARED="$(mktemp -d -t mergelab-tests.XXXXXX)"
export MERGELAB_TEST_SHARED
trap 'rm -rf "$log" "$MERGELAB_TEST_SHARED"' EXIT
if [ "$#" -eq 0 ]; then  # the whole suite: train the demo models first, on an idle machine
    echo "mergelab: training the demo models for the tests (tests/conftest.py, shared_demo)"
    "$py" -c 'import sys; from pathlib import Path; sys.path.insert(0, "tests"); import conftest; conftest.shared_demo(Path(sys.argv[1]))' "$MERGELAB_TEST_SHARED" || exit 1
fi
"$py" -m pytest -m slurm -p no:cacheprovider --durations=10 "$@" >"$log" 2>&1 &
slurm_pid=$!
"$py" -m pytest -m "not slurm" --durations=30 "$@"
main_rc=$?
wait "$slurm_pid"
slurm_rc=$?
echo "================ the SLURM tests (pytest -m slurm, run alongside) ================"
cat "$log"
echo "mergelab: tests exit codes: main $main_rc, slurm $slurm_rc (5: no test collected)"
ok() { [ "$1" -eq 0 ] || [ "$1" -eq 5 ]; }
if ok "$main_rc" && ok "$slurm_rc" && ! { [ "$main_rc" -eq 5 ] && [ "$slurm_rc" -eq 5 ]; }; then
    exit 0
fi
[ "$main_rc" -ne 0 ] && exit "$main_rc"
exit "$slurm_rc"
