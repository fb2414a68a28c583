# bf16 through the service, the batch sessions' attention fused (the commit before, checked out in $OLD) against
# unfused (this tree), two interleaved rounds of server starts, 8 s per step, one bundle for both
set -uo pipefail
OLD=${OLD:-/tmp/old}
out=${1:-/tmp/amx9/ab}
mkdir -p "$out"
for round in 1 2; do
  order="fused unfused"; [ $round = 2 ] && order="unfused fused"
  for v in $order; do
    dir=$PWD; [ $v = fused ] && dir=$OLD
    (cd "$dir" && timeout 300 .venv/bin/python -m loadtest.precision --model "$PWD/build/minilm" \
      --variants openvino-bf16 --seconds 8 --concurrency 1,64,16x8 --output "$out/$v-$round" 2>&1) \
      | grep -E "c=|ceiling" | sed "s/^/round $round $v: /"
  done
done
