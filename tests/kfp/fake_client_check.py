"""Drives a KFP API server with the official kfp.Client (2.17.3): proves that the fake KFP server
of the Rust tests speaks the protocol the SDK speaks. Usage: fake_client_check.py URL

Prints one `ok <check>` line per check and exits 0, or raises (exit 1) at the first failure.
"""
import os
import sys
import tempfile

import kfp
import kfp_server_api
from kfp import compiler, dsl

assert kfp.__version__ == "2.17.3", kfp.__version__
url = sys.argv[1]


@dsl.container_component
def say(fake_outcome: str):
    return dsl.ContainerSpec(image="alpine:3.19", command=["echo", fake_outcome])


@dsl.pipeline(name="fake-check")
def pipeline(fake_outcome: str = "SUCCEEDED"):
    say(fake_outcome=fake_outcome).set_display_name("say").set_caching_options(False)


def ok(what):
    print(f"ok {what}", flush=True)


package = os.path.join(tempfile.mkdtemp(), "fake_check.yaml")
compiler.Compiler().compile(pipeline, package)

client = kfp.Client(host=url)
health = client.get_kfp_healthz(sleep_duration=0)
assert health.multi_user is False, health
ok("healthz")

experiment = client.create_experiment("sdk-check")
assert experiment.experiment_id and experiment.display_name == "sdk-check", experiment
again = client.create_experiment("sdk-check")
assert again.experiment_id == experiment.experiment_id, (again, experiment)
ok("create_experiment finds an existing experiment by name")

result = client.create_run_from_pipeline_package(
    package, arguments={}, run_name="sdk-run", experiment_name="sdk-check"
)
run = client.wait_for_run_completion(result.run_id, timeout=30, sleep_duration=0)
assert run.state == "SUCCEEDED", run.state
assert [t.display_name for t in run.run_details.task_details] == ["say"], run.run_details
ok("create_run_from_pipeline_package + wait_for_run_completion")

run = client.run_pipeline(
    experiment.experiment_id, "sdk-hang", package, params={"fake_outcome": "HANG"}
)
assert client.get_run(run.run_id).state == "RUNNING"
client.terminate_run(run.run_id)
ended = client.get_run(run.run_id)
assert ended.state == "FAILED", ended.state
assert [h.state for h in ended.state_history] == ["PENDING", "RUNNING", "CANCELING", "FAILED"], ended
ok("run_pipeline + get_run + terminate_run")

try:
    client.run_pipeline(experiment.experiment_id, "sdk-bad", package, params={"nope": 1})
    raise AssertionError("an undeclared parameter was accepted")
except kfp_server_api.ApiException as e:
    assert e.status == 400 and "not required by pipeline: nope" in e.body, e
ok("undeclared parameter refused with 400")

page = client.list_runs(experiment_id=experiment.experiment_id, page_size=1, sort_by="created_at desc")
assert page.total_size == 2 and len(page.runs) == 1 and page.next_page_token, page
assert page.runs[0].display_name == "sdk-hang", page.runs[0].display_name
rest = client.list_runs(experiment_id=experiment.experiment_id, page_size=1, page_token=page.next_page_token)
assert len(rest.runs) == 1 and not rest.next_page_token, rest
ok("list_runs pages")
