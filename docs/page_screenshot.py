"""Take the README's picture of the page: serve a data directory on a loopback port, pick a
user of a city in headless Chromium, and save what it shows.

    python docs/page_screenshot.py DATA_DIR [--city 0] [--rank 30] [--out docs/page.png]

``--rank`` picks the city's n-th most active user (the page's picker lists them so), so the
plot is neither empty nor covered. Needs ``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import uvicorn
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from graphrec_pipeline.serving.http_api import create_app
from graphrec_pipeline_tests.browser import headless_chromium


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--city", default="0")
    parser.add_argument("--rank", type=int, default=30)
    parser.add_argument("--time-slot", default="evening")
    parser.add_argument("--out", default="docs/page.png")
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(args.data_dir), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    with headless_chromium(width=1300, height=1150) as browser:
        browser.get(f"http://127.0.0.1:{port}/?pick_city=1&city_id={args.city}")
        Select(browser.find_element(By.ID, "user")).select_by_index(args.rank)
        Select(browser.find_element(By.ID, "time_slot")).select_by_value(args.time_slot)
        browser.find_element(By.ID, "show").click()
        WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.ID, "places"))
        browser.save_screenshot(args.out)
    server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
