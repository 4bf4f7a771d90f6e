# One image for workers and inference nodes (production shape; see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md pricing.toml models.toml ./
COPY schemas schemas
COPY sentinel sentinel
COPY inference inference
COPY streams streams
COPY sql sql
RUN pip install .
ENTRYPOINT ["sentinel"]
CMD ["worker"]
