"""What the provider layer talks in: a billable ``Resource`` (one row of ``cloud ls``) and the
``Provider`` seam each platform's client fills in (inventory, the meter-stop verb, a look at one
resource). A new provider is a new module implementing ``Provider``, never a new ``if``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Protocol, TypeVar

from outlive.cloud.http import JsonApi
from outlive.cloud.keys import credentials

A = TypeVar("A", bound="ApiAccount")

# Which provider account serves a profile's targets (``cloud_id`` names a resource there).
PROVIDER_OF_PROFILE = {"runpod": "runpod", "paperspace-core": "paperspace"}


@dataclass(frozen=True)
class Resource:
    """Something a provider can bill for: a pod or machine, a disk, a snapshot, an address.

    ``kind`` is one of ``pod``, ``volume`` (a pod's own volume disk; its id is the pod's),
    ``network-volume``, ``machine``, ``snapshot``, ``public-ip``, ``shared-drive``.
    ``attached_to`` is the pod or machine it belongs to, if any; ``bills`` says at what rate
    and why, in words."""

    provider: str
    kind: str
    id: str
    name: str
    state: str
    usd_per_hour: float
    attached_to: str | None = None
    bills: str = ""
    # False: it bills at a rate the API does not give (``usd_per_hour`` is then only the part
    # that is known), e.g. a Paperspace machine's compute.
    rate_known: bool = True

    @property
    def billing(self) -> bool:
        """Whether it costs money now (at a known rate or not)."""
        return self.usd_per_hour > 0 or not self.rate_known

    @property
    def compute(self) -> bool:
        return self.kind in ("pod", "machine")

    def view(self, used_by: list[str]) -> dict[str, object]:
        """The resource as ``cloud ls --json`` prints it, with the targets that use it."""
        return {**asdict(self), "usd_per_hour": round(self.usd_per_hour, 6), "used_by": used_by}


class Provider(Protocol):
    """One account at one provider."""

    @property
    def name(self) -> str:  # "runpod" | "paperspace"
        ...

    @property
    def title(self) -> str:  # "RunPod" | "Paperspace"
        ...

    def inventory(self) -> list[Resource]:
        """Every billable resource of the account, with what it bills now."""
        ...

    def compute_state(self, resource_id: str) -> str | None:
        """The state of one pod or machine now (the provider's word), None when it is gone."""
        ...

    def meter_stop(self, resource_id: str, verb: str) -> None:
        """Run the profile's meter-stop ``verb`` on one pod or machine (nothing else)."""
        ...

    def is_stopped(self, state: str | None) -> bool:
        """Whether a ``compute_state`` means its compute meter no longer runs."""
        ...

    def billed_usd(self, resource_id: str) -> float | None:
        """What the provider's billing records say one pod or machine cost so far (None where
        the API keeps no billing records)."""
        ...


class ApiAccount:
    """Base of a provider client: one account behind a ``JsonApi``, found from the environment
    (or the provider's 0600 key file) by ``from_env``."""

    name: ClassVar[str]
    title: ClassVar[str]
    default_url: ClassVar[str]

    def __init__(self, api: JsonApi) -> None:
        self.api = api

    @classmethod
    def from_env(cls: type[A]) -> A | None:
        """The account whose key is in the environment or its 0600 file; None without one."""
        creds = credentials(cls.name, cls.default_url)
        if creds is None:
            return None
        return cls(JsonApi(cls.title, creds.base_url, creds.key, creds.source))
