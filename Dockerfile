# syntax=docker/dockerfile:1.7
# Two images from one build: `--target proxy` (sluice-proxy) and `--target operator` (sluice-operator).
#   docker build --target proxy -t ghcr.io/sluice-dev/sluice-proxy:0.1.0 .
#   docker build --target operator -t ghcr.io/sluice-dev/sluice-operator:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Builder: resolves and builds every wheel once; nothing of this stage but the wheels reaches an image.
# Sluice's own wheel is compiled by mypyc (SLUICE_COMPILE=1, see setup.py): the proxy's hot path
# runs as C extensions. The compiler and mypy stay in this stage.
FROM ${PYTHON_IMAGE} AS builder
ARG MYPY_VERSION=2.4.1
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY proxy proxy
COPY operator operator
RUN pip install "mypy==${MYPY_VERSION}" "setuptools>=77" \
 && SLUICE_COMPILE=1 pip wheel --no-build-isolation --no-deps --wheel-dir /wheels/sluice . \
 && wheel=$(ls /wheels/sluice/sluice-*.whl) \
 && pip wheel --wheel-dir /wheels/proxy "$wheel" \
 && pip wheel --wheel-dir /wheels/operator "$wheel[operator]"

# Runtime base: the interpreter and an unprivileged user, no compiler, no build backend.
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin sluice

FROM runtime AS proxy
# pip compiles the .pyc files at install time, so a read-only root filesystem costs nothing at start-up;
# pip itself is removed afterwards: the image never installs anything at run time.
RUN --mount=type=bind,from=builder,source=/wheels/proxy,target=/wheels \
    pip install --no-index --find-links=/wheels sluice \
 && pip uninstall --yes pip setuptools wheel
ENV SLUICE_HOST=0.0.0.0 SLUICE_PORT=8080
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('SLUICE_PORT', '8080')}/healthz\", timeout=2)"]
ENTRYPOINT ["sluice-proxy"]

FROM runtime AS operator
RUN --mount=type=bind,from=builder,source=/wheels/operator,target=/wheels \
    pip install --no-index --find-links=/wheels 'sluice[operator]' \
 && pip uninstall --yes pip setuptools wheel
USER 10001:10001
EXPOSE 9443 8081
ENTRYPOINT ["sluice-operator"]
