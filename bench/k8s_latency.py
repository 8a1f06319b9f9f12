"""Launch and status latency on a real Kubernetes API server (the k8s testbed, v1.20): outlive vs
what a user types by hand, in one run.

- launch: ``outlive run -t k8s -- python -c pass`` (CLI start-up, the tree and agent zipapp
  packed into the ConfigMap, one ``kubectl apply`` of the List; the server version is cached)
  vs a hand-written ``kubectl create -f job.json`` of a bare Job.
- status: ``outlive status --json`` of every run launched (one ``kubectl get jobs,pods`` for the
  namespace), with the local daemon warm and with ``OUTLIVE_NO_DAEMON=1``, vs a hand
  ``kubectl get jobs,pods -l outlive/project=P -o json``.

- the alternative to kubectl: a fresh ``python3 -S`` that reads the kubeconfig (token auth, as
  the testbed's) and GETs the Jobs and the pods over HTTPS itself — the floor a client of its
  own could reach (it would have to implement every kubeconfig auth mechanism kubectl has).

Goals (issue 14): launch ≤ 1 s and status ≤ 0.3 s end to end.

    python bench/k8s_latency.py [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, result_line

from outlive.testing.k8s import K8sCluster


def timed(argv: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr.strip()}")
    return elapsed


def hand_job(name: str, project: str) -> str:
    return json.dumps({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"outlive/project": project}},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": {"outlive/project": project}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "outlive-testbed", "command": ["python3", "-c", "pass"]},
            ]},
        }},
    })  # fmt: skip


# Direct HTTPS: the two GETs kubectl makes for `get jobs,pods`, from the kubeconfig ($KUBECONFIG,
# token and CA data; the token never on a command line).
HTTPS_GET = """
import base64, json, os, ssl, sys, tempfile, urllib.parse, urllib.request
cfg = json.load(open(os.environ["KUBECONFIG"]))
ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == sys.argv[1])
cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
tls = ssl.create_default_context(cadata=ca)
sel = urllib.parse.quote(sys.argv[3])
for path in ("/apis/batch/v1/namespaces/%s/jobs", "/api/v1/namespaces/%s/pods"):
    req = urllib.request.Request(cluster["server"] + path % sys.argv[2] + "?labelSelector=" + sel,
                                 headers={"Authorization": "Bearer " + user["token"]})
    json.load(urllib.request.urlopen(req, context=tls))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions (< 1 min)")
    ap.add_argument("--keep", action="store_true", help="leave the testbed cluster running")
    ap.add_argument("--name", default="benchk8s", help="testbed cluster name")
    args = ap.parse_args()
    reps = 5 if args.quick else 15
    cluster = K8sCluster(args.name)
    doc = cluster.up()
    env = dict(os.environ, **doc["env"])
    project = f"bench-{uuid.uuid4().hex[:6]}"
    proj = Path(tempfile.mkdtemp(prefix="outlive-bench-"))
    target = [f"{k} = {json.dumps(v)}" for k, v in doc["target"].items()]
    (proj / "outlive.toml").write_text(
        "\n".join(["[project]", f'name = "{project}"', "[targets.k8s]", *target]) + "\n"
    )
    kubectl = ["kubectl", f"--context={doc['target']['context']}", "--namespace=outlive"]
    run = [OUTLIVE, "run", "-t", "k8s", "--json", "--", "python3", "-c", "pass"]
    try:
        subprocess.run([*run[:5], "--name", "warm-up", *run[5:]], cwd=proj, env=env, check=True,
                       capture_output=True)  # fmt: skip  # learns and caches the server version
        launch = [timed([*run[:5], "--name", f"l{i}", *run[5:]], proj, env) for i in range(reps)]
        by_hand = [
            timed([*kubectl, "create", "-f", "-"], proj, env, hand_job(f"{project}-h{i}", project))
            for i in range(reps)
        ]
        status = [OUTLIVE, "status", "--json"]
        timed(status, proj, env)  # starts the daemon
        warm = [timed(status, proj, env) for _ in range(reps * 2)]
        cold_env = dict(env, OUTLIVE_NO_DAEMON="1")
        cold = [timed(status, proj, cold_env) for _ in range(reps * 2)]
        get = [*kubectl, "get", "jobs,pods", "-l", f"outlive/project={project}", "-o", "json"]
        hand_get = [timed(get, proj, env) for _ in range(reps * 2)]
        https = [sys.executable, "-S", "-c", HTTPS_GET, doc["target"]["context"], "outlive",
                 f"outlive/project={project}"]  # fmt: skip
        direct = [timed(https, proj, env) for _ in range(reps * 2)]
    finally:
        subprocess.run([*kubectl, "delete", "jobs,configmaps,secrets", "-l",
                        f"outlive/project={project}", "--cascade=background", "--wait=false"],
                       env=env, capture_output=True)  # fmt: skip
        subprocess.run([OUTLIVE, "daemon", "stop"], cwd=proj, env=env, capture_output=True)
        if not args.keep:
            cluster.down()
    med = statistics.median
    figures = {
        "outlive_run_s": round(med(launch), 4),
        "kubectl_create_s": round(med(by_hand), 4),
        "outlive_status_s": round(med(warm), 4),
        "outlive_status_no_daemon_s": round(med(cold), 4),
        "kubectl_get_s": round(med(hand_get), 4),
        "https_direct_get_s": round(med(direct), 4),
        "runs_in_status": reps + 1,
    }
    ratios = {
        "run_vs_kubectl_create": round(med(launch) / med(by_hand), 2),
        "status_vs_kubectl_get": round(med(warm) / med(hand_get), 2),
        "status_no_daemon_vs_kubectl_get": round(med(cold) / med(hand_get), 2),
        "https_direct_vs_kubectl_get": round(med(direct) / med(hand_get), 2),
    }
    print(f"{'':44} median ({reps} launches, {reps * 2} looks)")
    print(f"{'hand kubectl create -f job.json':44} {figures['kubectl_create_s']:.3f} s")
    print(f"{'outlive run -t k8s':44} {figures['outlive_run_s']:.3f} s "
          f"({ratios['run_vs_kubectl_create']}x)")  # fmt: skip
    print(f"{'hand kubectl get jobs,pods -o json':44} {figures['kubectl_get_s']:.3f} s")
    print(
        f"{'direct HTTPS GETs (python3 -S, kubeconfig)':44} {figures['https_direct_get_s']:.3f} s"
    )
    print(f"{'outlive status --json, daemon warm':44} {figures['outlive_status_s']:.3f} s "
          f"({ratios['status_vs_kubectl_get']}x)")  # fmt: skip
    print(f"{'outlive status --json, daemon off':44} {figures['outlive_status_no_daemon_s']:.3f} s "
          f"({ratios['status_no_daemon_vs_kubectl_get']}x)")  # fmt: skip
    goals = {
        "launch_under_1s": figures["outlive_run_s"] <= 1.0,
        "status_under_0_3s": figures["outlive_status_s"] <= 0.3,
    }
    print(result_line("k8s_latency", figures, ratios, goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
