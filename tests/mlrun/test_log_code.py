"""`project.log_code_file` in each form the spec shows, read back through the client."""

import hashlib
import os

import harness


class LogCodeFile(harness.ServerTestCase):
    def db_record(self, key):
        """The stored record as the server returns it (plain JSON, no client classes)."""
        return self.mlrun.get_run_db().read_artifact(key, project=self.project_name)

    def test_local_file(self):
        art = self.project.log_code_file("my_func_code", local_path="./my_func.py")
        payload = harness.MY_FUNC.encode()
        self.assertEqual(art.kind, "code")
        self.assertTrue(
            art.uri.startswith("store://artifacts/my-project/my_func_code#0@"), art.uri
        )
        self.assertTrue(art.uri.endswith("^" + art.metadata.uid), art.uri)

        got = self.project.get_artifact("my_func_code")
        self.assertEqual(got.kind, "code")
        self.assertEqual(got.metadata.uid, art.metadata.uid)
        self.assertEqual(got.metadata.tag, "latest")
        self.assertEqual(got.metadata.hash, hashlib.sha1(payload).hexdigest())
        self.assertEqual(got.spec.code_type, "function")
        self.assertEqual(got.spec.language, "python")
        self.assertEqual(got.spec.src_path, "./my_func.py")
        self.assertEqual(got.spec.size, len(payload))
        self.assertTrue(os.path.isabs(got.spec.target_path), got.spec.target_path)
        self.assertEqual(os.path.splitext(got.spec.target_path)[1], ".py")
        self.assertEqual(harness.read_bytes(got.spec.target_path), payload)

        record = self.db_record("my_func_code")
        self.assertEqual(record["kind"], "code")
        self.assertEqual(record["spec"]["code_type"], "function")
        self.assertEqual(record["spec"]["language"], "python")
        self.assertEqual(record["spec"]["target_path"], got.spec.target_path)

    def test_archive(self):
        art = self.project.log_code_file("my_pkg_code", local_path="./my_pkg.zip")
        payload = harness.read_bytes("my_pkg.zip")
        got = self.project.get_artifact("my_pkg_code")
        self.assertEqual(got.kind, "code")
        self.assertEqual(got.metadata.uid, art.metadata.uid)
        self.assertEqual(got.spec.code_type, "function")
        self.assertEqual(got.spec.src_path, "./my_pkg.zip")
        self.assertEqual(got.spec.size, len(payload))
        self.assertEqual(os.path.splitext(got.spec.target_path)[1], ".zip")
        self.assertEqual(harness.read_bytes(got.spec.target_path), payload)

    def test_body_with_target_path(self):
        body = b"def main():\n    return 'ok'\n"
        target = os.path.join(self.tmp, "bodies", "inline.py")
        self.project.log_code_file("inline_code", body=body, target_path=target)
        got = self.project.get_artifact("inline_code")
        self.assertEqual(got.kind, "code")
        self.assertEqual(got.spec.code_type, "function")
        self.assertEqual(got.spec.language, "python")
        self.assertEqual(got.spec.target_path, target)
        self.assertIsNone(got.spec.src_path)
        self.assertEqual(got.spec.size, len(body))
        self.assertEqual(got.metadata.hash, hashlib.sha1(body).hexdigest())
        self.assertEqual(harness.read_bytes(target), body)

    def test_body_without_path_is_refused_by_the_client(self):
        with self.assertRaises(self.mlrun.errors.MLRunInvalidArgumentError) as caught:
            self.project.log_code_file("bodyonly_code", body=b"def main():\n    return 1\n")
        self.assertEqual(
            str(caught.exception), "A code artifact must provide local_path or target_path."
        )
        with self.assertRaises(self.mlrun.errors.MLRunNotFoundError):
            self.project.get_artifact("bodyonly_code")

    def test_workflow_with_requirements(self):
        self.project.log_code_file(
            "my_workflow_code",
            local_path="./my_workflow.py",
            code_type="workflow",
            requirements=["pandas>=2.0"],
        )
        got = self.project.get_artifact("my_workflow_code")
        self.assertEqual(got.kind, "code")
        self.assertEqual(got.spec.code_type, "workflow")
        self.assertEqual(got.spec.requirements, ["pandas>=2.0"])
        self.assertEqual(got.spec.language, "python")
        self.assertEqual(got.spec.src_path, "./my_workflow.py")
        self.assertEqual(harness.read_bytes(got.spec.target_path), harness.MY_WORKFLOW.encode())

        record = self.db_record("my_workflow_code")
        self.assertEqual(record["spec"]["code_type"], "workflow")
        self.assertEqual(record["spec"]["requirements"], ["pandas>=2.0"])

    def test_new_version_moves_latest(self):
        first = self.project.log_code_file("versioned_code", local_path="./my_func.py")
        with open("my_func_v2.py", "w") as f:
            f.write("def main(p1):\n    return p1 * 3\n")
        second = self.project.log_code_file("versioned_code", local_path="./my_func_v2.py")
        self.assertNotEqual(first.metadata.uid, second.metadata.uid)
        got = self.project.get_artifact("versioned_code")
        self.assertEqual(got.metadata.uid, second.metadata.uid)
        self.assertEqual(got.spec.src_path, "./my_func_v2.py")
        old = self.mlrun.get_run_db().read_artifact(
            "versioned_code", project=self.project_name, uid=first.metadata.uid
        )
        self.assertEqual(old["metadata"]["uid"], first.metadata.uid)
        self.assertEqual(old["spec"]["src_path"], "./my_func.py")


if __name__ == "__main__":
    harness.main()
