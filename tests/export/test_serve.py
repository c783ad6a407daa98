"""The serving template (`rnnlab export --format serve`): the generated FastAPI app started with uvicorn on
127.0.0.1 answers real HTTP requests, valid and invalid, with what `rnnlab predict` writes for the same input."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.export import run as export_cmd
from rnnlab.commands.predict import run as predict_cmd
from tests.conftest import TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(folder: Path, python: str = sys.executable, env: dict | None = None):
    """uvicorn app:app in `folder` on a free port; yields the base URL once /health answers."""
    import httpx

    port = _free_port()
    proc = subprocess.Popen([python, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"the app exited: {proc.stdout.read().decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the app did not answer /health within 15 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    api.train([*TINY, "train.epochs=1", "data.n_out=3"], d / "run")
    with contextlib.redirect_stdout(io.StringIO()):
        assert export_cmd(str(d / "run"), "serve", str(d / "export")) == 0
    series = np.sin(np.arange(40) / 3.0)
    pd.DataFrame({"value": series}).to_csv(d / "series.csv", index=False)
    with contextlib.redirect_stdout(io.StringIO()):
        assert predict_cmd(str(d / "run"), str(d / "series.csv"), None, str(d / "expected.csv")) == 0
    return d, series


@pytest.mark.slow  # ~3 s (uvicorn, onnxruntime and rnnlab in a new process): the fast suite is at its limit
def test_the_served_app_answers_as_rnnlab_predict(exported):
    import httpx

    d, series = exported
    assert sorted(p.name for p in (d / "export").iterdir()) == ["Dockerfile", "app.py", "model.json", "model.onnx",
                                                                 "requirements.txt"]
    docker = (d / "export" / "Dockerfile").read_text()
    assert "USER app" in docker and "useradd" in docker and "uvicorn" in docker
    expected = pd.read_csv(d / "expected.csv")
    with serving(d / "export") as url:
        meta = httpx.get(f"{url}/metadata").json()
        assert meta["request_field"] == "series" and meta["outputs"]["task"] == "regression"
        r = httpx.post(f"{url}/predict", json={"series": [{"value": float(v)} for v in series]})
        assert r.status_code == 200, r.text
        got = pd.DataFrame(r.json()["predictions"])
        assert got["horizon"].tolist() == [1, 2, 3]
        np.testing.assert_allclose(got["prediction"], expected["prediction"], rtol=1e-6)
        # invalid: the wrong field, a series shorter than n_in, text in a number, not JSON
        wrong = httpx.post(f"{url}/predict", json={"texts": ["hello"]})
        assert wrong.status_code == 422 and "this model reads 'series'" in wrong.json()["detail"]
        short = httpx.post(f"{url}/predict", json={"series": [{"value": 1.0}] * 5})
        assert short.status_code == 422 and "has 5 rows, but the model reads the last 12" in short.json()["detail"]
        text = httpx.post(f"{url}/predict", json={"series": [{"value": "abc"}] * 20})
        assert text.status_code == 422 and "non-numeric values" in text.json()["detail"]
        junk = httpx.post(f"{url}/predict", content=b"{not json", headers={"content-type": "application/json"})
        assert junk.status_code == 422


@pytest.mark.slow
def test_the_dockerfiles_install_and_start_steps_work_in_a_fresh_venv(exported, tmp_path):
    """No Docker daemon here: the Dockerfile's RUN pip install line runs in a new venv (rnnlab from this source
    tree as RNNLAB_REQUIREMENT), then its CMD starts the app, which answers as in the test above."""
    import httpx

    d, series = exported
    root = Path(__file__).resolve().parents[2]
    lines = (d / "export" / "Dockerfile").read_text().splitlines()
    install = next(line for line in lines if line.startswith("RUN pip install"))
    cmd = next(line for line in lines if line.startswith("CMD"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip_args = install.removeprefix("RUN pip install").replace('"$RNNLAB_REQUIREMENT"', f"{root}[export,serve]")
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pip_args.split()],
                          cwd=d / "export", capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"uvicorn", "app:app"' in cmd
    with serving(d / "export", python=str(venv / "bin" / "python"), env={"PYTHONPATH": ""}) as url:
        r = httpx.post(f"{url}/predict", json={"series": [{"value": float(v)} for v in series]})
        assert r.status_code == 200, r.text
        expected = pd.read_csv(d / "expected.csv")
        np.testing.assert_allclose(pd.DataFrame(r.json()["predictions"])["prediction"], expected["prediction"],
                                   rtol=1e-6)
