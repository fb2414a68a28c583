# bf16 through the service, packed batches in exact shapes (ATTNSERVE_OPENVINO_PACKED_BUCKETS=false) against
# bucketed ones (the default now), two interleaved rounds of server starts, 8 s per step; peak RSS from the JSON
set -uo pipefail
out=${1:-/tmp/amx9/buckets}
mkdir -p "$out"
for round in 1 2; do
  order="false true"; [ $round = 2 ] && order="true false"
  for buckets in $order; do
    ATTNSERVE_OPENVINO_PACKED_BUCKETS=$buckets timeout 300 .venv/bin/python -m loadtest.precision \
      --model build/minilm --variants openvino-bf16 --seconds 8 --concurrency 1,64,16x8 \
      --output "$out/$buckets-$round" 2>&1 | grep -E "c=|ceiling" | sed "s/^/round $round buckets=$buckets: /"
    .venv/bin/python -c "import json; l = json.load(open('$out/$buckets-$round/precision.json'))['variants'][0]; \
print('round $round buckets=$buckets: peak RSS', round(l['peak_rss_mb']), 'MB')"
  done
done
