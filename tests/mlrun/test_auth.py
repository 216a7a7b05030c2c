"""A server started with --token: the client with the token works, without it or with a wrong
one `import mlrun` fails (in a child process: the import-time client spec is per process)."""

import os
import subprocess
import sys

import harness

TOKEN = "batonTestToken0123"  # starts with a letter, no '-', so it goes out as a bearer token

PROBE = """
import sys
try:
    import mlrun
except Exception as e:
    print(type(e).__module__ + "." + type(e).__name__)
    print(e)
    sys.exit(3)
print("imported")
"""


class Auth(harness.ServerTestCase):
    token = TOKEN

    def import_in_child(self, token):
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MLRUN_") and not k.startswith("V3IO_")
        }
        env["MLRUN_DBPATH"] = self.url
        env["PYTHONWARNINGS"] = "ignore"
        if token is not None:
            env["MLRUN_HTTPDB__TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-c", PROBE],
            env=env,
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def test_the_right_token_runs_a_job(self):
        art = self.project.log_code_file("my_func_code", local_path="./my_func.py")
        fn = self.project.set_function(
            func=art.uri, name="my_func", kind="job", handler="my_func:main"
        )
        run = fn.run(params={"p1": 5})
        self.assertEqual(run.outputs, {"return": 10})

    def test_a_wrong_token_fails_the_import(self):
        child = self.import_in_child("wrongToken0123456789")
        self.assertEqual(child.returncode, 3, child.stdout + child.stderr)
        self.assertEqual(
            child.stdout.splitlines()[0], "mlrun.errors.MLRunUnauthorizedError", child.stdout
        )

    def test_no_token_fails_the_import(self):
        child = self.import_in_child(None)
        self.assertEqual(child.returncode, 3, child.stdout + child.stderr)
        self.assertEqual(
            child.stdout.splitlines()[0], "mlrun.errors.MLRunUnauthorizedError", child.stdout
        )

    def test_the_right_token_imports_in_a_child(self):
        child = self.import_in_child(TOKEN)
        self.assertEqual(child.returncode, 0, child.stdout + child.stderr)
        self.assertEqual(child.stdout.strip().splitlines()[-1], "imported")

    def test_raw_requests(self):
        status, body = harness.http(self.url, "GET", "/api/v1/client-spec")
        self.assertEqual(status, 401)
        self.assertIsInstance(body["detail"], str, body)
        status, _ = harness.http(self.url, "GET", "/api/v1/client-spec", token="nope")
        self.assertEqual(status, 401)
        status, body = harness.http(self.url, "GET", "/api/v1/client-spec", token=TOKEN)
        self.assertEqual(status, 200, body)
        status, _ = harness.http(self.url, "GET", "/healthz")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    harness.main()
