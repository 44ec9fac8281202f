# One image for every project service in docker-compose.yml: the code location (dagster api grpc), the
# webserver, the daemon and the sidecar differ only in their command. Build: docker build -t lakehouse .
FROM python:3.11-slim-bookworm

# The CPU build of torch, from PyTorch's CPU wheel index: PyPI's Linux torch pulls a multi-GB CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    LAKEHOUSE_HOME=/var/lib/lakehouse \
    LAKEHOUSE_MODEL_CACHE=/opt/lakehouse/models

RUN useradd --system --create-home --home-dir /home/lakehouse lakehouse \
    && mkdir -p /opt/dagster/app /opt/dagster/home /var/lib/lakehouse \
    && chown lakehouse /opt/dagster/home /var/lib/lakehouse
WORKDIR /opt/dagster/app

# torch first, alone, so the project install below finds it satisfied; then the pinned tree.
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0
COPY pyproject.toml constraints.txt README.md ./
COPY lakehouse_pipelines ./lakehouse_pipelines
COPY assets ./assets
COPY resources ./resources
COPY schemas ./schemas
RUN pip install -c constraints.txt .
# The local model's ONNX export (and int8), made once at build time: no service needs torch at run time.
RUN lakehouse models

COPY dagster.production.yaml /opt/dagster/home/dagster.yaml
COPY workspace.production.yaml ./workspace.yaml

USER lakehouse
EXPOSE 3000 4000 8000
CMD ["lakehouse", "doctor"]
