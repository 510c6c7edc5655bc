"""The FastAPI application: ``/v1`` API, health, metrics and the web page.

Every refusal is JSON with a 4xx status and a message naming the file and the
cause (``{"error": {"status", "code", "message"}}``); the service never fetches
a URL, binds to loopback unless told otherwise, and serves its page's assets
itself, so it works offline.
"""
from __future__ import annotations

import asyncio
import hmac
import html
import os
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from PIL import Image

from ..detectors.operating import KEY as OPERATING_KEY
from ..detectors.operating import threshold_for
from ..errors import InputError
from .batcher import MicroBatcher
from .metrics import Metrics
from .settings import ServeSettings
from .uploads import UploadError, decode, uploads_from_request

PAGE_ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message}, **extra}, status_code=status)


def _record(name: str, pred, detector, threshold: float) -> dict[str, Any]:
    """What ``aigi detect --out`` writes, plus the threshold, the detector and, for an ensemble, each expert."""
    experts = {k[2:]: v for k, v in pred.extra.items() if k.startswith("p_")}
    verdict = None if pred.prob_fake is None else ("fake" if pred.prob_fake >= threshold else "real")
    rec = {"name": name, "prob_fake": pred.prob_fake, "verdict": verdict, "threshold": threshold,
           "detector": detector.name, "error": pred.error}
    if experts:
        rec["experts"] = experts
    return rec


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"threshold '{text}' is not a number") from None


def _summary(detector, label: str) -> dict[str, Any]:
    meta = detector.metadata or {}
    out = {"name": label, "method": detector.name, "backbone": detector.backbone_spec,
           "threshold": detector.threshold, "calibration": detector.calibration, "view": str(detector.view),
           "precision": detector.precision, "runtime": detector.runner.name if detector.runner is not None else "torch",
           "trained_on": meta.get("trained_on"), "validated_on": meta.get("validated_on"),
           "operating_points": meta.get(OPERATING_KEY), "model_card": "/model-card"}
    from ..detectors.ensemble import EnsembleDetector

    if isinstance(detector, EnsembleDetector):  # what its members run on and see, each named once
        members = detector.members.values()
        out["experts"] = list(detector.member_names)
        out["backbone"] = ", ".join(dict.fromkeys(m.backbone_spec for m in members))
        out["view"] = ", ".join(dict.fromkeys(str(m.view) for m in members))
    return out


def create_app(settings: ServeSettings | None = None, detector=None) -> FastAPI:
    """The application; ``detector`` may be given loaded (tests), else it loads at start-up. With
    no settings (``uvicorn --factory aigi.serve.app:create_app``) they come from the environment:
    ``AIGI_DETECTOR``, ``AIGI_API_KEY``."""
    settings = settings or ServeSettings.with_environment(detector=os.environ.get("AIGI_DETECTOR") or None)
    metrics = Metrics()
    state: dict[str, Any] = {"ready": False, "detector": detector, "batcher": None,
                             "label": settings.detector or "default"}

    @asynccontextmanager
    async def lifespan(app):
        det = state["detector"]
        if det is None:
            from ..detectors.store import load_detector

            det = await asyncio.to_thread(load_detector, settings.detector, settings.device, settings.precision,
                                          settings.runtime)
            state["detector"] = det
        if settings.threshold is not None:
            det.threshold = settings.threshold
        await asyncio.to_thread(det.predict, [Image.new("RGB", (64, 64), (128, 128, 128))])  # warm-up
        batcher = MicroBatcher(det, settings.max_batch, settings.max_wait_ms, metrics)
        await batcher.start()
        state["batcher"], state["ready"] = batcher, True
        try:
            yield
        finally:
            state["ready"] = False
            await batcher.stop()

    app = FastAPI(title="aigi", version="1", lifespan=lifespan,
                  description="Detect AI-generated images. POST images to /v1/detect; see /v1/detectors for what "
                              "is loaded. A score is a probability from one detector, not proof.")
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["*"])

    @app.middleware("http")
    async def measure(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.request(getattr(route, "path", "other"), response.status_code, time.perf_counter() - t0)
        return response

    @app.exception_handler(UploadError)
    async def refused(request: Request, exc: UploadError):
        metrics.error(exc.code)
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):  # a bug, still answered in JSON, and the server stays up
        return _error(500, "internal", f"internal error ({type(exc).__name__}); the request was not scored")

    def unauthorised(request: Request) -> JSONResponse | None:
        """The 401 for a request without the key, when one is set; None when it may pass."""
        if not settings.api_key:
            return None
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if hmac.compare_digest(given.encode(), settings.api_key.encode()):
            return None
        return _error(401, "unauthorised", "missing or wrong API key (send X-API-Key or Authorization: Bearer)")

    @app.post("/v1/detect", summary="Score images: multipart files, or one image as the raw body")
    async def detect(request: Request):
        if (refusal := unauthorised(request)) is not None:
            return refusal
        if not state["ready"]:
            return _error(503, "not_ready", "the detector is still loading; retry shortly")
        det = state["detector"]
        try:  # ?threshold= or ?max_fpr=: this request's verdicts only
            threshold = threshold_for({"threshold": det.threshold, "metadata": det.metadata}, state["label"],
                                      _number(request.query_params.get("threshold")),
                                      request.query_params.get("max_fpr"))
        except InputError as exc:
            return _error(400, "bad_threshold", str(exc))
        uploads = await uploads_from_request(request, settings)
        decoded = await asyncio.gather(*(asyncio.to_thread(decode, u, settings) for u in uploads))
        good = [(i, img) for i, img in enumerate(decoded) if not isinstance(img, UploadError)]
        try:
            preds = await asyncio.wait_for(state["batcher"].score([img for _, img in good]), settings.timeout_s)
        except asyncio.TimeoutError:
            return _error(503, "timeout", f"not scored within {settings.timeout_s:g} s; the service is overloaded")
        results: list[dict[str, Any]] = [{}] * len(uploads)
        for (i, _), pred in zip(good, preds):
            results[i] = _record(uploads[i].name, pred, det, threshold)
        for i, item in enumerate(decoded):
            if isinstance(item, UploadError):
                metrics.error(item.code)
                results[i] = {"name": uploads[i].name, "prob_fake": None, "verdict": None,
                              "threshold": threshold, "detector": det.name, "error": item.message,
                              "status": item.status}
        if not good:  # nothing could be scored: the request itself is refused with the first cause
            first = next(d for d in decoded if isinstance(d, UploadError))
            return _error(first.status, first.code, first.message, results=results)
        return {"detector": state["label"], "threshold": threshold, "results": results}

    @app.get("/v1/detectors", summary="What is loaded: method, backbone, threshold, model card summary")
    async def detectors(request: Request):
        if (refusal := unauthorised(request)) is not None:
            return refusal
        if state["detector"] is None:
            return _error(503, "not_ready", "the detector is still loading; retry shortly")
        return {"detectors": [_summary(state["detector"], state["label"])],
                "limits": {"max_images": settings.max_images, "max_image_bytes": settings.max_image_bytes,
                           "max_request_bytes": settings.max_request_bytes}}

    @app.get("/healthz", summary="The process is alive")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="The weights are loaded and warmed up")
    async def readyz():
        if not state["ready"]:
            return _error(503, "not_ready", "loading")
        return {"status": "ready", "detector": state["label"]}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(_page("index.html", "is this image AI-generated?", '<a href="/model-card">Model card</a>',
                                  '<script src="/static/app.js"></script>\n'))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        if name not in PAGE_ASSETS:
            return _error(404, "not_found", f"no asset {name!r}")
        return Response(_asset(name), media_type=PAGE_ASSETS[name], headers={"Cache-Control": "max-age=3600"})

    @app.get("/model-card", response_class=HTMLResponse, include_in_schema=False)
    async def model_card():
        det = state["detector"]
        if det is None:
            return HTMLResponse("<p>loading…</p>", status_code=503)
        rows = "".join(f"<tr><th>{html.escape(k.replace('_', ' '))}</th>"
                       f"<td>{html.escape(f'{v:.4f}' if isinstance(v, float) else str(v))}</td></tr>"
                       for k, v in _summary(det, state["label"]).items() if k != "model_card" and v is not None)
        return HTMLResponse(_page("model-card.html", "model card", '<a href="/">Score images</a>').replace("{{rows}}", rows))

    app.state.settings, app.state.metrics, app.state.service = settings, metrics, state
    return app


def _asset(name: str) -> str:
    return resources.files("aigi.serve").joinpath("page", name).read_text(encoding="utf-8")


def _page(name: str, title: str, nav: str, scripts: str = "") -> str:
    """A page: its <main> from ``name`` inside the one shared layout (head, header, footer)."""
    return (_asset("layout.html").replace("{{title}}", title).replace("{{nav}}", nav + '<a href="/docs">API</a>')
            .replace("{{scripts}}", scripts).replace("{{body}}", _asset(name).rstrip("\n")))


def serve(settings: ServeSettings) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=5)
