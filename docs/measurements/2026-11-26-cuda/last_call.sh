#!/usr/bin/env bash
# the last call: onnxruntime-gpu from its xz tar, the serving wheels, the bundle's last part, then the CUDA script
set -uo pipefail
mkdir -p /tmp/site /tmp/m
t0=$(date +%s)
cat /tmp/ort/part-00 /tmp/ort/part-01 /tmp/ort/part-02 .device-ort/part-03 | xz -d | tar -x -C /tmp/site || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device-wheels/*.whl 2>&1 | tail -3
cp .dev/part-ac /tmp/m/
echo "installed in $(( $(date +%s) - t0 )) s"; ls /tmp/m
bash loadtest/cuda_on_lent_machine.sh
echo "all in $(( $(date +%s) - t0 )) s"
