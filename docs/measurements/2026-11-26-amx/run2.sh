set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
cat /tmp/m/part-aa .dev/part-ab > /tmp/m/minilm.tar.xz
python3 -c "import lzma, tarfile; tarfile.open(fileobj=lzma.open('/tmp/m/minilm.tar.xz')).extractall('/tmp/b', filter='data')"
lscpu | grep -i -E 'model name|thread|core|socket|numa|L2|L3'; lscpu -e | head -4
PREC=${PREC:-bf16}
timeout 100 taskset -c 0,1 python3 docs/measurements/2026-11-26-amx/raw_openvino.py /tmp/b/minilm ${DIAG_S:-2} $PREC 2>&1 | tee $OUT/diag.log
P="timeout 100 taskset -c 0,1 python3 -m loadtest.precision --model /tmp/b/minilm --seconds ${SECS:-5} --concurrency 1,64,16x8"
V=${V:-openvino-bf16}
run() { local name=$1; shift; echo "== $name: $*"; env "$@" $P --variants ${VV:-$V} --output /tmp/$name > /tmp/$name.log 2>&1; grep "^  \|ceiling" /tmp/$name.log; cp /tmp/$name/precision.json $OUT/$name.json 2>/dev/null; }
VV=ort-fp32,$V run q0 X=1
run q1 ATTNSERVE_OPENVINO_LENGTH_STEP=1
run q2 ATTNSERVE_OPENVINO_LENGTH_STEP=1 ATTNSERVE_MAX_PADDING_RATIO=1.5 ATTNSERVE_BATCH_WINDOW=64
run q3 ATTNSERVE_OPENVINO_LENGTH_STEP=1 ATTNSERVE_INFERENCE_WORKERS=1 ATTNSERVE_MAX_PADDING_RATIO=1.5 ATTNSERVE_BATCH_WINDOW=64
run q4 ATTNSERVE_OPENVINO_LENGTH_STEP=1 ATTNSERVE_INFERENCE_WORKERS=1
