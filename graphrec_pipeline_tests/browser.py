"""Headless Chromium for the page's tests: Debian's ``chromium`` driven through its
``chromedriver`` with Selenium (``apt-get install -y chromium chromium-driver``; ``.ci/run``
installs them when missing). Nothing is downloaded: both paths are given to Selenium."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"


def find_chromium() -> tuple[str, str] | None:
    """The browser's and the driver's paths, or None when either is missing."""
    browser = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver = shutil.which(CHROMEDRIVER)
    return (browser, driver) if browser and driver else None


@contextmanager
def headless_chromium(width: int = 1300, height: int = 1000):
    """A Selenium WebDriver on headless Chromium; raises when Chromium is not installed."""
    found = find_chromium()
    if found is None:
        raise RuntimeError("headless Chromium needs `apt-get install -y chromium chromium-driver`")
    browser, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path, log_output=os.devnull), options=options)
    try:
        yield driver
    finally:
        driver.quit()
