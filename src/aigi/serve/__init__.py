"""``aigi serve``: the detectors behind an HTTP API and a web page (``pip install "aigi[serve]"``).

- :mod:`.settings`: what the service may be told (limits, key, batching);
- :mod:`.batcher`: concurrent requests gathered into one batched forward pass;
- :mod:`.uploads`: reading uploads within limits, sniffing their type, clear 4xx errors;
- :mod:`.metrics`: Prometheus counters and a latency histogram;
- :mod:`.app`: the FastAPI application, the routes and the page in ``page/``.
"""
