"""The k8s testbed's keys and configs: a CA, serving certs (apiserver, kubelet), the service
account key pair, the token file and the kubeconfig, all made with openssl in a state dir."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from outlive.testing._files import run, write_atomic

__all__ = ["make_pki", "write_kubeconfig"]


def make_pki(pki: Path, cluster_ip: str) -> str:
    """Write ca, apiserver, kubelet and sa keys into PKI; return the admin bearer token."""
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        "-subj", "/CN=outlive-testbed-ca",
        "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"),
    )  # fmt: skip
    sans = {
        "apiserver": f"IP:127.0.0.1,IP:{cluster_ip},DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc",
        "kubelet": "IP:127.0.0.1,DNS:localhost",
    }
    for name, san in sans.items():
        run(
            "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(pki / f"{name}.key"), "-out", str(pki / f"{name}.csr"),
        )  # fmt: skip
        (pki / f"{name}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        run(
            "openssl", "x509", "-req", "-days", "3650", "-in", str(pki / f"{name}.csr"),
            "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial",
            "-extfile", str(pki / f"{name}.ext"), "-out", str(pki / f"{name}.crt"),
        )  # fmt: skip
    run("openssl", "genrsa", "-out", str(pki / "sa.key"), "2048")
    run("openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    token = secrets.token_hex(16)
    write_atomic(pki / "tokens.csv", f'{token},admin,admin,"system:masters"\n', mode=0o600)
    return token


def write_kubeconfig(
    path: Path, *, context: str, namespace: str, port: int, token: str, ca: Path
) -> None:
    """A kubeconfig whose one context, named CONTEXT, reaches the apiserver as admin (JSON is
    YAML, so no YAML writer is needed)."""
    ca_data = base64.b64encode(ca.read_bytes()).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": ca_data,
                },
            }
        ],
        "users": [{"name": f"{context}-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": f"{context}-admin", "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    write_atomic(path, json.dumps(doc, indent=2) + "\n", mode=0o600)
