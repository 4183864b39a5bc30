"""The demo's report in headless Chromium, offline: findings first, an atom card, an interactive map.

The page is loaded with the network switched off and every request recorded; opening a card and
an interactive surface map, then moving its threshold slider, must raise no console error,
change the drawn brain, and fetch nothing but the file itself.
"""

import io
import time

import numpy as np
import pandas as pd
import pytest
from chromium_cdp import CHROMIUM, Chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")]

LOCAL = ("file:", "data:", "blob:", "about:")


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _errors(browser):
    return [t for level, t in browser.console if level in ("error", "assert")] + browser.exceptions


def test_detectors_catch_errors_and_requests(tmp_path):
    """The checks below can fail: a thrown error and a request to a server are both caught."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="http://vlmbrain.invalid/x.png">'
                    "<script>console.error('bad'); throw new Error('boom')</script></body></html>")
    with Chromium(400, 300) as b:
        b.offline()
        b.goto(page.as_uri())
        time.sleep(0.5)
        b._pump(0.5)
        assert any("boom" in e for e in b.exceptions)
        assert any("bad" in e for e in _errors(b))
        assert any(u.startswith("http://vlmbrain.invalid") for u in b.requests)


def test_report_offline_summary_card_and_map(demo_run):
    from vlmbrain.report.sections.atoms import card_id

    run, _ = demo_run
    url = (run / "report" / "index.html").as_uri()
    rec = pd.read_csv(run / "demo" / "recovery_by_branch.tsv", sep="\t", keep_default_na=False)
    best = rec[rec["recovered"].astype(str) == "True"].iloc[0]
    cid = card_id(best["model"], best["branch"], int(best["atom"]))
    with Chromium(1400, 1000) as b:
        b.offline()
        b.goto(url)
        # findings first: the first framed section, right under the header and the banner
        sections = b.eval("[...document.querySelectorAll('main > section')].map(s => s.id)")
        assert sections[0] == "summary" and sections[-3:] == ["provenance", "parameters", "versions"]
        assert b.eval("document.querySelector('#summary table.summary a[href^=\"#atom-\"]') !== null")
        # one atom card: its chip opens it, every other card stays hidden
        b.eval(f"document.querySelector('a.atom-chip[href=\"#{cid}\"]').click()")
        b.wait_js(f"getComputedStyle(document.getElementById('{cid}')).display === 'block'", 10)
        shown = b.eval("[...document.querySelectorAll('.atom-card')].filter(c => getComputedStyle(c).display "
                       "!== 'none').map(c => c.id)")
        assert shown == [cid]
        assert b.eval(f"document.querySelectorAll('#{cid} .moment .frame:not(.noframe)').length") > 0
        # its interactive map
        b.eval(f"document.querySelector('#{cid} .sv-open').click()")
        b.wait_js(f"document.querySelector('#{cid} .sv').getAttribute('data-state') === 'open'", 120)
        rect = b.eval(f"(() => {{ const p = document.querySelector('#{cid} .sv-plot'); p.scrollIntoView(); "
                      "const r = p.getBoundingClientRect(); "
                      "return {x: r.x, y: r.y + window.scrollY, width: r.width, height: r.height}; })()")
        time.sleep(1.0)
        # hovering names the grayordinate, its network and its value
        view = b.eval(f"(() => {{ const r = document.querySelector('#{cid} .sv-plot').getBoundingClientRect(); "
                      "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for dx, dy in ((-60, -60), (60, -60), (-90, 0), (90, 0), (-60, 60), (60, 60)):  # on either hemisphere
            b.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": view[0] + dx, "y": view[1] + dy},
                   session=True)
            time.sleep(0.4)
            if b.eval(f"document.querySelector('#{cid} .sv-readout').textContent").startswith("grayordinate "):
                break
        readout = b.eval(f"document.querySelector('#{cid} .sv-readout').textContent")
        assert readout.startswith("grayordinate ") and " · network " in readout and " · β " in readout, readout
        b.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 2, "y": 2}, session=True)
        time.sleep(1.0)
        before = _pixels(b.screenshot(rect))
        assert len(np.unique(before.reshape(-1, 3), axis=0)) > 50, "the brain is not drawn"
        # the threshold slider hides the weaker half of the map
        label = b.eval(f"document.querySelector('#{cid} .sv-threshold-value').textContent")
        b.eval(f"(() => {{ const s = document.querySelector('#{cid} .sv-threshold'); "
               "s.value = String(parseFloat(s.max) * 0.5); s.dispatchEvent(new Event('input', {bubbles: true})); })()")
        time.sleep(1.5)
        after = _pixels(b.screenshot(rect))
        changed = np.mean(np.any(before != after, axis=-1))
        assert changed > 0.002, f"the slider changed {changed:.4%} of the map's pixels"
        assert b.eval(f"document.querySelector('#{cid} .sv-threshold-value').textContent") != label
        b._pump(0.5)
        assert _errors(b) == []
        fetched = [u for u in b.requests if not u.startswith(LOCAL)]
        assert fetched == [], fetched
        assert b.requests[0] == url
