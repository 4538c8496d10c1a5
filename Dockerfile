# opsbot, one replica per container: `docker build -t opsbot .` then
# `docker run -p 8080:8080 -v $PWD/config/opsbot.yaml:/etc/opsbot/opsbot.yaml:ro opsbot`
# (the config must set http.host: 0.0.0.0). `docker run opsbot migrate` applies migrations.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent agent
COPY bot bot
COPY integrations integrations
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 opsbot
COPY --from=build /install /usr/local
ENV OPSBOT_CONFIG=/etc/opsbot/opsbot.yaml \
    PYTHONUNBUFFERED=1
USER opsbot
WORKDIR /home/opsbot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["opsbot"]
CMD ["run"]
