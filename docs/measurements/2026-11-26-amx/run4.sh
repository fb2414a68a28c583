# For the next AMX machine (prepared on AMD, not yet run): the questions runs 1-3 left, most important first,
# in one call of under 10 minutes. Before it, as for run 3 (README.md here): the wheels under /tmp/site and
# the MiniLM bundle's first part in /tmp/m, the tiny bundle in /tmp/b/tiny; carry .dev/part-ab (and, for
# step 5, the SDPA IR as /tmp/ir). Export the MiniLM bundle afresh with the code of the day before splitting it.
# 1. Host or code? Two rounds in opposite order, 8 s steps (run 3 used 4 s): ORT fp32 beside OpenVINO bf16.
#    On AMD the request-future change was +4% requests/s where the HTTP layer is the wall (2026-11-26-loop).
# 2. The precision tests with the AMX branch, test_bf16_through_the_real_server among them (written on AMD,
#    where it is skipped; its mechanics were checked there with OpenVINO fp32 standing in).
# 3. What a new shape costs in bf16 (AMD fp32: ~1 ms a shape, under 1% of the calls' time).
# 4. bf16 batches on the packed graph against padded ones, both layouts in one process taking turns (the host's
#    speed drifted between server starts): on AMD OpenVINO fp32 gained +9-10% through the service and 1.098x in
#    this in-process A/B (2026-11-26-packed-ov); if bf16 gains too, make packed bf16's default (service/plan.py).
# 5. OpenVINO's SDPA IR against the bundle's graph in bf16, if the IR was carried.
# Each step has its own timeout; all of them fit in one 600 s call.
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
ATTNSERVE_TEST_TINY_BUNDLE=/tmp/b/tiny ATTNSERVE_TEST_MINILM_BUNDLE=/tmp/b/minilm timeout 100 taskset -c 0-7 \
  python3 -m pytest -q -s -p no:cacheprovider -m "slow or not slow" tests/service/test_precision.py 2>&1 \
  | tee "$OUT/pytest.log" | tail -15
timeout 50 $pin python3 docs/measurements/2026-11-26-shapes/shapes.py /tmp/b/minilm bf16 150 | tee "$OUT/shapes-bf16.log"
timeout 90 $pin python3 docs/measurements/2026-11-26-packed-ov/graphs_ab.py /tmp/b/minilm bf16 6 3 2>&1 \
  | tee "$OUT/bf16-packed.log"
[ -f /tmp/ir/model.xml ] && timeout 90 $pin python3 docs/measurements/2026-11-26-sdpa/compare.py bf16 /tmp/b/minilm \
  /tmp/b/minilm/model.onnx /tmp/ir/model.xml 2>&1 | tee "$OUT/sdpa-bf16.log"
exit 0
