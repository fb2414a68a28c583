# The targets of issue #18 on this 2-core AMX machine with the code checked out: two rounds of the precision
# axis in opposite order (8 s steps)
set -uo pipefail
out=${1:-/tmp/amx9/final}
mkdir -p "$out"
for order in ort-fp32,openvino-bf16 openvino-bf16,ort-fp32; do
  timeout 500 .venv/bin/python -m loadtest.precision --model build/minilm --variants $order --seconds 8 \
    --concurrency 1,16,64,16x8 --output "$out/$order" 2>&1 | grep -v "^|" > "$out/round-$order.log"
done
