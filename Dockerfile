# citypulse: the ingest service (and every other citypulse command) as a small non-root image.
# The build stage makes the same wheel CI installs; the runtime stage installs only that wheel.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY processors processors
COPY simulators simulators
COPY dashboards dashboards
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home citypulse \
    && install -d -o citypulse -g citypulse /citypulse-tokens
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY deploy/ingest/entrypoint.sh /usr/local/bin/citypulse-entrypoint
USER citypulse
WORKDIR /data
ENV CITYPULSE_SPOOL_DIR=/data/spool \
    CITYPULSE_DETECTOR_STATE=/data/citypulse-detectors.npz \
    PYTHONUNBUFFERED=1
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/health', timeout=4).status != 200)"]
ENTRYPOINT ["/bin/sh", "/usr/local/bin/citypulse-entrypoint"]
CMD ["citypulse", "ingest"]
