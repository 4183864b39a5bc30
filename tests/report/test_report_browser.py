"""Open the report in headless Chromium: no console messages, figures render, page is not blank."""

import shutil
import subprocess

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")]


def _chromium(url, tmp_path, *extra, timeout=90):
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _console_lines(stderr):
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


def _screenshot(path, tmp_path, size="1400,3000"):
    shot = tmp_path / "shot.png"
    res = _chromium(path.as_uri(), tmp_path, f"--screenshot={shot}", f"--window-size={size}")
    assert shot.is_file(), res.stderr[-2000:]
    return shot, res


def test_console_detector_catches_errors(tmp_path):
    """The check below can fail: a page that throws is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><p>x</p><script>throw new Error('boom')</script></body></html>")
    _, res = _screenshot(page, tmp_path, "400,300")
    assert any("boom" in ln for ln in _console_lines(res.stderr))


def test_report_renders_in_chromium(tmp_path, built_report):
    from PIL import Image

    run, out, _ = built_report
    shot, res = _screenshot(out, tmp_path)
    assert _console_lines(res.stderr) == []
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (3000, 1400)
    packed = (img[..., 0].astype(np.int32) << 16) | (img[..., 1].astype(np.int32) << 8) | img[..., 2]
    colours = np.unique(packed)
    assert len(colours) > 500, f"only {len(colours)} distinct colours: blank page?"
    # the untrained-weights banner (#b71c1c) is on screen
    banner = np.all(np.abs(img.astype(int) - [0xB7, 0x1C, 0x1C]) <= 3, axis=-1)
    assert banner.sum() > 20000
    # the parsed DOM holds every inline SVG figure
    dom = _chromium(out.as_uri(), tmp_path, "--dump-dom").stdout
    n_svg_files = len(list((run / "report" / "figures").glob("*.svg")))
    assert dom.count("<svg") == n_svg_files > 0
