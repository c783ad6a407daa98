"""`rnnlab report RUN_DIR` and the report.html that `rnnlab train` writes: one self-contained page."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rnnlab.commands.report import run as report
from rnnlab.commands.train import run as train
from rnnlab.report.html import PLOT_SECTIONS, render_report, write_report
from tests.conftest import TINY, read_summary, run_cli

ROOT = Path(__file__).resolve().parents[1]
PLOT_HEADINGS = [title for _, title, _ in PLOT_SECTIONS]
HEADINGS = ["Summary", "Config", "Metrics per epoch", *PLOT_HEADINGS]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# a 1x1 GIF, standing in for the monitor's weight_hist.gif
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///ywAAAAAAQABAAACAUwAOw==")


class Page(HTMLParser):
    """Parses a report: tag balance, images with the section they sit in, h2 headings, links."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[tuple[str | None, dict]] = []
        self.headings: list[str] = []
        self.links: list[str] = []
        self.section: str | None = None
        self._h2: list[str] | None = None
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "section":
            self.section = a.get("id")
        if tag == "img":
            self.images.append((self.section, a))
        if tag == "h2":
            self._h2 = []
        self.links += [v for k, v in a.items() if k in ("src", "href")]

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "h2" and self._h2 is not None:
            self.headings.append("".join(self._h2).strip())
            self._h2 = None
        if tag == "section":
            self.section = None

    def handle_data(self, data):
        if self._h2 is not None:
            self._h2.append(data)


def check_page(text: str) -> Page:
    """Well-formed, self-contained: balanced tags, every image a data: URI, nothing fetched from the web."""
    page = Page(text)
    assert not page.errors, page.errors[:5]
    assert text.lstrip().lower().startswith("<!doctype html>")
    for _, img in page.images:
        assert img["src"].startswith(("data:image/png;base64,", "data:image/gif;base64,")), img["src"][:40]
        assert img.get("alt")
    assert not re.search(r"https?://", text)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert all(link.startswith(("data:", "#")) for link in page.links)
    return page


def images_by_name(page: Page) -> dict[str, tuple[str | None, bytes]]:
    """alt text (the image's path in the run folder) -> (section id, the decoded bytes)."""
    return {img["alt"]: (sec, base64.b64decode(img["src"].split(",", 1)[1])) for sec, img in page.images}


def run_images(run_dir: Path) -> list[Path]:
    return sorted(p for ext in ("*.png", "*.gif") for p in run_dir.rglob(ext)
                  if not any(part.startswith(".") for part in p.relative_to(run_dir).parts))


def banner(text: str) -> str:
    """The page up to the first section: where a partial report must say so."""
    return text.split('<section id="summary"', 1)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny run with its plots (no monitor: fast), shared by the module; tests copy it before changing
    anything."""
    run_dir = tmp_path_factory.mktemp("report") / "run"
    assert train([*TINY, "train.plots=true", f"hydra.run.dir={run_dir}"]) == 0
    return run_dir


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    dst = tmp_path / "copy_of_run"
    shutil.copytree(trained, dst)
    (dst / "report.html").unlink(missing_ok=True)
    return dst


def test_train_writes_the_report(trained):
    text = (trained / "report.html").read_text()
    page = check_page(text)
    assert page.headings[: len(HEADINGS)] == HEADINGS
    assert "Partial report" not in text
    assert 'class="badge ok">completed<' in text
    imgs = images_by_name(page)
    for p in run_images(trained):
        rel = p.relative_to(trained).as_posix()
        assert imgs[rel][1] == p.read_bytes(), rel
    assert imgs["plots/loss.png"][0] == "training" and imgs["plots/predictions.png"][0] == "predictions"
    s = read_summary(trained)
    assert set(s["dashboard"]) == {"seconds_per_epoch", "samples_per_s", "peak_memory_mb", "improvement_rate",
                                   "plateau", "oscillation", "epochs_to_best"}
    assert s["dashboard"]["peak_memory_mb"] > 10
    assert "huber" in s["test_metrics"] and "Huber" in text
    assert "Dashboard" in text and "samples per second" in text


def test_report_cli_groups_every_plot(run_copy, capsys):
    plots = run_copy / "plots"
    loss_png = (plots / "loss.png").read_bytes()
    for name in ("gradient_flow.png", "grad_norms.png", "spectral.png", "states_pca.png", "gates.png", "mystery.png"):
        (plots / name).write_bytes(loss_png)
    (plots / "weight_hist.gif").write_bytes(GIF)
    (run_copy / "gradients.csv").write_text("step,param,norm\n0,rnn.weight_hh_l0,0.5\n")
    summary = read_summary(run_copy)
    summary["monitor"] = {"enabled": True, "spectral_radius": {"l0": 0.9}}
    (run_copy / "summary.json").write_text(json.dumps(summary))

    assert report(run_copy) == 0
    assert capsys.readouterr().out.strip() == str(run_copy / "report.html")
    text = (run_copy / "report.html").read_text()
    page = check_page(text)
    assert page.headings[: len(HEADINGS) + 1] == [*HEADINGS, "Other"]
    assert {"Monitor", "Data files"} <= set(page.headings)
    imgs = images_by_name(page)
    assert set(imgs) == {p.relative_to(run_copy).as_posix() for p in run_images(run_copy)}
    expected = {"gradient_flow.png": "gradients", "grad_norms.png": "gradients", "spectral.png": "weights",
                "weight_hist.gif": "weights", "states_pca.png": "states", "gates.png": "states",
                "mystery.png": "other", "lr.png": "training"}
    for name, section in expected.items():
        assert imgs[f"plots/{name}"][0] == section, name
    assert imgs["plots/weight_hist.gif"][1] == GIF
    assert "gradients.csv" in text and "spectral_radius.l0" in text


def test_report_output_option(run_copy, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "page.html"
    assert report(run_copy, out) == 0
    assert capsys.readouterr().out.strip() == str(out)
    check_page(out.read_text())
    assert not (run_copy / "report.html").exists()


@pytest.mark.parametrize("case", ["missing", "empty_dir", "a_file"])
def test_bad_input_one_line_exit_2(tmp_path, case, capsys):
    target = tmp_path / case
    if case == "empty_dir":
        target.mkdir()
        (target / "notes.txt").write_text("not a run")
    elif case == "a_file":
        target.write_text("x")
    assert report(target) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert out == "" and "Traceback" not in err
    assert not list(tmp_path.rglob("report.html"))


def test_unwritable_output_one_line_exit_2(run_copy, tmp_path, capsys):
    from rnnlab.commands.report import run

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert run(run_copy, blocker / "report.html") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"Error: cannot write {blocker / 'report.html'}")


def test_corrupt_summary_still_renders(run_copy, capsys):
    (run_copy / "summary.json").write_text('{"status": "completed", "val_')
    assert report(run_copy) == 0
    assert "Warning: summary.json could not be read" in capsys.readouterr().err
    text = (run_copy / "report.html").read_text()
    page = check_page(text)
    top = banner(text)
    assert "Warning: summary.json could not be read" in top and "Partial report" in top
    assert "plots/loss.png" in images_by_name(page)


@pytest.mark.parametrize(("status", "message", "badge"), [
    ("diverged", "loss became nan (gradient norm inf) at epoch 2, step 17", "bad"),
    ("interrupted", "interrupted after 1 completed epochs", "warn"),
    ("failed", "ValueError('boom')", "bad"),
    ("running", None, "warn"),
])
def test_partial_report_says_so_at_the_top(run_copy, status, message, badge):
    summary = read_summary(run_copy)
    summary.update(status=status, message=message)
    if status == "running":  # a run killed mid-way: no evaluation yet
        for k in ("val_metrics", "test_metrics", "baselines", "dashboard"):
            summary.pop(k)
    (run_copy / "summary.json").write_text(json.dumps(summary))
    (run_copy / "plots" / "predictions.png").unlink()
    path, warnings = write_report(run_copy)
    assert warnings == []
    text = path.read_text()
    page = check_page(text)
    top = banner(text)
    assert "Partial report" in top and f'class="badge {badge}">{status}<' in top
    if message:
        assert message.replace("'", "&#x27;") in top
    assert page.headings[: len(HEADINGS)] == HEADINGS
    assert set(images_by_name(page)) == {"plots/loss.png", "plots/lr.png"}


def test_folder_with_only_a_config(tmp_path, trained):
    run_dir = tmp_path / "started"
    (run_dir / ".hydra").mkdir(parents=True)
    shutil.copy(trained / ".hydra" / "config.yaml", run_dir / ".hydra" / "config.yaml")
    text, warnings = render_report(run_dir)
    assert len(warnings) == 1 and "summary.json is missing" in warnings[0]
    page = check_page(text)
    assert page.headings[: len(HEADINGS)] == HEADINGS
    assert "Partial report" in banner(text) and "hidden_size: 8" in text


def test_text_is_escaped(run_copy):
    summary = read_summary(run_copy)
    summary.update(status="failed", message='<script>alert("x")</script> & <b>bold</b>')
    (run_copy / "summary.json").write_text(json.dumps(summary))
    (run_copy / "plots" / "a<b>&c.png").write_bytes((run_copy / "plots" / "lr.png").read_bytes())
    text, _ = render_report(run_copy)
    check_page(text)
    assert "<script>" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "plots/a&lt;b&gt;&amp;c.png" in text


# ----------------------------------------------------------------------------- a real browser


def _screenshot_module():
    spec = importlib.util.spec_from_file_location("screenshot_report", ROOT / "scripts" / "screenshot_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_report_renders_in_a_real_browser(tmp_path):
    """A full run (monitor=full: every plot and the GIF), its report screenshotted by headless Chromium."""
    shot = _screenshot_module()
    browser = shot.find_browser()
    if browser is None:
        pytest.skip("no Chromium/Chrome executable on the PATH (apt-get install chromium)")
    run_dir = tmp_path / "run"
    r = run_cli(["train", *TINY, "train.plots=true", "monitor=full", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = (run_dir / "report.html").read_text()
    page = check_page(text)
    imgs = images_by_name(page)
    assert set(imgs) == {p.relative_to(run_dir).as_posix() for p in run_images(run_dir)}
    for _, title, names in PLOT_SECTIONS:  # whatever the monitor wrote sits in its section
        sid = next(s for s, t, _ in PLOT_SECTIONS if t == title)
        for name in names:
            for ext in ("png", "gif"):
                if f"plots/{name}.{ext}" in imgs:
                    assert imgs[f"plots/{name}.{ext}"][0] == sid, name

    from PIL import Image

    out = shot.screenshot(run_dir / "report.html", tmp_path / "shot.png", width=1280, height=2000, browser=browser)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (1280, 2000)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50  # text, tables and plots, not a blank page
        assert rgb.getextrema() != ((255, 255), (255, 255), (255, 255))
