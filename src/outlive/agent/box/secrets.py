"""``secret_put``: a secret from stdin into a 0600 file on box-local disk (U34). The value is never
put in an argv, an env of a command line, a log or an error message."""

from __future__ import annotations

import os

from .common import SECRET_NAME_RE, AgentError, Rec, expand
from .procfs import mount_of
from .records import write_bytes_atomic
from .supervisor import SECRETS_DIR

# Filesystems that other machines can read: a secret must never land on one (U34).
NETWORK_FS = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "lustre",
    "gpfs",
    "glusterfs",
    "beegfs",
    "9p",
    "virtiofs",
    "fuse.sshfs",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.rclone",
    "fuse.juicefs",
)


def verb_secret_put(req: Rec) -> Rec:
    """Store the secret; refuse a directory the profile marks shared or durable, or one on a
    filesystem other machines can read."""
    name = str(req.get("name", ""))
    if not SECRET_NAME_RE.match(name):
        raise AgentError(
            f"secret name {name!r} must be letters, digits, '_', '.' or '-' (like HF_TOKEN)"
        )
    value = req.get("value")
    if not isinstance(value, str) or not value:
        raise AgentError("the secret value is empty; pipe it on stdin or use --from-env VAR")
    directory = expand(str(req.get("dir") or SECRETS_DIR))
    real = os.path.realpath(directory)
    for refused in req.get("refuse_under") or []:
        root = os.path.realpath(expand(str(refused)))
        if root != "/" and (real == root or real.startswith(root.rstrip("/") + "/")):
            raise AgentError(
                f"refusing to store a secret under {root}, which the profile marks shared or "
                "durable (U34); set another secrets dir on box-local disk"
            )
    probe = real
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    mount = mount_of(probe)
    point, fstype = mount["mount_point"] or "/", mount["fstype"] or "unknown"
    if fstype in NETWORK_FS or fstype.startswith("fuse."):
        raise AgentError(
            f"refusing to store a secret on {point} ({fstype}), a filesystem other machines "
            "can read (U34); use a box-local directory"
        )
    os.makedirs(real, mode=0o700, exist_ok=True)
    os.chmod(real, 0o700)
    final = os.path.join(real, name)
    # Whole or an error: a secret that does not fit is never stored as a prefix (U34).
    write_bytes_atomic(final, value.encode("utf-8"), 0o600)
    return {"path": final, "mode": "0600", "fs": fstype, "mount": point}
