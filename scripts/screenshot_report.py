#!/usr/bin/env python3
"""Screenshot a report.html (or any local HTML page) with a headless Chromium/Chrome.

Usage:
    python scripts/screenshot_report.py RUN_DIR/report.html shot.png [--width 1280] [--height 2400]
    python scripts/screenshot_report.py RUN_DIR shot.png          # a run folder: its report.html

The browser is the first of $CHROME, chromium, chromium-browser, google-chrome,
google-chrome-stable, chrome, headless_shell found on the PATH (Debian/Ubuntu:
`apt-get install chromium`). Exit codes: 0 written, 1 the browser failed, 3 no
browser found. The page needs no network and no JavaScript, so this checks that the
self-contained page renders in a real browser engine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")


def find_browser() -> str | None:
    env = os.environ.get("CHROME")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(page: str | Path, out: str | Path, width: int = 1280, height: int = 2400,
               browser: str | None = None, timeout: float = 120) -> Path:
    """Render `page` at width x height CSS pixels into the PNG `out`; raises RuntimeError on failure."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium/Chrome browser found (apt-get install chromium)")
    page, out = Path(page).resolve(), Path(out).resolve()
    if page.is_dir():
        page = page / "report.html"
    if not page.is_file():
        raise FileNotFoundError(f"no such page: {page}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-chrome-") as profile:
        cmd = [
            browser, "--headless=new", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--force-device-scale-factor=1",
            f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={out}",
            page.as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{Path(browser).name} exited {proc.returncode}: {' | '.join(tail)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", help="report.html (or a run folder holding one)")
    ap.add_argument("out", help="the PNG to write")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--browser", help="browser executable (default: found on the PATH)")
    args = ap.parse_args(argv)
    try:
        path = screenshot(args.page, args.out, args.width, args.height, args.browser)
    except FileNotFoundError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 3
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
