# One image for workers and inference nodes (production shape; see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md pricing.toml models.toml rubric.toml ./
COPY contracts contracts
COPY config config
COPY objects objects
COPY inference inference
COPY sentinel sentinel
COPY worker worker
COPY warehouse warehouse
COPY reports reports
COPY guard guard
COPY devstack devstack
COPY cli cli
COPY sql sql
RUN pip install .
ENTRYPOINT ["sentinel"]
CMD ["worker"]
