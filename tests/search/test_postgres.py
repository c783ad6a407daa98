"""`rnnlab search` on a real PostgreSQL server: two workers on one study, one SIGKILLed mid-trial and restarted.

The test starts a throwaway server: PostgreSQL's `initdb` refuses to run as root, so as root it runs the
server as an unprivileged user made for it (`useradd`, once) through `runuser`; the data folder, socket
and log live in a temporary folder owned by that user, the server listens on 127.0.0.1 on a free port,
and a finalizer stops it and removes the folder. Skipped, with the reason, without initdb/pg_ctl, without
psycopg (`pip install 'rnnlab[postgres]'`) or without a way to run as another user.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.search.test_faults import killed_worker_scenario

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

PG_USER = "rnnlab_pg"  # the unprivileged system user the server runs as (when the tests run as root)
DB_USER, DB_PASSWORD, DB_NAME = "rnnlab", "s3cret-pw", "optuna"


def pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_server_user(args: list[str]) -> list[str]:
    """The command run as the server's user (root cannot run initdb or postgres)."""
    return ["runuser", "-u", PG_USER, "--", *args] if os.geteuid() == 0 else args


def server_user() -> None:
    """Make sure the unprivileged user exists (as root); skip with the reason when it cannot."""
    if os.geteuid() != 0:
        return
    if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode == 0:
        return
    if not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("initdb refuses to run as root, and useradd or runuser is missing to run it as another user")
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"initdb refuses to run as root, and a user for it cannot be made: {r.stderr.strip()}")


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb and pg_ctl not found (PATH, /usr/lib/postgresql/*/bin)")
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install 'rnnlab[postgres]'")
    server_user()
    root = Path(tempfile.mkdtemp(prefix="rnnlab-pg-"))  # under /tmp: the server's user can reach it
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER, PG_USER)
    pw = root / "pw"
    pw.write_text(DB_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(pw, PG_USER, PG_USER)
    r = subprocess.run(as_server_user([initdb, "-D", str(data), "-U", DB_USER, "--pwfile", str(pw),
                                       "-A", "scram-sha-256", "--no-sync", "--no-instructions"]),
                       capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=50"
    r = subprocess.run(as_server_user([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60",
                                       "start"]), capture_output=True, text=True)
    try:
        assert r.returncode == 0, f"{r.stderr}\n{log.read_text() if log.exists() else ''}"
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user=DB_USER, password=DB_PASSWORD, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")
        yield f"postgresql+psycopg://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{port}/{DB_NAME}"
    finally:
        subprocess.run(as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_on_postgres_survive_a_killed_worker(tmp_path, postgres_url):
    """Two `rnnlab search` workers on one study in PostgreSQL; one SIGKILLed mid-trial and restarted: every
    trial completes but the killed one, nothing stays RUNNING, the killed trial is retried and resumes its
    folder from checkpoint_last, and the best value and parameters are those of the trial folders."""
    outcome = killed_worker_scenario(tmp_path, postgres_url)
    print(f"postgres: {({k: v for k, v in outcome.items() if k != 'stderr'})}")  # for the note (pytest -s)
    assert DB_PASSWORD not in outcome["stderr"] and ":***@127.0.0.1" in outcome["stderr"]
    out = tmp_path / "study"
    summary = json.loads((out / "search_summary.json").read_text())
    assert summary["storage"] == postgres_url.replace(DB_PASSWORD, "***")  # the password is not written down
    assert not any(DB_PASSWORD in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())
