"""Workflows from a `workflow` code artifact on the `remote` and `remote:local` engines: two
steps, the second taking the first one's output."""

import harness


class Workflows(harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        p = cls.project
        func = p.log_code_file("my_func_code", local_path="./my_func.py")
        pkg = p.log_code_file("my_pkg_code", local_path="./my_pkg.zip")
        p.log_code_file(
            "my_workflow_code",
            local_path="./my_workflow.py",
            code_type="workflow",
            requirements=["pandas>=2.0"],
        )
        p.set_function(func=func.uri, name="my_func", kind="job", handler="my_func:main")
        p.set_function(func=pkg.uri, name="trainer", kind="job", handler="trainer:main")
        p.set_workflow(name="main", workflow_path="store://artifacts/my-project/my_workflow_code")
        # The remote runner loads the project from the database: store its functions there.
        p.save()

    def step_runs(self, workflow_id):
        """The runs labelled with the workflow, as {run name: (state, results)}."""
        runs = self.mlrun.get_run_db().list_runs(
            project=self.project_name, labels=f"workflow={workflow_id}"
        )
        return {
            r["metadata"]["name"]: (r["status"]["state"], r["status"].get("results"))
            for r in runs
        }

    def assert_steps(self, workflow_id, p1):
        self.assertEqual(
            self.step_runs(workflow_id),
            {
                "my-func-main": ("completed", {"return": 2 * p1}),
                "trainer-main": ("completed", {"return": 4 * p1}),
            },
        )

    def test_remote_watch(self):
        run = self.project.run(name="main", arguments={"p1": 5}, engine="remote", watch=True)
        self.assertEqual(run.state, "Succeeded")
        self.assertIsNone(run.exc)
        self.assert_steps(run.run_id, 5)

    def test_remote_local_watch(self):
        run = self.project.run(
            name="main", arguments={"p1": 3}, engine="remote:local", watch=True
        )
        self.assertEqual(run.state, "Succeeded")
        self.assertIsNone(run.exc)
        self.assert_steps(run.run_id, 3)
        # The workflow id is the runner's own run, which the client watched through runs/ and
        # logs/.
        runner = self.mlrun.get_run_db().read_run(run.run_id, project=self.project_name)
        self.assertEqual(runner["metadata"]["uid"], run.run_id)
        self.assertEqual(runner["status"]["state"], "completed")

    def test_remote_then_wait_for_completion(self):
        run = self.project.run(name="main", arguments={"p1": 7}, engine="remote", watch=False)
        self.assertIn(run.state, ("Running", "Pending", "Succeeded"))
        self.assertEqual(run.wait_for_completion(), "Succeeded")
        self.assertEqual(run.state, "Succeeded")
        self.assert_steps(run.run_id, 7)


if __name__ == "__main__":
    harness.main()
