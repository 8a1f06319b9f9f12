"""How the process kubelet runs one container: its volumes as local directories bind-mounted at
their mountPaths inside a private mount namespace, its environment, its memory cgroup, its log
file and termination-message file, and what its exit means (exit code, reason, message)."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from signal import Signals
from typing import Any

from outlive.testing._kubeapi import ApiError, KubeApi
from outlive.testing._kubelet_logfile import parse_records, pump, render

__all__ = ["ConfigMissing", "Container", "parse_quantity", "remove_paths", "start_container"]

Obj = dict[str, Any]
TERMINATION_MESSAGE_MAX = 4096  # the kubelet's limit per container
_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 1e-3, "": 1,
}  # fmt: skip
_QUANTITY_RE = re.compile(r"([0-9.]+)(?:[eE]([0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?")
_ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_VAR_REF_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigMissing(Exception):
    """A ConfigMap or Secret a container needs is not there (yet): CreateContainerConfigError."""


def parse_quantity(q: str | int) -> int:
    """A Kubernetes quantity (``64Mi``, ``1G``, ``129e6``, ``500``) in bytes (or units)."""
    m = _QUANTITY_RE.fullmatch(str(q).strip())
    if not m:
        raise ValueError(f"not a quantity: {q!r}")
    value = float(m.group(1)) * (10 ** int(m.group(2)) if m.group(2) else 1)
    return int(value * _SUFFIX[m.group(3) or ""])


@dataclass
class Container:
    """A running (or finished) container: its process and where its files are."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path  # records (_kubelet_logfile), written by the pump thread
    pump: threading.Thread
    term_file: Path
    cgroup: Path | None
    fallback_to_logs: bool
    started_at: str
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    created_paths: list[Path] = field(default_factory=list)
    execs: list[subprocess.Popen[bytes]] = field(default_factory=list)  # kubectl exec commands
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""

    def signal(self, sig: Signals) -> None:
        """Signal the container's process group, unless it already ended (its pid is free)."""
        if self.exit_code is None:
            self._killpg(sig)

    def _killpg(self, sig: Signals) -> None:
        """The container's process group, and those of the commands exec'd into it (they live
        in its mount namespace and die with it)."""
        self.execs = [p for p in self.execs if p.poll() is None]
        for pid in [self.proc.pid] + [p.pid for p in self.execs]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)

    def poll(self) -> bool:
        """Whether the container has exited; on the first True, its result is filled in."""
        if self.exit_code is not None:
            return True
        rc = self.proc.poll()
        if rc is None:
            return False
        self.finished_at = now()
        self._killpg(signal.SIGKILL)  # whatever it left in its process group goes with it
        self.pump.join(timeout=5)  # the log is complete before anyone is told it ended
        exit_code = 128 - rc if rc < 0 else rc
        oom = self.cgroup is not None and _oom_kills(self.cgroup) > 0
        if oom and exit_code == 137:
            self.reason = "OOMKilled"
        else:
            self.reason = "Completed" if exit_code == 0 else "Error"
        self.message = self._message(exit_code)
        self.exit_code = exit_code  # last: set means finished, for the log server's threads
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
        return True

    def _message(self, exit_code: int) -> str:
        try:
            text = self.term_file.read_bytes()[:TERMINATION_MESSAGE_MAX]
        except OSError:
            text = b""
        if not text.strip() and self.fallback_to_logs and exit_code != 0:
            with contextlib.suppress(OSError):
                output = render(parse_records(self.log.read_bytes())[0])
                text = b"".join(output.splitlines(keepends=True)[-80:])[-2048:]
        return text.decode(errors="replace")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def start_container(
    api: KubeApi, pod: Obj, spec: Obj, pod_dir: Path, base_env: dict[str, str]
) -> Container:
    """Start container SPEC of POD; raises ConfigMissing when a referenced object is absent
    (and then leaves no mountpoint it made behind)."""
    created: list[Path] = []
    try:
        return _start(api, pod, spec, pod_dir, base_env, created)
    except BaseException:
        remove_paths(created)
        raise


def remove_paths(paths: list[Path]) -> None:
    """Remove mountpoints made by ``_make_mountpoint``, deepest first, if still empty."""
    for p in sorted(set(paths), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()


def _start(
    api: KubeApi, pod: Obj, spec: Obj, pod_dir: Path, base_env: dict[str, str], created: list[Path]
) -> Container:
    ns = pod["metadata"]["namespace"]
    name = spec["name"]
    vols = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    env = dict(base_env, **_env(api, pod, spec))
    cdir = pod_dir / "containers" / name
    cdir.mkdir(parents=True, exist_ok=True)
    term_file = cdir / "termination-log"
    term_file.write_bytes(b"")
    lines = ["set -e"]
    for mount in spec.get("volumeMounts") or []:
        target = Path(mount["mountPath"])
        vol = vols.get(mount["name"])
        if vol is None:
            raise ConfigMissing(f"volume {mount['name']!r} is not defined in the pod")
        src = _volume_dir(api, ns, vol, pod_dir)
        if src is None:  # emptyDir with medium Memory: a tmpfs of its own
            created += _make_mountpoint(target, is_dir=True)
            size = vol["emptyDir"].get("sizeLimit")
            opts = f"size={parse_quantity(size)}" if size else "size=50%"
            q = shlex.quote(str(target))
            lines.append(f"mkdir -p {q} && mount -t tmpfs -o {opts} tmpfs {q}")
            continue
        if mount.get("subPath"):
            src = src / mount["subPath"]
            src.mkdir(parents=True, exist_ok=True)
        created += _make_mountpoint(target, is_dir=src.is_dir())
        q = shlex.quote(str(target))
        make = f"mkdir -p {q}" if src.is_dir() else f"[ -e {q} ] || : > {q}"
        lines.append(f"{make}; mount --bind {shlex.quote(str(src))} {q}")
        if mount.get("readOnly"):
            lines.append(f"mount -o remount,bind,ro {q}")
    term_path = Path(spec.get("terminationMessagePath") or "/dev/termination-log")
    created += _make_mountpoint(term_path, is_dir=False)
    lines.append(f"mount --bind {shlex.quote(str(term_file))} {shlex.quote(str(term_path))}")
    workdir = spec.get("workingDir") or "/"
    lines.append(f"mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(workdir)}")
    lines.append('exec "$@"')
    argv = [_expand(a, env) for a in (spec.get("command") or []) + (spec.get("args") or [])]
    if not argv:
        raise ConfigMissing("the process kubelet pulls no image, so the container needs a command")
    log = cdir / "log"
    cgroup = _memory_cgroup(pod, spec)  # made last: nothing can fail between it and the start
    if cgroup is not None:
        lines.insert(1, f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))}")
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--",
             "sh", "-c", "\n".join(lines), name, *argv],
            stdin=subprocess.DEVNULL, stdout=write_fd, stderr=write_fd, env=env,
            start_new_session=True, cwd="/",
        )  # fmt: skip
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return Container(
        name=name, proc=proc, log=log, pump=pump(read_fd, log), term_file=term_file, cgroup=cgroup,
        fallback_to_logs=spec.get("terminationMessagePolicy") == "FallbackToLogsOnError",
        started_at=now(), env=env, workdir=workdir, created_paths=created,
    )  # fmt: skip


def _expand(arg: str, env: dict[str, str]) -> str:
    """``$(VAR)`` references from the container's environment, ``$$`` an escaped ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF_RE.sub(sub, arg)


def _make_mountpoint(target: Path, *, is_dir: bool) -> list[Path]:
    """Create TARGET (a dir, or an empty file) and any missing parents; return what was made,
    outermost first, so the kubelet can remove it once no container uses it."""
    made: list[Path] = []
    missing = [p for p in [*reversed(target.parents), target] if not p.exists()]
    for p in missing:
        if p == target and not is_dir:
            p.touch()
        else:
            p.mkdir()
        made.append(p)
    return made


def _volume_dir(api: KubeApi, ns: str, vol: Obj, pod_dir: Path) -> Path | None:
    """The local directory (or file) behind volume VOL; None for a memory-backed emptyDir."""
    d = pod_dir / "volumes" / str(vol["name"])
    if "persistentVolumeClaim" in vol:
        claim = vol["persistentVolumeClaim"]["claimName"]
        pvc = _get(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
        pv_name = (pvc or {}).get("spec", {}).get("volumeName")
        if not pvc or not pv_name:
            raise ConfigMissing(f"persistentvolumeclaim {claim!r} is not bound")
        pv = api.get(f"/api/v1/persistentvolumes/{pv_name}")
        host = pv["spec"].get("hostPath", {}).get("path") or pv["spec"].get("local", {}).get("path")
        if not host:
            raise ConfigMissing(f"persistentvolume {pv_name!r} is neither hostPath nor local")
        return Path(host)
    if "hostPath" in vol:
        return Path(vol["hostPath"]["path"])
    if "emptyDir" in vol:
        if vol["emptyDir"].get("medium") == "Memory":
            return None
        d.mkdir(parents=True, exist_ok=True)
        return d
    for kind, key, default_mode in (("configMap", "name", 0o644), ("secret", "secretName", 0o644)):
        if kind in vol:
            src = vol[kind]
            obj = _get(api, f"/api/v1/namespaces/{ns}/{kind.lower()}s/{src[key]}")
            if obj is None and not src.get("optional"):
                raise ConfigMissing(f"{kind.lower()} {src[key]!r} not found")
            _write_keys(d, obj or {}, src, src.get("defaultMode", default_mode))
            return d
    raise ConfigMissing(f"volume {vol['name']!r} is of a kind the process kubelet does not map")


def _keys(obj: Obj) -> dict[str, bytes]:
    """The keys of a ConfigMap (data + binaryData) or Secret (data, base64) as bytes."""
    if obj.get("kind") == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def _write_keys(d: Path, obj: Obj, src: Obj, default_mode: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    keys = _keys(obj)
    items = src.get("items") or [{"key": k, "path": k} for k in sorted(keys)]
    for item in items:
        if item["key"] not in keys:
            if src.get("optional"):
                continue
            raise ConfigMissing(f"key {item['key']!r} not found in {obj['metadata']['name']!r}")
        path = d / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(keys[item["key"]])
        path.chmod(item.get("mode", default_mode))


def _get(api: KubeApi, path: str) -> Obj | None:
    try:
        return api.get(path)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


def _env(api: KubeApi, pod: Obj, spec: Obj) -> dict[str, str]:
    """The container's env: envFrom first, then env entries (later ones win, as in Kubernetes)."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, str] = {}
    for src in spec.get("envFrom") or []:
        for kind in ("configMapRef", "secretRef"):
            if kind in src:
                ref = src[kind]
                plural = "configmaps" if kind == "configMapRef" else "secrets"
                obj = _get(api, f"/api/v1/namespaces/{ns}/{plural}/{ref['name']}")
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigMissing(f"{plural[:-1]} {ref['name']!r} not found")
                prefix = src.get("prefix", "")
                values = _keys(obj) if kind == "secretRef" else _keys({"data": obj.get("data")})
                # As the kubelet does: keys that are not valid variable names are skipped.
                out.update({prefix + k: v.decode(errors="replace") for k, v in values.items()
                            if _ENV_NAME_RE.fullmatch(prefix + k) and b"\0" not in v})  # fmt: skip
    for var in spec.get("env") or []:
        if "valueFrom" not in var:
            out[var["name"]] = _expand(var.get("value", ""), out)
            continue
        value = _value_from(api, pod, var["valueFrom"])
        if value is not None:
            out[var["name"]] = value
    return out


def _value_from(api: KubeApi, pod: Obj, vf: Obj) -> str | None:
    ns = pod["metadata"]["namespace"]
    if "fieldRef" in vf:
        path = vf["fieldRef"]["fieldPath"]
        meta = pod["metadata"]
        fields = {
            "metadata.name": meta["name"], "metadata.namespace": ns, "metadata.uid": meta["uid"],
            "spec.nodeName": pod["spec"].get("nodeName", ""), "spec.serviceAccountName":
            pod["spec"].get("serviceAccountName", ""), "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }  # fmt: skip
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        return str(fields.get(path, ""))
    for kind, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
        if kind in vf:
            ref = vf[kind]
            obj = _get(api, f"/api/v1/namespaces/{ns}/{plural}/{ref['name']}")
            value = _keys(obj).get(ref["key"]) if obj else None
            if value is None:
                if ref.get("optional"):
                    return None
                raise ConfigMissing(
                    f"key {ref['key']!r} of {plural[:-1]} {ref['name']!r} not found"
                )
            return value.decode()
    return None  # resourceFieldRef: not mapped


def _memory_cgroup(pod: Obj, spec: Obj) -> Path | None:
    """A memory cgroup with the container's limit (v1: limit_in_bytes, v2: memory.max) under
    this process's own, or None without a memory limit."""
    limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    if not limit:
        return None
    leaf = f"outlive-k8s-{pod['metadata']['uid']}-{spec['name']}"
    mine = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        mine[controllers] = path
    if "memory" in mine and Path("/sys/fs/cgroup/memory").is_dir():
        cg = Path("/sys/fs/cgroup/memory" + mine["memory"].rstrip("/")) / leaf
        cg.mkdir(exist_ok=True)
        (cg / "memory.limit_in_bytes").write_text(str(parse_quantity(limit)))
        with contextlib.suppress(OSError):  # where swap is accounted, it must not dodge the limit
            (cg / "memory.memsw.limit_in_bytes").write_text(str(parse_quantity(limit)))
        return cg
    parent = Path("/sys/fs/cgroup" + mine.get("", "/").rstrip("/"))
    with contextlib.suppress(OSError):
        (parent / "cgroup.subtree_control").write_text("+memory")
    cg = parent / leaf
    cg.mkdir(exist_ok=True)
    (cg / "memory.max").write_text(str(parse_quantity(limit)))
    with contextlib.suppress(OSError):
        (cg / "memory.swap.max").write_text("0")
    return cg


def _oom_kills(cg: Path) -> int:
    for name in ("memory.oom_control", "memory.events"):
        with contextlib.suppress(OSError):
            for line in (cg / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return 0
