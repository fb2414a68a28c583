#!/usr/bin/env bash
# bf16 measured where the CPU computes it natively: the lent GPU machine's host CPU, which has no package
# registry. Brought there beforehand (see docs/performance.md, "bf16 on a CPU that has it"): the serving
# wheels and openvino installed under /tmp/site, the tiny bundle under /tmp/b/tiny, and the MiniLM bundle as
# an xz tar in two parts (/tmp/m/part-aa, .dev/part-ab). Two cores, like the table; then the
# precision tests with the AMX branch, against the same bundles.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out=${OUT:-results/lent}
mkdir -p "$out" /tmp/p2
cat /tmp/m/part-aa .dev/part-ab > /tmp/m/minilm.tar.xz
python3 -c "import lzma, tarfile; tarfile.open(fileobj=lzma.open('/tmp/m/minilm.tar.xz')).extractall('/tmp/b', filter='data')"
{
  date -u; nproc; grep -m1 'model name' /proc/cpuinfo; grep -m1 '^flags' /proc/cpuinfo; nvidia-smi -L
  python3 -c 'import onnxruntime, openvino, numpy; print("onnxruntime", onnxruntime.__version__, "openvino",
openvino.__version__, "numpy", numpy.__version__)'
  python3 -c 'from service.openvino_session import native_bf16; print("native bf16:", native_bf16())'
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
timeout 330 taskset -c 0,1 python3 -m loadtest.precision --model /tmp/b/minilm --output /tmp/p2 --seconds 6 \
  --concurrency 1,16,64,16x8 --sweep 2>&1 | tee "$out/precision.log"
cp /tmp/p2/precision.json /tmp/p2/precision.md "$out/" 2>/dev/null
grep -h -i "error\|traceback" /tmp/p2/server-*.log | tail -5
ATTNSERVE_TEST_TINY_BUNDLE=/tmp/b/tiny ATTNSERVE_TEST_MINILM_BUNDLE=/tmp/b/minilm timeout 170 taskset -c 0-7 \
  python3 -m pytest -q -s -p no:cacheprovider -m "slow or not slow" tests/service/test_precision.py \
  tests/loadtest/test_precision_bench.py 2>&1 | tee "$out/pytest.log" | tail -40
