# The targets of issue #18 with main's code on this 2-core AMX machine: two rounds of the precision axis in
# opposite order (8 s steps), then the cost of a new input shape in bf16
set -uo pipefail
out=${1:-/tmp/amx/final}
mkdir -p "$out"
for order in ort-fp32,openvino-bf16 openvino-bf16,ort-fp32; do
  timeout 400 .venv/bin/python -m loadtest.precision --model build/minilm --variants $order --seconds 8 \
    --concurrency 1,16,64,16x8 --output "$out/$order" 2>&1 | grep -v "^|" > "$out/round-$order.log"
done
PYTHONPATH=. timeout 100 .venv/bin/python docs/measurements/2026-11-26-shapes/shapes.py build/minilm bf16 150 > "$out/shapes-bf16.log" 2>&1
