"""``python -m outlive.testing box up|down|reboot|cut|restore [--name N] [--json]`` and
``python -m outlive.testing slurm up|down [--name N] [--json]`` and
``python -m outlive.testing k8s up|down|preempt|build [--name N] [--run RUN_ID] [--json]`` and
``python -m outlive.testing runpod|paperspace up|down [--name N] [--json]`` (provider API fakes).

With ``--json`` exactly one JSON document goes to stdout: ``up`` prints
``{"name": N, "target": {...}}`` (the keys of an outlive.toml ``[targets.N]`` table), the other
verbs ``{"name": N, "ok": true, ...}``; ``slurm up`` adds ``"env"`` (``SLURM_CONF``, to export
before calling Slurm or outlive against that cluster), ``k8s up`` adds ``"env"``
(``KUBECONFIG``, and ``PATH`` with the cluster's own kubectl first); ``k8s preempt`` prints
``{"name", "ok", "pod", "namespace", "grace_s"}``; a provider fake's ``up`` prints
``{"name": N, "env": {...}}`` (its key and URL, to export before calling outlive); a failure prints
``{"name": N, "ok": false, "error": ...}`` and the one-sentence error on stderr. Exit codes: 0 ok,
1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TypedDict

from outlive.errors import OutliveError
from outlive.testing import _k8s_cli, providers
from outlive.testing.box import DEFAULT_NAME, Box
from outlive.testing.slurm import DEFAULT_SLURM_NAME, ClusterDoc, SlurmCluster, cluster_doc

_VERBS = ("up", "down", "reboot", "cut", "restore")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m outlive.testing",
        description="Throwaway test infrastructure for outlive (needs root).",
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    box = kinds.add_parser(
        "box",
        help="a real sshd 'box' at its own address that can be rebooted and cut off",
        description="Drive a throwaway SSH box: its own network, PID namespace and boot id.",
    )
    box.add_argument("verb", choices=_VERBS)
    box.add_argument("--name", default=DEFAULT_NAME, help=f"which box (default {DEFAULT_NAME})")
    box.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    slurm = kinds.add_parser(
        "slurm",
        help="a real single-node Slurm cluster (munged, slurmctld, slurmd) with two fake GPUs",
        description="Start or remove a throwaway Slurm cluster on this machine.",
    )
    slurm.add_argument("verb", choices=("up", "down"))
    slurm.add_argument(
        "--name", default=DEFAULT_SLURM_NAME, help=f"which cluster (default {DEFAULT_SLURM_NAME})"
    )
    slurm.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    _k8s_cli.add_parser(kinds)
    for kind in providers.KINDS:
        fake = kinds.add_parser(
            kind,
            help=f"a local fake of the {kind} API (seeded inventory with orphans)",
            description=f"Start or remove a local fake of the {kind} API in the background.",
        )
        fake.add_argument("verb", choices=("up", "down"))
        fake.add_argument("--name", default=f"{kind}1", help=f"which fake (default {kind}1)")
        fake.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    return parser


class Doc(TypedDict, total=False):
    """What ``--json`` prints for a box verb, ``slurm down`` or an error."""

    name: str
    ok: bool
    error: str
    existed: bool
    target: dict[str, str]
    boot_id: str
    previous_boot_id: str


def _box(verb: str, name: str) -> tuple[Doc, str]:
    """Do VERB on box NAME; return the JSON document and the human line."""
    if verb == "up":
        box = Box.up(name)
        lines = [f"box {name} is up at {box.address}, boot id {box.boot_id()}"]
        lines.append(f"  ssh -F {box.ssh_config} {name}")
        lines.append("")
        lines.append(f"[targets.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in box.target.items()]
        return {"name": name, "target": box.target}, "\n".join(lines)
    box = Box(name)
    if verb == "down":
        existed = box.down()
        said = "is down" if existed else "was not up; nothing to remove"
        return {"name": name, "ok": True, "existed": existed}, f"box {name} {said}"
    if verb == "reboot":
        before = box.boot_id()
        after = box.reboot()
        doc: Doc = {"name": name, "ok": True, "boot_id": after, "previous_boot_id": before}
        return doc, f"box {name} rebooted; every process on it was killed; boot id {after}"
    if verb == "cut":
        box.cut()
        return {"name": name, "ok": True}, (
            f"box {name} is cut off (its processes keep running); "
            f"`python -m outlive.testing box restore --name {name}` reconnects it"
        )
    box.restore()
    return {"name": name, "ok": True}, f"box {name} is reachable again"


def _slurm(verb: str, name: str) -> tuple[Doc | ClusterDoc, str]:
    """Do VERB on Slurm cluster NAME; return the JSON document and the human line."""
    if verb == "up":
        cluster = SlurmCluster.up(name)
        lines = [f"Slurm cluster {name} is up (partition debug, two fake GPUs)"]
        lines += [f"  export {k}={v}" for k, v in cluster.env.items()]
        lines.append("")
        lines.append(f"[targets.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in cluster.target.items()]
        return cluster_doc(cluster), "\n".join(lines)
    existed = SlurmCluster(name).down()
    said = "is down" if existed else "was not up; nothing to remove"
    return {"name": name, "ok": True, "existed": existed}, f"Slurm cluster {name} {said}"


def _provider(kind: str, verb: str, name: str) -> tuple[Doc | providers.FakeDoc, str]:
    """Do VERB on the fake of provider KIND called NAME."""
    if verb == "up":
        doc = providers.up(kind, name)
        lines = [f"{kind} fake {name} is up; export these before calling outlive:"]
        lines += [f"  export {k}={v}" for k, v in doc["env"].items()]
        return doc, "\n".join(lines)
    existed = providers.down(kind, name)
    said = "is down" if existed else "was not up; nothing to remove"
    return {"name": name, "ok": True, "existed": existed}, f"{kind} fake {name} {said}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    doc: object
    try:
        if args.kind == "k8s":
            doc, human = _k8s_cli.run(args)
        elif args.kind in providers.KINDS:
            doc, human = _provider(args.kind, args.verb, args.name)
        else:
            doc, human = (_slurm if args.kind == "slurm" else _box)(args.verb, args.name)
    except OutliveError as e:
        if args.json:
            print(json.dumps({"name": args.name, "ok": False, "error": str(e)}))
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(doc) if args.json else human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
