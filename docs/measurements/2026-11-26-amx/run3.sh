set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
cat /tmp/m/part-aa .dev/part-ab > /tmp/m/minilm.tar.xz
python3 -c "import lzma, tarfile; tarfile.open(fileobj=lzma.open('/tmp/m/minilm.tar.xz')).extractall('/tmp/b', filter='data')"
timeout 100 taskset -c 0,1 python3 -m loadtest.precision --model /tmp/b/minilm --variants ort-fp32,openvino-bf16 --seconds 4 --concurrency 1,64,16x8 --output /tmp/f 2>&1 | grep -v "^|" | tee $OUT/final.log
cp /tmp/f/precision.json $OUT/final.json; ls /tmp/b/minilm; cat /tmp/b/minilm/fidelity.json | head -30 > $OUT/fidelity.json
