# modelpress: one image for the API and the workers (CPU torch).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MODELPRESS_DATA_DIR=/data MODELPRESS_ARTIFACT_DIR=/data/artifacts

RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY worker ./worker
COPY modelpress ./modelpress
COPY modelpress_core ./modelpress_core
COPY modelpress_torch ./modelpress_torch
# torch pinned in the same command, so pip never swaps it: CPU wheels by default; the gpu worker's
# image is built with TORCH_INDEX_URL pointing at a CUDA wheel index (docker-compose.yml does).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url ${TORCH_INDEX_URL} torch==2.13.0 \
 && pip install torch==2.13.0 ".[all,s3,flower]"

RUN useradd --create-home --uid 10001 modelpress && mkdir -p /data/artifacts && chown -R modelpress /data
USER modelpress
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1

CMD ["uvicorn", "service.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--http", "httptools", "--loop", "uvloop"]
