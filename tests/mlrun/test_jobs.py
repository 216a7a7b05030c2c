"""Jobs whose source is a code artifact: a single file, an archive, and a new version of the
same key picked up by the next run."""

import harness


class Jobs(harness.ServerTestCase):
    def read_run(self, uid):
        return self.mlrun.get_run_db().read_run(uid, project=self.project_name)

    def test_job_from_a_file_artifact(self):
        art = self.project.log_code_file("my_func_code", local_path="./my_func.py")
        fn = self.project.set_function(
            func=art.uri, name="my_func", kind="job", handler="my_func:main"
        )
        self.assertEqual(fn.metadata.name, "my-func")
        self.assertEqual(fn.spec.build.source, art.uri)
        run = fn.run(params={"p1": 5})
        self.assertEqual(run.outputs, {"return": 10})
        self.assertEqual(run.output("return"), 10)
        self.assertEqual(run.state(), "completed")

        state, log = self.mlrun.get_run_db().get_log(run.uid(), project=self.project_name)
        self.assertEqual(state, "completed")
        self.assertEqual(log, b"hello from my_func 5\n")

        record = self.read_run(run.uid())
        self.assertEqual(record["metadata"]["uid"], run.uid())
        self.assertEqual(record["metadata"]["name"], "my-func-main")
        self.assertEqual(record["spec"]["parameters"], {"p1": 5})
        self.assertEqual(record["status"]["state"], "completed")
        self.assertEqual(record["status"]["results"], {"return": 10})

    def test_hyperparameters_run_as_iterations_and_the_best_one_is_the_result(self):
        art = self.project.log_code_file("my_func_code", local_path="./my_func.py")
        fn = self.project.set_function(
            func=art.uri, name="my_func", kind="job", handler="my_func:main"
        )
        run = fn.run(
            hyperparams={"p1": [1, 3, 2]},
            hyper_param_options=self.mlrun.model.HyperParamOptions(selector="max.return"),
        )
        self.assertEqual(run.state(), "completed")
        record = self.read_run(run.uid())
        # (run.output() would read the `iteration_results` artifact as an MLRun artifact, which
        # baton's run records do not hold yet.)
        self.assertEqual(record["status"]["results"], {"best_iteration": 2, "return": 6})
        self.assertEqual(
            record["status"]["iterations"],
            [
                ["state", "iter", "param.p1", "output.return"],
                ["completed", 1, 1, 2],
                ["completed", 2, 3, 6],
                ["completed", 3, 2, 4],
            ],
        )

    def test_job_from_an_archive_artifact(self):
        art = self.project.log_code_file("my_pkg_code", local_path="./my_pkg.zip")
        fn = self.project.set_function(
            func=art.uri, name="trainer", kind="job", handler="trainer:main"
        )
        run = fn.run(params={"p1": 4})
        self.assertEqual(run.outputs, {"return": 8})
        self.assertEqual(self.read_run(run.uid())["status"]["results"], {"return": 8})

    def test_next_run_picks_up_a_new_version(self):
        with open("versioned.py", "w") as f:
            f.write("def main(p1):\n    return p1 * 2\n")
        first = self.project.log_code_file("versioned_code", local_path="./versioned.py")
        # The URI without a uid follows `latest`.
        fn = self.project.set_function(
            func="store://artifacts/my-project/versioned_code",
            name="versioned",
            kind="job",
            handler="versioned:main",
        )
        run1 = fn.run(params={"p1": 5})
        self.assertEqual(run1.outputs, {"return": 10})

        with open("versioned.py", "w") as f:
            f.write("def main(p1):\n    return p1 * 3\n")
        second = self.project.log_code_file("versioned_code", local_path="./versioned.py")
        self.assertNotEqual(first.metadata.uid, second.metadata.uid)

        run2 = fn.run(params={"p1": 5})
        self.assertEqual(run2.outputs, {"return": 15})
        self.assertNotEqual(run1.uid(), run2.uid())
        # The old run keeps its own result.
        self.assertEqual(self.read_run(run1.uid())["status"]["results"], {"return": 10})
        self.assertEqual(self.read_run(run2.uid())["status"]["results"], {"return": 15})

    def test_a_pinned_uri_keeps_running_its_version(self):
        with open("pinned.py", "w") as f:
            f.write("def main(p1):\n    return p1 + 1\n")
        first = self.project.log_code_file("pinned_code", local_path="./pinned.py")
        fn = self.project.set_function(
            func=first.uri, name="pinned", kind="job", handler="pinned:main"
        )
        with open("pinned.py", "w") as f:
            f.write("def main(p1):\n    return p1 + 100\n")
        self.project.log_code_file("pinned_code", local_path="./pinned.py")
        run = fn.run(params={"p1": 5})
        self.assertEqual(run.outputs, {"return": 6})


if __name__ == "__main__":
    harness.main()
