# mlci service image template: copy it to your repository as Dockerfile and adapt steps 4-6.
#
# Built by `mlci build` (docker CLI + BuildKit, the Dockerfile frontend built into docker 20.10+, so there is
# no `# syntax=` line and nothing has to be pulled). The layer order keeps rebuilds cheap: what changes least
# comes first, so a code-only change reuses every layer up to the final COPY, including the models.
#   1. base image                  BASE_IMAGE (ml-ci.yaml image.base, or $MLCI_BASE_IMAGE)
#   2. mlci from the wheelhouse    no package index needed: wheels are bind-mounted from images; its
#                                  dependencies and mlci itself are separate layers (an mlci upgrade
#                                  reinstalls one small wheel)
#   3. dependency file             what artifacts.models.lock names (models.lock, models/*.dvc, dvc.lock; DVC's
#                                  remote URLs) + the part of ml-ci.yaml that pull reads, extracted from the
#                                  build context in a side stage: code and other config edits do not touch the
#                                  model layer
#   4. models pull                 credentials and the S3 endpoint are secret files (never in a layer, not in
#                                  the cache key); the download cache persists across builds (cache mount)
#   5. requirements                from the service wheelhouse, no network
#   6. code
ARG BASE_IMAGE=python:3.11-slim
ARG MLCI_DEPS_WHEELS=mlci-wheelhouse:missing-run-mlci-build
ARG MLCI_WHEELS=mlci-wheelhouse:missing-run-mlci-build
ARG SERVICE_WHEELS=mlci-wheelhouse:missing-run-mlci-build

FROM ${MLCI_DEPS_WHEELS} AS mlci-deps
FROM ${MLCI_WHEELS} AS mlci-wheels
FROM ${SERVICE_WHEELS} AS service-wheels

FROM ${BASE_IMAGE} AS mlci
ENV PATH=/opt/mlci/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MLCI_CACHE=/var/cache/mlci

# 2. mlci's dependencies (pytest, numpy, boto3 ...) into a venv, then mlci itself; air-gapped
RUN --mount=type=bind,from=mlci-deps,source=/wheels,target=/wheels \
    python3 -m venv /opt/mlci \
 && /opt/mlci/bin/pip install --quiet --no-index --no-cache-dir --no-deps /wheels/*.whl
RUN --mount=type=bind,from=mlci-wheels,source=/wheels,target=/wheels \
    pip install --quiet --no-index --no-cache-dir --no-deps /wheels/mlci-*.whl && mlci --version

# 3. the model dependency file(s), and from ml-ci.yaml only what the pull reads (remote, lock, dest); the build
#    context is mounted, not copied: nothing of it lands in a layer here
FROM mlci AS model-spec
RUN --mount=type=bind,target=/context mlci build --model-spec /spec --from /context

FROM mlci
WORKDIR /app
COPY --from=model-spec /spec/ ./

# 4. models, verified against the lock; re-run only when step 3 changes
RUN --mount=type=secret,id=aws_credentials --mount=type=secret,id=aws_config \
    --mount=type=cache,id=mlci-models,target=/var/cache/mlci \
    AWS_SHARED_CREDENTIALS_FILE=/run/secrets/aws_credentials AWS_CONFIG_FILE=/run/secrets/aws_config \
    mlci models pull

# 5. the service's own requirements
COPY requirements.txt ./
RUN --mount=type=bind,from=service-wheels,source=/wheels,target=/wheels/service \
    --mount=type=bind,from=mlci-deps,source=/wheels,target=/wheels/mlci \
    pip install --quiet --no-index --no-cache-dir --find-links /wheels/service --find-links /wheels/mlci \
        -r requirements.txt

# 6. code (keep .dockerignore tight: .git, .mlci, the model files (`models/*`, keeping `!models/*.dvc`), DVC's
#    cache/tmp/config.local and other caches stay out)
COPY . .

# Change to your service's start command (ml-ci.yaml tests.acceptance.serve.command overrides it for tests).
CMD ["python3", "-m", "app"]
