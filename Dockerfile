# gradq image: the CLI, the Celery worker and (stage `test`) the test suite.
#   docker build -t gradq .                  # runtime image (the last stage)
#   docker build --target test -t gradq-test .
#   docker build --build-arg PYTHON_IMAGE=gradq-standin/python:3.11 -t gradq .   # no Docker Hub
# Works with the classic builder and BuildKit alike (no RUN heredocs, no cache mounts).
# PYTHON_IMAGE: any Debian-based image with python 3.11+ as `python` and pip; the default is the
# official one, scripts/compose-standins.sh builds a stand-in from Debian's packages.

ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADQ_DATA_DIR=/data/mnist
RUN groupadd --gid 10001 gradq \
    && useradd --uid 10001 --gid gradq --create-home --shell /usr/sbin/nologin gradq \
    && mkdir -p /data/mnist \
    && chown -R gradq:gradq /data
# A fresh named volume mounted at /data copies this owner, so `gradq data fetch` can write there.
WORKDIR /app

# Dependencies in their own layer, keyed on pyproject.toml only: read the lists from it (no
# gradq stub installed), so editing the source or README reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extra = p['optional-dependencies']; \
print('\n'.join(p['dependencies'] + extra['postgres'] + extra['flower'] + extra['web']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# ---- test: the runtime dependencies + the test and plot extras (as scripts/test.sh installs),
# redis-server (tests/test_faults.py starts a private one) and the tests; /app is owned by
# gradq because pytest and hypothesis write their caches there.
FROM base AS test
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extra = p['optional-dependencies']; \
print('\n'.join(extra['test'] + extra['plot']))" > /tmp/requirements-test.txt \
    && pip install -r /tmp/requirements-test.txt
COPY --chown=gradq:gradq . .
RUN pip install --no-deps . && rm -rf build *.egg-info && chown gradq:gradq /app
USER gradq
CMD ["python", "-m", "pytest", "-q"]

# ---- runtime (default): source read-only for the gradq user.
FROM base AS runtime
COPY . .
RUN pip install --no-deps . && rm -rf build *.egg-info
USER gradq
CMD ["gradq", "--help"]
