# One image for every mode: `smsgw api`, `smsgw worker --queues ...`, `smsgw smpp`,
# `smsgw migrate`.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/smsgw
# The locked dependencies first (their own layer, reused while the lock is unchanged),
# then the project itself with the build backend the lock pinned.
COPY requirements.txt ./
RUN pip install --require-hashes -r requirements.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY core ./core
COPY db ./db
COPY jobs ./jobs
COPY providers ./providers
COPY smsgw ./smsgw
COPY smpp_server ./smpp_server
RUN pip install --no-deps --no-build-isolation . && useradd --system --uid 10001 smsgw
USER smsgw
EXPOSE 8000 2775
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health').status == 200 else 1)"
CMD ["smsgw", "api", "--host", "0.0.0.0", "--port", "8000"]
