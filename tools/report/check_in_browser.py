"""Opens a tokc HTML report in headless Chromium and fails on what a reader would see as broken.

    python3 tools/report/check_in_browser.py bench-out/report.html [--screenshot OUT.png] [--width 1400]

Needs Debian's `chromium` and `chromium-driver` and `pip install selenium` (tools/report/setup.sh installs them).
Checks, in a real browser with networking off:
  - no console message of level SEVERE (JavaScript errors, failed loads);
  - every <img> decoded (complete and naturalWidth > 0) and every inline <svg> laid out with a size;
  - the main table has rows, and clicking a column header sorts it (the inline script works);
  - nothing was fetched from the network (only data: and file: URLs in the performance log).
Writes a full-page screenshot when --screenshot is given. Exit status 1 on any failure, with the reasons.
"""
import argparse
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report")
    p.add_argument("--screenshot")
    p.add_argument("--width", type=int, default=1400)
    args = p.parse_args()
    path = os.path.abspath(args.report)
    if not os.path.isfile(path):
        sys.exit(f"no such report: {path}")

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={args.width},1000", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    problems = []
    try:
        driver.get("file://" + path)
        for entry in driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                problems.append(f"console: {entry.get('message')}")
        for entry in driver.get_log("performance"):
            message = entry.get("message", "")
            if '"Network.requestWillBeSent"' in message:
                for scheme in ("http://", "https://", "ws://"):
                    if f'"url":"{scheme}' in message:
                        problems.append(f"network request: {message[:200]}")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
        problems += [f"image did not load: {alt}" for alt in broken]
        images = driver.execute_script("return document.images.length")
        svgs = driver.execute_script(
            "return Array.from(document.querySelectorAll('svg')).map(s => s.getBoundingClientRect().width)")
        problems += ["an inline plot has no width" for w in svgs if w <= 0]
        rows = driver.find_elements(By.CSS_SELECTOR, "table#main tbody tr")
        if not rows:
            problems.append("the main table is empty")
        else:
            # Sorting: click the time column ("Prefill ms" of a LLaVA sweep, "Images/s" of a classifier
            # sweep) twice; the column's values must come out ascending, then descending. (Comparing first
            # cells is not enough: the first cell is the method's name, and several rows share it.)
            headers = driver.find_elements(By.XPATH, "//table[@id='main']//th[normalize-space()='Prefill ms' or normalize-space()='Images/s']")
            if not headers:
                sys.exit("the main table has neither a 'Prefill ms' nor an 'Images/s' column")
            header = headers[0]
            column = int(header.get_attribute("data-col")) + 1
            script = (f"return Array.from(document.querySelectorAll('table#main tbody tr td:nth-child({column})'))"
                      ".map(c => c.getAttribute('data-v')).filter(v => v !== null).map(parseFloat)")
            header.click()
            ascending = driver.execute_script(script)
            header.click()
            descending = driver.execute_script(script)
            if len(set(ascending)) > 1:
                if ascending != sorted(ascending) or descending != sorted(descending, reverse=True):
                    problems.append("clicking a column header did not sort the table "
                                    f"(after one click {ascending}, after two {descending})")
            header.click()
        for entry in driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                problems.append(f"console after sorting: {entry.get('message')}")
        if args.screenshot:
            driver.refresh()  # the table in its original order
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(args.width, min(max(height, 800), 16000))
            driver.save_screenshot(args.screenshot)
        print(f"{len(rows)} table rows, {images} images, {len(svgs)} plots, {len(problems)} problems")
    finally:
        driver.quit()
    for problem in problems:
        print("FAIL:", problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
