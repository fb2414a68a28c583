# For the next AMX machine (prepared on AMD, not yet run): the questions runs 1-3 left, most important first,
# in one call of under 10 minutes. Before it, as for run 3 (README.md here): the wheels under /tmp/site and
# the MiniLM bundle's first part in /tmp/m; carry .dev/part-ab (and, for step 4, the SDPA IR as /tmp/ir).
# 1. Host or code? Two rounds in opposite order, 8 s steps (run 3 used 4 s): ORT fp32 beside OpenVINO bf16.
#    On AMD the request-future change was +4% requests/s where the HTTP layer is the wall (2026-11-26-loop).
# 2. What a new shape costs in bf16 (AMD fp32: ~1 ms a shape, under 1% of the calls' time).
# 3. Widths in multiples of 16 against exact widths, bf16, 8 s steps.
# 4. OpenVINO's SDPA IR against the bundle's graph in bf16, if the IR was carried.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
cat /tmp/m/part-aa .dev/part-ab > /tmp/m/minilm.tar.xz
python3 -c "import lzma, tarfile; tarfile.open(fileobj=lzma.open('/tmp/m/minilm.tar.xz')).extractall('/tmp/b', filter='data')"
{ grep -m1 'model name' /proc/cpuinfo; grep -m1 '^flags' /proc/cpuinfo; nproc; } > "$OUT/machine.txt"
pin="taskset -c 0,1"
for order in ort-fp32,openvino-bf16 openvino-bf16,ort-fp32; do
  timeout 150 $pin python3 -m loadtest.precision --model /tmp/b/minilm --variants $order --seconds 8 \
    --concurrency 1,64,16x8 --output /tmp/r-$order 2>&1 | grep -v "^|" | tee "$OUT/round-$order.log"
  cp /tmp/r-$order/precision.json "$OUT/round-$order.json"
done
for p in bf16 fp32; do
  timeout 60 $pin python3 docs/measurements/2026-11-26-shapes/shapes.py /tmp/b/minilm $p 150 | tee "$OUT/shapes-$p.log"
done
ATTNSERVE_OPENVINO_LENGTH_STEP=16 timeout 80 $pin python3 -m loadtest.precision --model /tmp/b/minilm \
  --variants openvino-bf16 --seconds 8 --concurrency 64,16x8 --output /tmp/s16 2>&1 | grep -v "^|" | tee "$OUT/step16.log"
[ -f /tmp/ir/model.xml ] && timeout 90 $pin python3 docs/measurements/2026-11-26-sdpa/compare.py bf16 /tmp/b/minilm \
  /tmp/b/minilm/model.onnx /tmp/ir/model.xml 2>&1 | tee "$OUT/sdpa-bf16.log"
exit 0
