# Issue #18's targets with unfused batch attention (main's default now), then the same with the fused subgraph
# (ATTNSERVE_OPENVINO_BATCH_ATTENTION=fused, the ninth session's code) on the same host: final.sh's two rounds each
set -uo pipefail
out=${1:-/tmp/amx10}
here="$(dirname "$0")/../2026-11-26-amx-unfused"
bash "$here/final.sh" "$out/finalA"
bash "$here/final.sh" "$out/finalB"
ATTNSERVE_OPENVINO_BATCH_ATTENTION=fused bash "$here/final.sh" "$out/finalFused"
