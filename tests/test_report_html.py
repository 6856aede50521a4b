"""`snakemake --report` on a finished study, opened in headless Chromium: the accuracy table and
every figure must render (checked on the DOM; a screenshot of each view is left in tmp_path)."""

from __future__ import annotations

import base64
import os
import shutil

import pytest

from support.snakemake import TINY, TINY_STUDY, run_snakemake

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium = None
    else:
        selenium = True
    if not (selenium and CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI needs selenium and Debian's chromium + chromium-driver (.ci/run)")
        pytest.skip("headless Chromium (chromium, chromium-driver) or selenium not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # no network here: without the background-networking flags Chromium keeps dialling out
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def open_category(driver, url, name):
    """From the landing page, the category's result rows by their label."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.find_element(By.LINK_TEXT, name).click()
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    return {row.find_elements(By.TAG_NAME, "td")[0].text: row for row in rows}


def show(driver, row):
    """Click the row's view button (the first button of its last cell)."""
    from selenium.webdriver.common.by import By

    row.find_elements(By.TAG_NAME, "td")[-1].find_elements(By.TAG_NAME, "a")[0].click()


@pytest.mark.e2e
def test_report_html_renders_table_and_images(tiny_study, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    r = run_snakemake("--cores", "1", "--configfile", str(TINY), str(TINY_STUDY),
                      "--report", str(tmp_path / "report.html"), cwd=tiny_study)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    url = (tmp_path / "report.html").as_uri()
    browser.get(url)
    # the landing page: the workflow description with the study's design
    app = browser.find_element(By.ID, "app")
    assert "protocols online, offline" in app.text and "seeds 0, 1" in app.text
    # ... opening on the result: the headline figure, inlined (SVG) in the description
    headline = browser.find_element(By.CSS_SELECTOR, "#app #headline svg")
    assert headline.size["width"] > 300 and headline.size["height"] > 300
    assert "System Message" not in app.text  # the reStructuredText around it parsed cleanly
    browser.save_screenshot(str(tmp_path / "landing.png"))

    # Results: the summary page, shown in an iframe, holds the accuracy table and the FID
    rows = open_category(browser, url, "Results")
    assert set(rows) == {"accuracy table, FID and sampler",
                         "headline: top-1 per strategy and protocol"}
    show(browser, rows["accuracy table, FID and sampler"])
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    table = browser.find_element(By.ID, "accuracy")
    header = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert header == ["method", "none", "vanilla", "adainf", "random_init"]
    body = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert len(body) == 2 and body[0][0] == "simclr" and body[1][0] == "simclr − none"
    assert all(" ± " in cell or "identical" in cell for cell in body[0][1:4])  # 2 seeds
    assert body[0][4] == "–"  # random_init has no online probe
    assert body[1][1] == "baseline" and all("spread" in c or "identical" in c for c in body[1][2:4])
    # the page embeds its figures, the headline first
    assert browser.find_element(By.CSS_SELECTOR, "#headline img").get_attribute(
        "src").startswith("data:image/png;base64,")
    tables = browser.find_elements(By.TAG_NAME, "table")
    assert len(tables) == 3  # online, offline, the crop sweep
    assert "crop_min_scale=0.5" in tables[2].text
    assert "pixel" in browser.find_element(By.ID, "fid").text
    browser.switch_to.default_content()
    browser.save_screenshot(str(tmp_path / "results.png"))

    # every figure is a PNG that the browser decoded
    expected = {"Samples": {"real vs generated", "generated images by quality score"},
                "Training": {"pretraining loss", "online probe accuracy"},
                "Sweeps": {"adainf_crop_min_scale"}}
    for category, labels in expected.items():
        rows = open_category(browser, url, category)
        assert set(rows) == labels
        for label, row in rows.items():
            show(browser, row)
            img = WebDriverWait(browser, 5).until(
                lambda d: d.find_element(By.CSS_SELECTOR, "img[src^='data:image/png']"))
            WebDriverWait(browser, 5).until(
                lambda d: d.execute_script("return arguments[0].complete", img))
            width, height = browser.execute_script(
                "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
            assert width > 100 and height > 100, label
            assert base64.b64decode(img.get_attribute("src").split(",", 1)[1])[:4] == b"\x89PNG"
            browser.save_screenshot(str(tmp_path / f"{label}.png"))
