"""Shared pieces of the MLRun client suite: a `baton server` per test module, the fixture sources
the spec's snippets use, and a few readers of what the server recorded.

Every test module runs in its own process (`python -m unittest test_x`, from this folder):
`import mlrun` asks the server for its client spec once per process, so MLRUN_DBPATH (and
MLRUN_HTTPDB__TOKEN) must be set before the first import. `ServerTestCase.setUpClass` starts the
server, sets the environment and only then imports mlrun; the class attribute `mlrun` is the
imported module.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
import zipfile

MY_FUNC = 'def main(p1):\n    print("hello from my_func", p1)\n    return p1 * 2\n'

TRAINER = "from utils import double\ndef main(p1=1):\n    return double(p1)\n"

UTILS = "def double(x):\n    return 2 * x\n"

# Two steps: the second takes the first one's output.
MY_WORKFLOW = """from kfp import dsl
import mlrun

@dsl.pipeline(name="main")
def pipeline(p1: int = 1):
    project = mlrun.get_current_project()
    first = project.run_function("my-func", params={"p1": p1}, outputs=["return"])
    project.run_function("trainer", params={"p1": first.outputs["return"]})
"""

STARTUP_TIMEOUT = 30


def baton_bin():
    """The binary under test: BATON_BIN, which `cargo test` sets; else the debug build."""
    path = os.environ.get("BATON_BIN")
    if path:
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "target", "debug", "baton")


def zip_bytes(files):
    """A .zip archive holding `files` (name -> text), as bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def write_fixtures(folder):
    """Writes my_func.py, my_pkg.zip (trainer.py + utils.py) and my_workflow.py into `folder`."""
    with open(os.path.join(folder, "my_func.py"), "w") as f:
        f.write(MY_FUNC)
    with open(os.path.join(folder, "my_pkg.zip"), "wb") as f:
        f.write(zip_bytes({"trainer.py": TRAINER, "utils.py": UTILS}))
    with open(os.path.join(folder, "my_workflow.py"), "w") as f:
        f.write(MY_WORKFLOW)


class Server:
    """A `baton server` on a free port, with its own data folder."""

    def __init__(self, data_dir, token=None):
        args = [baton_bin(), "server", "--port", "0", "--data-dir", data_dir]
        if token is not None:
            args += ["--token", token]
        env = {k: v for k, v in os.environ.items() if k != "BATON_TOKEN"}
        self.stderr = open(os.path.join(data_dir, "..", "server.err"), "wb")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.stderr, env=env
        )
        line = self._first_line()
        prefix = "listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"baton server printed {line!r}, not the address\n{self.log()}")
        self.url = line[len(prefix):].strip()

    def _first_line(self):
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(STARTUP_TIMEOUT):
            self.stop()
            raise RuntimeError(f"baton server printed nothing in {STARTUP_TIMEOUT} s\n{self.log()}")
        return self.proc.stdout.readline().decode()

    def log(self):
        """What the server wrote on stderr so far."""
        self.stderr.flush()
        with open(self.stderr.name, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """SIGTERM, then wait (SIGKILL if it does not stop within 20 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()


class ServerTestCase(unittest.TestCase):
    """Starts a server for the module's class, imports mlrun against it and works in a temporary
    folder holding the fixture sources. Subclasses may set `token` and `project_name`."""

    token = None
    project_name = "my-project"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="baton-mlrun-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        data = os.path.join(cls.tmp, "data")
        os.mkdir(data)
        cls.server = Server(data, token=cls.token)
        cls.addClassCleanup(cls.server.stop)
        cls.url = cls.server.url

        cls.work = os.path.join(cls.tmp, "work")
        os.mkdir(cls.work)
        write_fixtures(cls.work)
        cwd = os.getcwd()
        os.chdir(cls.work)
        cls.addClassCleanup(os.chdir, cwd)

        cls.mlrun = import_mlrun(cls.url, cls.token)
        cls.project = cls.mlrun.get_or_create_project(cls.project_name, context="./ctx")

    def server_log(self):
        return self.server.log()

    def http(self, method, path, body=None):
        """One request to the server with the stdlib: (status, parsed JSON or text)."""
        return http(self.url, method, path, body, self.token)


def import_mlrun(url, token=None):
    """Points the client at `url` and imports it; refuses a second server in the same process."""
    if "mlrun" in sys.modules:
        current = os.environ.get("MLRUN_DBPATH")
        if current != url:
            raise RuntimeError(
                "mlrun was already imported against another server: run each test module in "
                "its own process (python -m unittest test_x)"
            )
        return sys.modules["mlrun"]
    # Only this suite's settings: a developer's MLRUN_* or V3IO_* variables would change what
    # the client sends (another artifact path, a token from MLRUN_AUTH_SESSION or V3IO_ACCESS_KEY).
    for name in [n for n in os.environ if n.startswith(("MLRUN_", "V3IO_"))]:
        del os.environ[name]
    os.environ["MLRUN_DBPATH"] = url
    if token is not None:
        os.environ["MLRUN_HTTPDB__TOKEN"] = token
    import mlrun

    return mlrun


def http(url, method, path, body=None, token=None):
    """(status, body parsed as JSON when it is JSON) for one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    """`python test_x.py` runs that module verbosely."""
    unittest.main(verbosity=2)
