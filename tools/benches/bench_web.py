"""Figures of the local server's web page, in headless Chromium (Debian's /usr/bin/chromium).

web.page_bytes: what the first load of the page transfers before any data: the HTML, its
  script and style, and uPlot (uncompressed; the page is served on 127.0.0.1 only).
web.render_50k_ms: from the click on a device with 50,000 stored values of one point to the
  chart painted (the query, the JSON, uPlot's draw); the median of 3 runs.
web.series_50k_bytes: the JSON of that series.
"""
import os
import statistics
import sys
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PAGE_FILES = ("", "static/app.js", "static/app.css", "vendor/uPlot.iife.min.js",
              "vendor/uPlot.min.css")


def _size(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return len(r.read())


def main():
    from tools.cdp import Chromium
    from tools.enos_server.server import EnosServer
    from tools.enos_server.webdriver import PageDriver, fill_points

    with tempfile.TemporaryDirectory() as tmp:
        db_path = os.path.join(tmp, "bench.sqlite")
        with EnosServer(db_path=db_path, port=0, dtls_port=None, log=None, web_port=0) as srv:
            fill_points(db_path, "MuGsF6W4", "15bBZlRknc", "temperature", 50000)
            url = srv.web.url
            print("web.page_bytes: %d B" % sum(_size(url + f) for f in PAGE_FILES))
            print("web.series_50k_bytes: %d B" % _size(
                url + "api/series?pk=MuGsF6W4&dk=15bBZlRknc&name=temperature"))
            with Chromium() as browser:
                drv = PageDriver(browser.new_page(), url)
                drv.open("devices")
                runs = [drv.show_points("MuGsF6W4/15bBZlRknc", timeout=60)["ms"]
                        for _ in range(3)]
            print("web.render_50k_ms: %d ms" % statistics.median(runs))


if __name__ == "__main__":
    main()
