# bf16 through the service, padded batches (ATTNSERVE_GRAPH=default) against packed (the plan's default now),
# two interleaved rounds of server starts on this machine, 6 s per step
set -uo pipefail
out=${1:-/tmp/amx/ab}
mkdir -p "$out"
for round in 1 2; do
  order="default auto"; [ $round = 2 ] && order="auto default"
  for graph in $order; do
    ATTNSERVE_GRAPH=$graph timeout 200 .venv/bin/python -m loadtest.precision --model build/minilm \
      --variants openvino-bf16 --seconds 6 --concurrency 1,64,16x8 --output "$out/$graph-$round" 2>&1 \
      | grep -E "c=|ceiling" | sed "s/^/round $round graph $graph: /"
  done
done
