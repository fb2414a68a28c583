# The rows change against its parent, both trees through the precision axis (final.sh: two orders each), old and new
# interleaved, twice. /tmp/old is a git worktree of 3d7d042 with build/ and .venv linked from the checkout.
set -uo pipefail
for round in 1 2; do
  for tree in old new; do
    dir=$([ $tree = old ] && echo /tmp/old || echo /work/main)
    (cd $dir && PYTHONPATH=$dir bash /work/main/docs/measurements/2026-11-26-amx-unfused/final.sh /tmp/s11/ab-$tree-$round)
  done
done
echo done
