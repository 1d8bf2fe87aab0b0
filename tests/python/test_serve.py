"""`psearch serve` as its users meet it: the JSON API against `psearch search` on the same
gallery, its errors (malformed JSON, a non-image, an oversized body, unknown ids, a box
outside the image), 32 concurrent searches while `psearch index` extends the gallery,
loopback-only binding, and the web page in a real headless Chromium (selenium): the page
loads, a person is picked in a gallery frame and searched, the results render, a hit is
clicked to search from it, an uploaded image gets a drawn box; screenshots are written.
"""
import base64
import concurrent.futures
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_gallery_cli import EVERY, index, search  # noqa: E402
from test_pretrained_cli import DETECTOR, VTEST  # noqa: E402
from test_train_cli import BINARY  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not DETECTOR.is_file(), reason=f"{DETECTOR} not converted (scripts/setup.sh)"),
    pytest.mark.skipif(not VTEST.is_file(), reason=f"{VTEST} missing (apt install opencv-doc)"),
]
cv2 = pytest.importorskip("cv2")
SCREENSHOTS = pathlib.Path(os.environ.get("PSEARCH_SCREENSHOTS", "")) if os.environ.get("PSEARCH_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    path = tmp_path_factory.mktemp("served") / "vtest.db"
    out = index(path, f"walkway={VTEST}", extra=("--every", EVERY, "--batch-size", "4"))
    assert out.returncode == 0, out.stderr
    return path


@pytest.fixture(scope="module")
def server(gallery):
    process = subprocess.Popen([str(BINARY), "serve", "--gallery", str(gallery), "--port", "0", "--threads", "2",
                                "--max-upload-mb", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert "serving" in line, process.stderr.read() if process.poll() is not None else line
    url = line.split(" on ")[1].split(" ")[0]
    yield url
    process.terminate()
    process.wait(timeout=10)


def call(url, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path.lstrip("/"), data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as res:
            payload = res.read()
            kind = res.headers.get("Content-Type", "")
            return res.status, (json.loads(payload) if "json" in kind else payload)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_search_equals_the_cli(server, gallery):
    status, health = call(server, "/api/health")
    assert status == 200 and health["status"] == "ok" and health["detections"] > 0
    status, stats = call(server, "/api/stats")
    assert stats["model"]["type"] == "separate" and stats["cameras"]["walkway"] == health["detections"]
    cli = search(gallery, "--id", "3", "--top-k", "7", "--from", "10")["hits"]
    status, api = call(server, "/api/search", {"id": 3, "top_k": 7, "from": 10})
    assert status == 200
    assert [h["id"] for h in api["hits"]] == [h["id"] for h in cli]
    assert [round(h["similarity"], 5) for h in api["hits"]] == [round(h["similarity"], 5) for h in cli]
    status, jpeg = call(server, f"/api/detections/{cli[0]['id']}/crop.jpg")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"


def test_api_search_from_an_uploaded_image(server, gallery, tmp_path):
    status, frames = call(server, "/api/sources/1/frames")
    frame, _ = frames[0]
    status, people = call(server, f"/api/sources/1/frames/{frame}")
    status, jpeg = call(server, f"/api/sources/1/frames/{frame}.jpg")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    image = base64.b64encode(jpeg).decode()
    status, result = call(server, "/api/search", {"image": image, "box": people[0]["box"], "top_k": 1})
    assert status == 200, result
    assert result["hits"][0]["id"] == people[0]["id"] and result["hits"][0]["similarity"] > 0.95  # JPEG-recompressed
    status, same = call(server, "/api/search", {"source": 1, "frame": frame, "box": people[0]["box"], "top_k": 1})
    assert same["hits"][0]["id"] == people[0]["id"] and same["hits"][0]["similarity"] > 0.999


def test_api_errors_are_one_line_json(server):
    cases = [
        (call(server, "/api/search", raw=b"{not json"), 400, "not JSON"),
        (call(server, "/api/search", {"image": base64.b64encode(b"GIF? no, text").decode(), "box": [0, 0, 9, 9]}), 400,
         "not an image"),
        (call(server, "/api/search", raw=b"x" * (2 << 20)), 413, "1 MB limit"),
        (call(server, "/api/search", {"id": 10 ** 9}), 404, "no detection"),
        (call(server, "/api/search", {"source": 1, "frame": 0, "box": [5000, 10, 5100, 200]}), 400, "outside"),
        (call(server, "/api/search", {"id": 1, "top_k": 0}), 400, "top_k"),
        (call(server, "/api/search", {"top_k": 5}), 400, "give \"id\""),
        (call(server, "/api/detections/999999/crop.jpg"), 404, "no detection"),
        (call(server, "/api/nothing"), 404, "no such route"),
    ]
    for (status, body), want_status, fragment in cases:
        assert status == want_status, (body, want_status)
        assert fragment in body["error"] and "\n" not in body["error"], body
    assert call(server, "/api/health")[0] == 200  # still serving


def test_binds_to_loopback_only(server):
    assert server.startswith("http://127.0.0.1:")
    port = int(server.rstrip("/").rsplit(":", 1)[1])
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    outside = [a for a in addresses if not a.startswith("127.")]
    if not outside:
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(OSError):
        socket.create_connection((outside[0], port), timeout=2)


def test_32_concurrent_searches_while_indexing_continues(server, gallery, tmp_path):
    second = tmp_path / "entrance.avi"
    second.symlink_to(VTEST)  # another path: another camera's source
    indexer = subprocess.Popen([str(BINARY), "index", "--gallery", str(gallery), "--no-progress", "--threads", "1",
                                "--every", EVERY, "--batch-size", "1", f"entrance={second}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(lambda i: call(server, "/api/search", {"id": 1 + i % 20, "top_k": 5}), range(64)))
        assert all(status == 200 and len(body["hits"]) == 5 for status, body in results), results[:3]
    finally:
        out, err = indexer.communicate(timeout=600)
    assert indexer.returncode == 0, err
    status, body = call(server, "/api/search", {"id": 1, "top_k": 5, "cameras": ["entrance"]})
    assert status == 200 and body["hits"] and all(h["camera"] == "entrance" for h in body["hits"])


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def screenshot(driver, tmp_path, name):
    path = (SCREENSHOTS or tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def test_web_page_search_and_click_through(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(server)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert "people in" in browser.find_element(By.ID, "summary").text
    browser.find_element(By.ID, "search").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#hits .hit")) > 0)
    hits = browser.find_elements(By.CSS_SELECTOR, "#hits .hit")
    assert len(hits) == 24
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#hits img')].every(i => i.complete && i.naturalWidth > 0)"))
    screenshot(browser, tmp_path, "serve_results.png")
    clicked = hits[2].get_attribute("data-id")
    hits[2].click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "results-title"), f"gallery detection {clicked}"))
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")


def test_web_page_upload_and_draw_a_box(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    status, frames = call(server, "/api/sources/1/frames")
    frame = frames[0][0]
    _, people = call(server, f"/api/sources/1/frames/{frame}")
    _, jpeg = call(server, f"/api/sources/1/frames/{frame}.jpg")
    upload = tmp_path / "upload.jpg"
    upload.write_bytes(jpeg)

    wait = WebDriverWait(browser, 60)
    browser.get(server)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    browser.find_element(By.ID, "tab-upload").click()
    browser.find_element(By.ID, "upload").send_keys(str(upload))
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "drag a box"))
    canvas = browser.find_element(By.ID, "canvas")
    scale = canvas.size["width"] / 768.0  # vtest frames are 768 pixels wide
    x1, y1, x2, y2 = people[0]["box"]
    w, h = canvas.size["width"], canvas.size["height"]
    # selenium offsets are from the element's centre
    ActionChains(browser).move_to_element_with_offset(canvas, x1 * scale - w / 2, y1 * scale - h / 2) \
        .click_and_hold().move_by_offset((x2 - x1) * scale / 2, (y2 - y1) * scale / 2) \
        .move_by_offset((x2 - x1) * scale / 2, (y2 - y1) * scale / 2).release().perform()
    browser.find_element(By.ID, "search").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "results-title"), "uploaded image"))
    first = browser.find_elements(By.CSS_SELECTOR, "#hits .hit")[0]
    # The drawn box finds that person first (or the same frame of the entrance copy that
    # the concurrency test indexed, which holds the same pixels).
    assert f"frame {frame}" in first.text
    assert float(first.find_element(By.CLASS_NAME, "sim").text.split()[-1]) > 0.9
    screenshot(browser, tmp_path, "serve_upload.png")
