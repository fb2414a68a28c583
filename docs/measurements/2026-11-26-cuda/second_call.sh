#!/usr/bin/env bash
# second lease: main's CUDA defaults built in (padding 1.5, window 64) and the GPU-host branches of the tests
set -uo pipefail
mkdir -p /tmp/site /tmp/m /tmp/b
cat /tmp/ort/part-00 /tmp/ort/part-01 /tmp/ort/part-02 .device-ort/part-03 | xz -d | tar -x -C /tmp/site || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device-wheels/*.whl .dev/w/*.whl 2>&1 | grep -v "already exists" | tail -3
cp .dev/part-ac /tmp/m/
cat /tmp/m/part-* | python3 -c "import lzma, sys, tarfile; tarfile.open(fileobj=lzma.open(sys.stdin.buffer), mode='r|').extractall('/tmp/b', filter='data')"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m loadtest.precision --model /tmp/b/minilm --variants cuda-fp32,cuda-fp16 --output /tmp/p \
  --seconds 4 --concurrency 1,64,16x8 2>&1 | grep -E "c=|ceiling|refused|rror" | tee $OUT/defaults.log
ATTNSERVE_TEST_MINILM_BUNDLE=/tmp/b/minilm timeout 150 python3 -m pytest -q -rs -p no:cacheprovider \
  -m "slow or not slow" tests/service/test_precision.py tests/service/test_plan.py -k "cuda or fp16 or no_openvino or plan" 2>&1 | tee $OUT/pytest.log | tail -12
