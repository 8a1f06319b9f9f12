"""The values a Kubernetes target holds, checked the way the API server checks them, so a bad one
is one sentence when the config is read rather than an error from ``kubectl apply`` later.

Each ``check_*`` returns the value or raises :class:`~outlive.errors.ConfigError` naming the key,
what is wrong and an example of a good value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from outlive.errors import ConfigError

__all__ = [
    "check_label_map",
    "check_name",
    "check_namespace",
    "check_quantity",
    "check_tolerations",
    "label_value",
    "quantity_bytes",
]

# resource.Quantity: a signed decimal number with a binary (Ki..Ei), decimal (n, u, m, k, M..E)
# or exponent suffix.
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_FACTOR = {
    None: 1,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label, <= 63
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def check_quantity(key: str, value: object, *, whole: bool = False) -> str:
    """A Kubernetes quantity (``16Gi``, ``500m``, ``2``); ``whole``: no fraction of a unit."""
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m or (whole and "." in text):
        example = '"16Gi" or "500M"' if key in ("memory", "shm", "pvc_size") else '"4" or "500m"'
        raise ConfigError(
            f"{key} = {value!r} is not a Kubernetes quantity; use a number with an optional "
            f"unit suffix, e.g. {example}"
        )
    return text


def quantity_bytes(value: str) -> float:
    """The number a checked quantity stands for (bytes for memory)."""
    m = _QUANTITY.match(value)
    if not m:
        raise ValueError(value)
    return float(m.group(1)) * _FACTOR[m.group(2)]


def check_namespace(value: object) -> str:
    text = str(value)
    if len(text) > 63 or not _DNS_LABEL.match(text):
        raise ConfigError(
            f"namespace = {value!r} is not a Kubernetes namespace name; use at most 63 lower-case "
            'letters, digits and "-", starting and ending with a letter or digit (e.g. "ml-team")'
        )
    return text


def check_name(key: str, value: object) -> str:
    """An object name (a claim, service account, secret, storage class): a DNS subdomain."""
    text = str(value)
    if len(text) > 253 or not _DNS_SUBDOMAIN.match(text):
        raise ConfigError(
            f"{key} = {value!r} is not a Kubernetes object name; use lower-case letters, digits, "
            '"-" and ".", starting and ending with a letter or digit (e.g. "outlive-ckpt")'
        )
    return text


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def check_label_map(key: str, value: object) -> dict[str, str]:
    """``node_selector``: label keys to label values."""
    if not isinstance(value, Mapping):
        raise ConfigError(f'{key} must be a table of label = value (e.g. {{ "gpu" = "a100" }})')
    out: dict[str, str] = {}
    for k, v in value.items():
        text = str(v)
        if not _label_key_ok(str(k)):
            raise ConfigError(
                f"{key} has {k!r}, which is not a Kubernetes label key; use letters, digits, "
                '"-", "_" and "." with an optional DNS prefix (e.g. "nvidia.com/gpu.product")'
            )
        if len(text) > 63 or (text and not _LABEL_NAME.match(text)):
            raise ConfigError(
                f"{key} {k!r} = {v!r} is not a Kubernetes label value; use at most 63 letters, "
                'digits, "-", "_" and ".", starting and ending with a letter or digit'
            )
        out[str(k)] = text
    return out


def check_tolerations(value: object) -> tuple[dict[str, Any], ...]:
    """``tolerations``: a list of tables with the fields of a pod toleration."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(
            'tolerations must be a list of tables (e.g. [{ key = "nvidia.com/gpu", '
            'operator = "Exists", effect = "NoSchedule" }])'
        )
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ConfigError(f"tolerations[{i}] must be a table with key, operator, effect")
        extra = sorted(set(item) - _TOLERATION_KEYS)
        if extra:
            known = ", ".join(sorted(_TOLERATION_KEYS))
            raise ConfigError(f"tolerations[{i}] has unknown field {extra[0]!r}; use {known}")
        if item.get("operator", "Equal") not in ("Equal", "Exists"):
            raise ConfigError(f'tolerations[{i}] operator must be "Equal" or "Exists"')
        if "effect" in item and item["effect"] not in _EFFECTS:
            raise ConfigError(f"tolerations[{i}] effect must be one of {', '.join(_EFFECTS)}")
        secs = item.get("tolerationSeconds")
        if secs is not None and (not isinstance(secs, int) or isinstance(secs, bool)):
            raise ConfigError(f"tolerations[{i}] tolerationSeconds must be a whole number")
        out.append(dict(item))
    return tuple(out)


def label_value(text: str) -> str:
    """``text`` as a label value (the run name may hold anything; the annotation keeps it)."""
    clean = _LABEL_VALUE_BAD.sub("-", text)[:63].strip("-_.")
    return clean or "x"
