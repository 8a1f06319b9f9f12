"""The provider layer: what is billing, across the configured accounts, and the one call that
stops a target's meter after the teardown gate passed.

- ``http``: JSON over HTTPS with a bearer key, 429 + Retry-After, one-sentence errors
- ``keys``: API keys from the environment or a 0600 file, never the command line
- ``model``: ``Resource`` (one billable thing) and the ``Provider`` seam
- ``runpod``: RunPod's REST API v1 (pods, volume disks, network volumes, billing records)
- ``paperspace``: Paperspace's API v1 (machines, block storage, public IPs, snapshots, shared
  drives; paged with after/limit)
- ``cost``: published rates and rate × time
- ``inventory``: ``cloud ls`` (resources, the targets behind them, what the registry holds)
- ``audit``: ``cloud audit`` (orphans: billing with no active run or unpulled result behind)
- ``teardown``: ``down --execute`` (the profile's meter-stop verb on the target's pod, confirmed)
- ``spend``: cost and danger clocks in ``status`` for targets with a ``cloud_id``
"""
