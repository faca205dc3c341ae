# syntax=docker/dockerfile:1
#
# One image per part of the plugin catalog. `make images` builds every
# target below, `docker build --target catalog .` one of them. The images
# share their layers up to the last stage, which sets only the entry point:
# the command the part's Knative Service or ContainerSource runs (knative/).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS runtime
# No bytecode written at run time (the root filesystem is read-only), and
# HOME on the pod's writable /tmp, where gunicorn puts its control socket.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
WORKDIR /app

# The dependencies first, read from pyproject.toml alone, so that this layer
# is built again when they change and not when the code does.
COPY pyproject.toml ./
RUN python -c "import tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(project['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the code, installed without looking at the dependencies again and
# compiled now, since nothing can write bytecode later.
COPY README.md ./
COPY noetl ./noetl
COPY functions ./functions
COPY sources ./sources
RUN pip install --no-deps . \
    && python -m compileall -q noetl functions sources

# A numeric uid, so that the kubelet can check runAsNonRoot.
USER 65532:65532

# A function served by the functions-framework CLI in its ASGI mode, as
# `noetl dev` serves it (noetl/localrun.py). Knative sets PORT.
FROM runtime AS function
ENV PORT=8080
EXPOSE 8080

FROM function AS api
ENTRYPOINT ["functions-framework", "--target", "handle", "--source", "functions/api/main.py", "--asgi"]

FROM function AS dispatcher
ENTRYPOINT ["functions-framework", "--target", "handle", "--source", "functions/dispatcher/main.py", "--asgi"]

FROM function AS catalog
ENTRYPOINT ["functions-framework", "--target", "handle", "--source", "functions/catalog/main.py", "--asgi"]

FROM function AS notifier
ENTRYPOINT ["functions-framework", "--target", "handle", "--source", "functions/notifier/main.py", "--asgi"]

# The JetStream source; each ContainerSource names its stream, subjects and
# durable in the environment.
FROM runtime AS jetstream-source
ENTRYPOINT ["python", "-m", "sources.jetstream"]
