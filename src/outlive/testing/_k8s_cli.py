"""``python -m outlive.testing k8s up|down|preempt|build``: the k8s testbed's verbs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from outlive.errors import UsageError
from outlive.testing.k8s import DEFAULT_K8S_NAME, K8sCluster
from outlive.testing.k8s_build import ensure_binaries

__all__ = ["add_parser", "run"]


def add_parser(kinds: Any) -> None:
    k8s = kinds.add_parser(
        "k8s",
        help="a real Kubernetes v1.20 control plane with a process kubelet and two fake GPUs",
        description="Start, drain or remove a throwaway Kubernetes cluster on this machine "
        "(`build` makes and caches its binaries from Debian's source package).",
    )
    k8s.add_argument("verb", choices=("up", "down", "preempt", "build"))
    k8s.add_argument(
        "--name", default=DEFAULT_K8S_NAME, help=f"which cluster (default {DEFAULT_K8S_NAME})"
    )
    k8s.add_argument("--run", metavar="RUN_ID", help="preempt: the run whose pod is drained")
    k8s.add_argument(
        "--tree", type=Path, help="build: an unpacked `apt-get source kubernetes` tree to reuse"
    )
    k8s.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Do the verb; return the JSON document and the human text."""
    name = args.name
    if args.verb == "build":
        bin_dir = ensure_binaries(tree=args.tree)
        return {"name": name, "ok": True, "bin_dir": str(bin_dir)}, f"kube binaries in {bin_dir}"
    cluster = K8sCluster(name)
    if args.verb == "up":
        doc = cluster.up()
        lines = [f"k8s cluster {name} is up (node {cluster.node}, two fake GPUs)"]
        lines += [f"  export {k}={v}" for k, v in doc["env"].items()]
        lines.append("")
        lines.append(f"[targets.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in doc["target"].items()]
        return dict(doc), "\n".join(lines)
    if args.verb == "down":
        existed = cluster.down()
        said = "is down" if existed else "was not up; nothing to remove"
        return {"name": name, "ok": True, "existed": existed}, f"k8s cluster {name} {said}"
    if not args.run:
        raise UsageError("`k8s preempt` needs --run RUN_ID (the run whose pod is drained).")
    done = cluster.preempt(args.run)
    return done, (
        f"pod {done['namespace']}/{done['pod']} of run {args.run} is being evicted "
        f"(DisruptionTarget; TERM now, KILL after {done['grace_s']} s)"
    )
