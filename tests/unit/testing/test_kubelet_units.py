"""The process kubelet's pure parts: Kubernetes quantities and ``$(VAR)`` references."""

from __future__ import annotations

import pytest

from outlive.testing._kubelet_container import _expand, parse_quantity


@pytest.mark.parametrize(
    ("quantity", "value"),
    [("64Mi", 64 * 2**20), ("1Gi", 2**30), ("500M", 500 * 10**6), ("129e6", 129 * 10**6),
     ("128974848", 128974848), ("1.5Gi", 3 * 2**29), ("100k", 100_000), (2048, 2048)],
)  # fmt: skip
def test_quantities_in_bytes(quantity: str | int, value: int) -> None:
    assert parse_quantity(quantity) == value


def test_a_malformed_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity("64 MiB")


def test_var_references_expand_from_the_env_and_double_dollar_escapes() -> None:
    env = {"RUN": "r1", "DIR": "/ckpt"}
    assert _expand("$(DIR)/$(RUN)/x", env) == "/ckpt/r1/x"
    assert _expand("$$(DIR) $(UNSET) $HOME", env) == "$(DIR) $(UNSET) $HOME"
