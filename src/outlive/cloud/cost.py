"""Published rates outlive prices resources with, when an API gives no rate of its own, and
the arithmetic of cost (rate × time). Each figure names its source in the seeds."""

from __future__ import annotations

HOURS_PER_MONTH = 730.0  # the providers' $/GB/mo ↔ $/h conversion (365 × 24 / 12)

# RunPod, seed 004 §2 storage (verified docs.runpod.io/pods/pricing 2026-06)
RUNPOD_DISK_RUNNING_USD_GB_MO = 0.10  # container and volume disk while the pod runs
RUNPOD_VOLUME_STOPPED_USD_GB_MO = 0.20  # volume disk of a stopped pod: 2× (RP4)
RUNPOD_NETWORK_VOLUME_USD_GB_MO = 0.07  # standard network volume, first TB
RUNPOD_NETWORK_VOLUME_OVER_TB_USD_GB_MO = 0.05  # standard network volume, beyond 1 TB

# Paperspace, seed 001 §2/§5 (verified DO products/paperspace/pricing 2026-06)
PAPERSPACE_SNAPSHOT_USD_GB_MO = 0.29  # PS9: survives a destroy
PAPERSPACE_STATIC_IP_USD_H = 0.0045  # capped at $3.00/mo
# Core block storage: seed 001 §5 puts a forgotten 2 TB volume at ~$120/mo, i.e. ~$0.06/GB/mo
# (billed hourly, on or off, until the machine is destroyed; PS1).
PAPERSPACE_BLOCK_STORAGE_USD_GB_MO = 0.06


def per_hour(usd_per_gb_month: float, size_gb: float) -> float:
    """$/h of ``size_gb`` billed at ``usd_per_gb_month``."""
    return usd_per_gb_month * size_gb / HOURS_PER_MONTH


def per_month(usd_per_hour: float) -> float:
    return usd_per_hour * HOURS_PER_MONTH


def runpod_network_volume_per_hour(size_gb: float) -> float:
    """A standard network volume: $0.07/GB/mo for the first TB, $0.05 beyond (seed 004 §2)."""
    first = min(size_gb, 1000.0)
    return per_hour(RUNPOD_NETWORK_VOLUME_USD_GB_MO, first) + per_hour(
        RUNPOD_NETWORK_VOLUME_OVER_TB_USD_GB_MO, max(0.0, size_gb - 1000.0)
    )
