"""`aigi serve`: the API with FastAPI's TestClient, the micro-batcher, a hostile-upload
corpus, a real server process over HTTP, and the page in a real browser."""
from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
from fastapi.testclient import TestClient  # noqa: E402

from aigi.serve.app import create_app  # noqa: E402
from aigi.serve.batcher import MicroBatcher  # noqa: E402
from aigi.serve.settings import ServeSettings  # noqa: E402

from .upload_corpus import corpus  # noqa: E402

LIMIT = 1 << 20  # 1 MB per image in these tests


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory) -> Path:
    from aigi.methods.univfd import UnivFDProbe

    folder = tmp_path_factory.mktemp("probe")
    from aigi.detectors.operating import operating_points

    det = UnivFDProbe("random:tiny-clip", embed_dim=16)
    det.threshold = 0.5
    det.metadata["operating_points"] = operating_points([0] * 20 + [1] * 20, list(np.linspace(0, 1, 40)), "a test")
    det.save(folder)
    return folder


def _png(seed: int, size=(40, 56)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(probe_dir):
    settings = ServeSettings(detector=str(probe_dir), max_image_bytes=LIMIT, max_request_bytes=8 * LIMIT,
                             max_images=8, max_wait_ms=5)
    with TestClient(create_app(settings)) as c:
        yield c


def test_health_readiness_and_what_is_loaded(client, probe_dir):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    info = client.get("/v1/detectors").json()
    assert info["detectors"][0]["method"] == "univfd" and info["detectors"][0]["threshold"] == 0.5
    assert info["limits"]["max_images"] == 8
    assert client.get("/docs").status_code == 200 and "/v1/detect" in client.get("/openapi.json").text


def test_detect_returns_what_detect_writes(client, probe_dir):
    import aigi

    files = [("files", (f"img{i}.png", _png(i), "image/png")) for i in range(3)]
    body = client.post("/v1/detect", files=files).json()
    det = aigi.load_detector(probe_dir)
    expected = [p.prob_fake for p in det.predict([_png(i) for i in range(3)])]
    assert [r["name"] for r in body["results"]] == ["img0.png", "img1.png", "img2.png"]
    assert [r["prob_fake"] for r in body["results"]] == pytest.approx(expected, abs=1e-6)
    for r in body["results"]:
        assert r["verdict"] in ("fake", "real") and r["threshold"] == 0.5 and r["detector"] == "univfd"
        assert r["error"] is None
    raw = client.post("/v1/detect", content=_png(0), headers={"content-type": "image/png", "x-filename": "a.png"})
    assert raw.status_code == 200 and raw.json()["results"][0]["prob_fake"] == pytest.approx(expected[0], abs=1e-6)


def test_a_mixed_request_scores_the_good_and_names_the_bad(client):
    files = [("files", ("good.png", _png(5), "image/png")), ("files", ("bad.jpg", b"hello", "image/jpeg"))]
    res = client.post("/v1/detect", files=files)
    assert res.status_code == 200
    good, bad = res.json()["results"]
    assert good["prob_fake"] is not None and bad["status"] == 415 and "bad.jpg" in bad["error"]


@pytest.mark.parametrize("name, data, expected", corpus(LIMIT), ids=[c[0] for c in corpus(LIMIT)])
def test_hostile_upload_corpus(client, name, data, expected):
    res = client.post("/v1/detect", files=[("files", (name, data, "image/jpeg"))])
    body = res.json()
    if expected == "score":
        assert res.status_code == 200, body
        assert 0 <= body["results"][0]["prob_fake"] <= 1
    else:
        assert res.status_code == expected, body
        assert body["error"]["status"] == expected and name in body["error"]["message"]
    assert client.get("/readyz").status_code == 200  # still up


def test_request_limits(client):
    too_many = [("files", (f"{i}.png", _png(i, (8, 8)), "image/png")) for i in range(9)]
    assert client.post("/v1/detect", files=too_many).status_code == 413
    huge = client.post("/v1/detect", content=b"\xff\xd8\xff" + bytes(9 * LIMIT), headers={"content-type": "image/jpeg"})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
    empty = client.post("/v1/detect", content=b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "no_image"
    metrics = client.get("/metrics").text
    assert 'aigi_requests_total{route="/v1/detect",status="413"}' in metrics
    assert "aigi_request_seconds_bucket" in metrics and "aigi_images_scored_total" in metrics


def test_api_key_is_required_when_set(probe_dir):
    app = create_app(ServeSettings(detector=str(probe_dir), api_key="s3cret"))
    with TestClient(app) as c:
        files = [("files", ("a.png", _png(1), "image/png"))]
        assert c.post("/v1/detect", files=files).status_code == 401
        assert c.post("/v1/detect", files=files, headers={"x-api-key": "wrong"}).status_code == 401
        assert c.post("/v1/detect", files=files, headers={"x-api-key": "s3cret"}).status_code == 200
        assert c.post("/v1/detect", files=files, headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200  # health stays open for load balancers


def test_an_ensemble_reports_each_expert(probe_dir, tmp_path):
    import aigi

    ens = aigi.ensemble({"one": probe_dir, "two": probe_dir}, out=tmp_path / "ens")
    with TestClient(create_app(ServeSettings(detector=str(tmp_path / "ens")))) as c:
        rec = c.post("/v1/detect", files=[("files", ("a.png", _png(2), "image/png"))]).json()["results"][0]
        info = c.get("/v1/detectors").json()["detectors"][0]
    assert info["experts"] == ["one", "two"] and info["backbone"] == "random:tiny-clip" and info["view"] == "resize"
    assert set(rec["experts"]) == {"one", "two"} and rec["detector"] == ens.name
    assert rec["prob_fake"] == pytest.approx(np.mean(list(rec["experts"].values())), abs=1e-6)


def test_concurrent_requests_share_batches():
    class Recorder:
        sizes: list[int] = []

        def predict(self, images, batch_size=16):
            self.sizes.append(len(images))
            return [len(images)] * len(images)

    async def run():
        rec = Recorder()
        batcher = MicroBatcher(rec, max_batch=4, max_wait_ms=50)
        await batcher.start()
        out = await asyncio.gather(*(batcher.score([Image.new("RGB", (4, 4))]) for _ in range(10)))
        await batcher.stop()
        return rec.sizes, out

    sizes, out = asyncio.run(run())
    assert sizes == [4, 4, 2] and [o[0] for o in out] == [4] * 8 + [2] * 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(probe_dir):
    """A real `aigi serve` process on a free loopback port."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aigi.cli", "serve", "--detector", str(probe_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from aigi.serve.ready import wait_ready

    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, seconds=60)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def test_a_real_server_process_over_http(server):
    import httpx

    res = httpx.post(server + "/v1/detect", files=[("files", ("a.png", _png(7), "image/png"))], timeout=60)
    assert res.status_code == 200 and res.json()["results"][0]["verdict"] in ("fake", "real")
    bad = httpx.post(server + "/v1/detect", content=b"not an image", headers={"content-type": "image/png"}, timeout=60)
    assert bad.status_code == 415
    assert httpx.get(server + "/readyz", timeout=5).status_code == 200


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_the_page_in_a_real_browser(server, probe_dir, tmp_path):
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    paths = []
    for i, name in enumerate(("beach.png", "street.png")):
        (tmp_path / name).write_bytes(_png(20 + i, (120, 160)))
        paths.append(str(tmp_path / name))
    browser = _browser()
    try:
        browser.get(server + "/")
        assert "Is this image AI-generated?" in browser.page_source
        browser.find_element(By.ID, "files").send_keys("\n".join(paths))
        WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".result")) == 2)
        cards = browser.find_elements(By.CSS_SELECTOR, ".result")
        verdicts = {c.find_element(By.CSS_SELECTOR, ".verdict").text for c in cards}
        assert verdicts <= {"Likely AI-generated", "Likely real"}
        fills = [c.find_element(By.CSS_SELECTOR, ".fill").value_of_css_property("width") for c in cards]
        assert all(float(w.rstrip("px")) > 0 for w in fills)
        WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element((By.ID, "status"), "2 of 2 scored"))
        assert all("threshold 50.0 %" in c.text for c in cards)
        # the stored operating points are offered; the next images are judged at the one chosen
        from selenium.webdriver.support.ui import Select

        import aigi
        from aigi.detectors.operating import threshold_for

        choice = Select(browser.find_element(By.ID, "budget"))
        assert [o.text for o in choice.options][1:] == [f"flagging at most {b} % of real photos" for b in ("5.0", "10.0", "20.0")]
        choice.select_by_value("0.05")
        browser.find_element(By.ID, "files").send_keys(paths[0])
        WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".result")) == 3)
        t = threshold_for(aigi.detector_info(probe_dir), "probe", max_fpr=0.05)
        newest = browser.find_elements(By.CSS_SELECTOR, ".result")[0]
        assert f"threshold {100 * t:.1f} %" in newest.text
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("AIGI_SCREENSHOT"):
            shutil.copy(shot, os.environ["AIGI_SCREENSHOT"])
    finally:
        browser.quit()


def test_the_service_scores_through_an_exported_graph(probe_dir, tmp_path):
    """aigi serve --runtime onnxruntime: the exported graph behind the same API, named in /v1/detectors;
    a runtime that cannot go with the precision is refused before the server starts."""
    pytest.importorskip("onnxruntime")
    import aigi
    from aigi.errors import InputError

    graph = aigi.export(probe_dir, tmp_path / "graph", format="onnx")
    with TestClient(create_app(ServeSettings(detector=str(graph), runtime="onnxruntime"))) as c:
        info = c.get("/v1/detectors").json()["detectors"][0]
        assert info["runtime"] == "onnxruntime" and info["precision"] == "fp32"
        body = c.post("/v1/detect", files=[("files", ("a.png", _png(3), "image/png"))]).json()
    expected = aigi.load_detector(probe_dir).predict([_png(3)])[0].prob_fake
    assert body["results"][0]["prob_fake"] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(InputError, match="--precision is for the torch runtime"):
        ServeSettings(detector=str(graph), runtime="onnxruntime", precision="bf16")


def test_waiting_for_the_service_names_why_it_never_became_ready():
    from aigi.serve.ready import wait_ready

    base = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    died = subprocess.Popen([sys.executable, "-c", "print('port in use')"], stdout=subprocess.PIPE, text=True)
    died.wait()
    with pytest.raises(RuntimeError, match="exited with 0 before it was ready: port in use"):
        wait_ready(base, died, seconds=30)
    with pytest.raises(RuntimeError, match="was not ready within 1 s"):
        wait_ready(base, seconds=1)
