"""Scheduled workflows from the real client: `project.run(name, schedule=...)` and
`set_workflow(..., schedule=...)` with `run(name, schedule=True)` store a schedule on the server,
`get_run_db()` lists, reads, invokes and deletes it, a fire's runs carry the
`mlrun/schedule-name` label and run the newest workflow artifact version, and what MLRun refuses
is refused with its messages."""

import time

import harness

# The second version of the workflow: one step instead of two.
ONE_STEP = """from kfp import dsl
import mlrun

@dsl.pipeline(name="main")
def pipeline(p1: int = 1):
    mlrun.get_current_project().run_function("my-func", params={"p1": p1})
"""


class Schedules(harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        p = cls.project
        func = p.log_code_file("my_func_code", local_path="./my_func.py")
        pkg = p.log_code_file("my_pkg_code", local_path="./my_pkg.zip")
        p.log_code_file("my_workflow_code", local_path="./my_workflow.py", code_type="workflow")
        p.set_function(func=func.uri, name="my_func", kind="job", handler="my_func:main")
        p.set_function(func=pkg.uri, name="trainer", kind="job", handler="trainer:main")
        p.set_workflow(name="main", workflow_path="store://artifacts/my-project/my_workflow_code")
        p.save()

    def db(self):
        return self.mlrun.get_run_db()

    @staticmethod
    def crontab(schedule):
        """The schedule's trigger as a crontab (the client reads its fields as ints or strs)."""
        return schedule.cron_trigger.to_crontab()

    def names(self):
        return [s.name for s in self.db().list_schedules(self.project_name).schedules]

    def tearDown(self):
        for name in self.names():
            self.db().delete_schedule(self.project_name, name)

    def test_run_with_a_schedule_stores_it_and_the_same_name_updates_it(self):
        result = self.project.run(name="main", schedule="0 * * * *", engine="remote")
        self.assertIsNone(result, "the client returns nothing for a scheduled run")
        self.assertEqual(self.names(), ["main"])
        schedule = self.db().get_schedule(self.project_name, "main")
        self.assertEqual(schedule.kind, "job")
        self.assertEqual(self.crontab(schedule), "0 * * * *")
        self.assertIsNotNone(schedule.next_run_time)
        self.assertEqual(schedule.next_run_time.minute, 0)

        self.project.run(name="main", schedule="30 2 * * *", engine="remote")
        self.assertEqual(self.names(), ["main"])
        schedule = self.db().get_schedule(self.project_name, "main")
        self.assertEqual(self.crontab(schedule), "30 2 * * *")

        self.db().delete_schedule(self.project_name, "main")
        self.assertEqual(self.names(), [])

    def test_set_workflow_schedule_runs_with_schedule_true(self):
        p = self.project
        p.set_workflow(
            name="nightly",
            workflow_path="store://artifacts/my-project/my_workflow_code",
            schedule="0 3 * * *",
        )
        self.assertIsNone(p.run(name="nightly", schedule=True, engine="remote"))
        schedule = self.db().get_schedule(self.project_name, "nightly")
        self.assertEqual(self.crontab(schedule), "0 3 * * *")

    def test_too_frequent_and_local_schedules_are_refused_with_mlruns_messages(self):
        status = self.project.run(name="main", schedule="*/5 * * * *", engine="remote")
        self.assertEqual(status.state, "Failed")
        self.assertIn(
            "Cron trigger too frequent. no more than one job per 10 minutes is allowed",
            str(status.exc),
        )
        status = self.project.run(name="main", schedule="0 * * * *", engine="remote:local")
        self.assertEqual(status.state, "Failed")
        self.assertIn("'schedule' argument is not supported for 'local' engine.", str(status.exc))
        with self.assertRaisesRegex(ValueError, "not supported for 'local' engine"):
            self.project.set_workflow(
                name="local-nightly",
                workflow_path="store://artifacts/my-project/my_workflow_code",
                engine="local",
                schedule="0 3 * * *",
            )
        self.assertEqual(self.names(), [])

    def schedule_runs(self):
        return self.db().list_runs(
            project=self.project_name, labels="mlrun/schedule-name=main"
        )

    def test_an_invoked_fire_runs_the_newest_workflow_version_with_the_schedule_label(self):
        self.project.run(name="main", schedule="0 * * * *", engine="remote")
        # A new version of the workflow after the schedule was stored: the fire resolves it.
        with open("one_step.py", "w") as f:
            f.write(ONE_STEP)
        self.project.log_code_file(
            "my_workflow_code", local_path="./one_step.py", code_type="workflow"
        )
        self.db().invoke_schedule(self.project_name, "main")
        deadline = time.time() + 120
        while True:
            runs = self.schedule_runs()
            if runs and all(r["status"]["state"] in ("completed", "error") for r in runs):
                break
            self.assertLess(time.time(), deadline, f"no finished fire:\n{self.server_log()}")
            time.sleep(0.5)
        self.assertEqual(
            [(r["metadata"]["name"], r["status"]["state"]) for r in runs],
            [("my-func-main", "completed")],
            "one step: the second version ran",
        )
        schedule = self.db().get_schedule(self.project_name, "main")
        self.assertIsNotNone(schedule.last_run_uri)


if __name__ == "__main__":
    harness.main()
