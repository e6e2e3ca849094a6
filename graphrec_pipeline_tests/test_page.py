"""The page at ``/``: what it shows is what the recommender answers, its errors carry the
JSON routes' status codes, and a real browser can pick a user and read the answer."""

import os
import re
import shutil
from html import unescape
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from graphrec_pipeline.serving.http_api import create_app
from graphrec_pipeline.serving.page import active_users, plot_positions
from graphrec_pipeline_tests.browser import find_chromium, headless_chromium
from graphrec_pipeline_tests.conftest import ThreadServer

NAME = re.compile(r"<td class='name'>([^<]*)</td>")


@pytest.fixture(scope="module")
def page(served, tmp_path_factory):
    root = tmp_path_factory.mktemp("page") / "data"
    shutil.copytree(served["data"].root, root)
    with ThreadServer(create_app(str(root), poll_seconds=0.1)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        yield {"url": server.url, "client": client, "rec": served["recommender"]}


def _tables(html: str) -> tuple[list[str], list[str]]:
    places, _, people = html.partition('id="people"')
    return [unescape(n) for n in NAME.findall(places)], [unescape(n) for n in NAME.findall(people)]


def test_the_page_shows_what_the_recommender_answers(page):
    rec = page["rec"]
    user = int(active_users(rec, 1)[4])
    got = page["client"].get("/", params={"city_id": 1, "user_id": user, "time_slot": "evening"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")
    places, people = _tables(got.text)
    assert places == [p.name for p in rec.recommend_places(user, k=10, city_id=1, time_slot="evening")]
    assert people == [p.user_key for p in rec.recommend_people(user, k=5)]
    assert got.text.count('class="recommended"') == 10 and rec.release in got.text
    by_key = page["client"].get("/", params={"user_key": str(user), "city_id": 1, "time_slot": "evening"})
    assert _tables(by_key.text) == (places, people)


@pytest.mark.parametrize("params, status, message", [
    ({"user_id": 10**6}, 404, "unknown user id 1000000"),
    ({"user_key": "nobody"}, 404, "unknown user key 'nobody'"),
    ({"user_id": "seven"}, 400, "user_id: expected an integer, got 'seven'"),
    ({"user_id": 1, "city_id": 99}, 404, "unknown city id 99"),
    ({"user_id": 1, "time_slot": "brunch"}, 400, "invalid time slot 'brunch'"),
])
def test_the_page_names_what_is_wrong_with_the_json_routes_status(page, params, status, message):
    got = page["client"].get("/", params=params)
    assert got.status_code == status and message in unescape(got.text) and 'id="places"' not in got.text


def test_without_a_release_the_page_is_a_503_naming_what_to_materialize(tmp_path):
    (tmp_path / "data").mkdir()
    with ThreadServer(create_app(str(tmp_path / "data"), poll_seconds=0.1)) as server:
        got = httpx.get(server.url + "/", timeout=30)
    assert got.status_code == 503 and "materialize" in got.text and str(tmp_path) not in got.text


def test_show_users_lists_the_city_s_most_active_users_and_drops_the_old_pick(page):
    rec = page["rec"]
    listed = active_users(rec, 2)
    w = rec.world
    visits = np.bincount(w.visited_keys // w.n_places, minlength=w.n_users)
    others = np.setdiff1d(np.flatnonzero(w.user_city == 2), listed)
    assert (w.user_city[listed] == 2).all() and (np.diff(visits[listed]) <= 0).all()
    assert len(others) == 0 or visits[others].max() <= visits[listed].min()
    got = page["client"].get("/", params={"city_id": 2, "user_id": 5, "pick_city": 1}).text
    assert 'id="places"' not in got  # the city changed: the user of the old city is not answered
    assert [int(u) for u in re.findall(r'<option value="(\d+)">', got.split('id="user"')[1].split("</select>")[0])] \
        == listed.tolist()


def test_plot_positions_follow_coordinates_else_the_neighbourhood_grid():
    places = np.arange(6)
    hoods = np.array([0, 0, 1, 2, 3, 3])
    grid = SimpleNamespace(world=SimpleNamespace(place_coords=None, place_neighborhood=hoods))
    xy, axes = plot_positions(grid, places)
    cell = np.floor(xy * 2).astype(int)  # 4 neighbourhoods: a 2 x 2 grid
    assert "grid" in axes and (cell[:, 0] == hoods % 2).all() and (cell[:, 1] == hoods // 2).all()
    lat = np.array([38.70, 38.71, 38.75, 38.72, 38.80, 38.69])
    lon = np.array([-9.10, -9.20, -9.15, -9.05, -9.12, -9.18])
    mapped = SimpleNamespace(world=SimpleNamespace(place_coords=np.stack([lat, lon], 1), place_neighborhood=hoods))
    xy, axes = plot_positions(mapped, places)
    assert axes == "longitude, latitude" and (xy >= 0).all() and (xy <= 1).all()
    assert (np.argsort(xy[:, 0]) == np.argsort(lon)).all() and (np.argsort(xy[:, 1]) == np.argsort(lat)).all()
    mapped.world.place_coords[2] = np.nan  # a place without coordinates: the grid for all
    assert "grid" in plot_positions(mapped, places)[1]


def test_a_browser_picks_a_user_and_reads_the_answer(page, tmp_path):
    """Headless Chromium: choose a city, list its users, pick one, read the rendered tables."""
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    rec = page["rec"]
    with headless_chromium() as browser:
        browser.get(page["url"] + "/")
        Select(browser.find_element(By.ID, "city")).select_by_value("1")
        browser.find_element(By.NAME, "pick_city").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "city").get_attribute("value") == "1")
        users = Select(browser.find_element(By.ID, "user"))
        users.select_by_index(3)  # the third most active user (index 0 is "-")
        user = int(users.first_selected_option.get_attribute("value"))
        browser.find_element(By.ID, "show").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "places"))
        names = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#places td.name")]
        people = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#people td.name")]
        marks = browser.find_elements(By.CSS_SELECTOR, "#plot g.recommended")
        visited = browser.find_elements(By.CSS_SELECTOR, "#plot circle.visited")
        assert browser.save_screenshot(str(tmp_path / "page.png"))
    assert user == int(active_users(rec, 1)[2])
    assert names == [p.name for p in rec.recommend_places(user, k=10, city_id=1)]
    assert people == [p.user_key for p in rec.recommend_people(user, k=5)]
    in_city = np.intersect1d(rec.world.visited_by(user), np.flatnonzero(rec.world.place_city == 1))
    assert len(marks) == 10 and len(visited) == len(in_city) > 0
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
