#!/usr/bin/env bash
# The CUDA path measured on the lent GPU machine, which has no package registry. Brought there beforehand, one
# part per call while the machine stays warm (../shared/docs/gpu.md): onnxruntime-gpu and the serving wheels
# installed under /tmp/site; the MiniLM bundle with its fp16 graph as an xz tar in 56 MiB parts under /tmp/m
# (made here by `tar -C DIR -cf - minilm | xz -T2 -6 | split -b 56m - part-`). Then one call runs this:
# the precision axis with ONNX Runtime fp32 on the CPU (the reference vectors), CUDA fp32 and CUDA fp16 (the
# bundle's fp16 graph, its fidelity measured at start and recorded), and the test chosen by a GPU.
# How it ran on 2026-11-26 (docs/measurements/2026-11-26-cuda/last_call.sh; 6 calls, ~90 s of transfers):
# ../shared/tools/device-wheels.sh fastapi pydantic-settings uvicorn httptools orjson httpx2 (starlette's TestClient
# refuses the image's httpx: the test needs httpx2); onnxruntime-gpu unzipped and re-packed as tar.xz (255 MB as a
# wheel, 203 MB so: 4 parts instead of 5) and unpacked into /tmp/site; the MiniLM bundle as xz (133 MB, 3 parts).
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out=${OUT:-results/lent-gpu}
mkdir -p "$out" /tmp/b /tmp/p
cat /tmp/m/part-* > /tmp/minilm.tar.xz
python3 -c "import lzma, tarfile; tarfile.open(fileobj=lzma.open('/tmp/minilm.tar.xz')).extractall('/tmp/b', filter='data')"
{
  date -u; nproc; grep -m1 'model name' /proc/cpuinfo
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import onnxruntime as o; o.preload_dlls(); print("onnxruntime", o.__version__, o.get_available_providers())'
  python3 -c 'from service.runtime import choose_providers; print("providers:", choose_providers("auto"))'
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
timeout 300 python3 -m loadtest.precision --model /tmp/b/minilm --variants ort-fp32,cuda-fp32,cuda-fp16 \
  --output /tmp/p --seconds 6 --concurrency 1,16,64,16x8 --sweep 2>&1 | tee "$out/precision.log"
cp /tmp/p/precision.json /tmp/p/precision.md "$out/" 2>/dev/null
cp /tmp/b/minilm/fidelity.json "$out/fidelity.json" 2>/dev/null
grep -h -i "error\|traceback" /tmp/p/server-*.log | tail -5
ATTNSERVE_TEST_MINILM_BUNDLE=/tmp/b/minilm timeout 150 python3 -m pytest -q -s -rs -p no:cacheprovider \
  -m "slow or not slow" tests/service/test_precision.py -k cuda_runs_it 2>&1 | tee "$out/pytest.log" | tail -20
