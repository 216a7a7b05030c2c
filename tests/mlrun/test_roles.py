"""An artifact used in the wrong role: a `workflow` artifact as a job's source, a `function`
artifact as a workflow path (refused by the client, and by the server when the client's check is
bypassed)."""

import harness


class Roles(harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.func = cls.project.log_code_file("my_func_code", local_path="./my_func.py")
        cls.workflow = cls.project.log_code_file(
            "my_workflow_code", local_path="./my_workflow.py", code_type="workflow"
        )

    def test_job_from_a_workflow_artifact_is_refused_by_the_server(self):
        # No HTTP and no check in set_function (MLRun 1.12.1 checks only kind == "code").
        bad = self.project.set_function(
            func="store://artifacts/my-project/my_workflow_code",
            name="bad",
            kind="job",
            handler="my_workflow:main",
        )
        # fn.run stores the function first: that POST is the one refused, with a 400.
        with self.assertRaises(self.mlrun.errors.MLRunBadRequestError) as caught:
            bad.run(params={"p1": 1})
        message = str(caught.exception)
        self.assertTrue(message.startswith("store function my-project/bad details: "), message)
        self.assertIn("code_type='workflow'", message)
        self.assertIn("expected 'function'", message)
        self.assertEqual(caught.exception.response.status_code, 400)
        # Nothing ran.
        runs = self.mlrun.get_run_db().list_runs(project=self.project_name, name="bad-main")
        self.assertEqual(list(runs), [])

    def test_workflow_from_a_function_artifact_is_refused_by_the_client(self):
        with self.assertRaises(self.mlrun.errors.MLRunInvalidArgumentError) as caught:
            self.project.set_workflow(name="bad_wf", workflow_path=self.func.uri)
        self.assertEqual(
            str(caught.exception),
            f"Workflow path '{self.func.uri}' resolves to a code artifact with "
            "code_type='function'; expected 'workflow'.",
        )

    def test_workflow_from_a_function_artifact_is_refused_by_the_server(self):
        # The submit body the client sends (reference 9.1), with the client's check bypassed.
        for path in ("store://artifacts/my-project/my_func_code", self.func.uri):
            with self.subTest(path=path):
                status, body = self.http(
                    "POST",
                    "/api/v1/projects/my-project/workflows/bad_wf/submit",
                    {
                        "arguments": None,
                        "artifact_path": None,
                        "source": None,
                        "run_name": "workflow-runner-bad_wf",
                        "namespace": None,
                        "spec": {
                            "name": "bad_wf",
                            "engine": "kfp",
                            "path": path,
                            "args": {"p1": 5},
                            "run_setup": False,
                            "image": None,
                            "auth_token_name": None,
                        },
                    },
                )
                self.assertEqual(status, 400, body)
                self.assertIsInstance(body["detail"], str, body)
                self.assertIn("code_type='function'", body["detail"])
                self.assertIn("expected 'workflow'", body["detail"])

    def test_the_right_roles_still_work(self):
        status, body = self.http("GET", "/api/v1/projects/my-project")
        self.assertEqual(status, 200, body)
        fn = self.project.set_function(
            func=self.func.uri, name="good", kind="job", handler="my_func:main"
        )
        self.assertEqual(fn.run(params={"p1": 2}).outputs, {"return": 4})
        self.project.set_workflow(name="main", workflow_path=self.workflow.uri)


if __name__ == "__main__":
    harness.main()
