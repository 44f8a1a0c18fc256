# The scoring service image. Build: docker build -t nba .
# Run:   docker run -p 8000:8000 -v $PWD/data:/app/data -v $PWD/mlflow.db:/app/mlflow.db \
#          -v $PWD/mlruns:/app/mlruns -e NBA_STATE_URL=postgresql://nba@db/nba \
#          -e NBA_API_KEYS_FILE=/run/secrets/nba-keys nba
FROM python:3.11-slim
# nginx-light: `nba serve` starts it in front of gunicorn (docs/operations.md)

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 nginx-light \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY features ./features
COPY decisioning ./decisioning
COPY training ./training
COPY service ./service
COPY state ./state
COPY reports ./reports
COPY nba ./nba
RUN pip install --no-cache-dir -c requirements.lock . \
    && useradd --create-home nba && mkdir -p data mlruns && chown -R nba /app
USER nba

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["nba", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
