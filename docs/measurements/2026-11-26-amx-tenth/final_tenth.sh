# Issue #18's targets with unfused batch attention (the default while it ran; an opt-in now), then the same with the
# fused subgraph (the ninth session's code, the default now) on the same host: final.sh's two rounds each
set -uo pipefail
out=${1:-/tmp/amx10}
here="$(dirname "$0")/../2026-11-26-amx-unfused"
ATTNSERVE_OPENVINO_BATCH_ATTENTION=unfused bash "$here/final.sh" "$out/finalA"
ATTNSERVE_OPENVINO_BATCH_ATTENTION=unfused bash "$here/final.sh" "$out/finalB"
ATTNSERVE_OPENVINO_BATCH_ATTENTION=fused bash "$here/final.sh" "$out/finalFused"
