"""Kaggle: a run is a kernel version pushed with the user's ``kaggle`` CLI; a run longer than
the session limit is a **chain** of versions of one kernel. Each version stops its job (TERM →
save) before the limit with its checkpoints in ``/kaggle/working``; when a look sees a version
COMPLETE with the run ``stopped``, it pushes the next version with the kernel itself as a kernel
source (its latest output, mounted read-only), which resumes from it. The weekly GPU quota is read
(``kaggle quota``) and warned about before each GPU push.

States: QUEUED → pending, RUNNING / CANCEL_REQUESTED → running, CANCEL_ACKNOWLEDGED → cancelled,
ERROR → failed with the failure message as evidence (NB2/NB3), COMPLETE → what the version's
``outlive-chain.json`` says (succeeded, failed, or requeued while the next version is pushed).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from outlive._shapes import as_dict, replace, shape
from outlive.backends import kaggle_render as kr
from outlive.backends.kaggle_cli import KaggleCli

__all__ = ["ChainView", "KaggleChain"]

STATES = {
    "QUEUED": "pending",
    "RUNNING": "running",
    "CANCEL_REQUESTED": "running",
    "CANCEL_ACKNOWLEDGED": "cancelled",
    "ERROR": "failed",
}


@shape(frozen=True)
class ChainView:
    """What a look at a run on Kaggle found: its outlive state and every version so far."""

    state: str
    versions: tuple[dict[str, Any], ...]
    diagnosis: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()


class KaggleChain:
    """One run's chain of versions; its record is ``<state_dir>/kaggle/<slug>.json``."""

    def __init__(
        self,
        first: kr.Version,
        state_dir: Path,
        cli: KaggleCli,
        *,
        code: bytes,
        agent: bytes,
        key: str | None = None,
    ) -> None:
        self.first, self.cli, self.code, self.agent = first, cli, code, agent
        self.record = state_dir / "kaggle" / f"{key or first.slug}.json"
        self.ref = f"{first.owner}/{first.slug}"

    @classmethod
    def load(cls, state_dir: Path, key: str, cli: KaggleCli, agent: bytes) -> KaggleChain | None:
        """The chain a launch recorded under ``key`` (another command's), or None."""
        record = state_dir / "kaggle" / f"{key}.json"
        try:
            doc = json.loads(record.read_text())
            code = record.with_suffix(".zip").read_bytes()
            first = kr.Version(**{
                **doc["first"],
                "dataset_sources": tuple(doc["first"].get("dataset_sources") or ()),
                "model_sources": tuple(doc["first"].get("model_sources") or ()),
            })  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(first, state_dir, cli, code=code, agent=agent, key=key)

    def _doc(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _versions(self) -> list[dict[str, Any]]:
        return list(self._doc().get("versions") or [])

    @property
    def cancelled(self) -> bool:
        return bool(self._doc().get("cancelled"))

    def _save(self, versions: list[dict[str, Any]], *, cancelled: bool | None = None) -> None:
        self.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".tmp")
        doc = {
            "ref": self.ref,
            "first": as_dict(self.first),
            "versions": versions,
            "cancelled": self.cancelled if cancelled is None else cancelled,
        }
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.record)

    def launch(self) -> list[str]:
        """Push the first version; the warnings to show (the weekly quota)."""
        self.record.parent.mkdir(parents=True, exist_ok=True)
        self.record.with_suffix(".zip").write_bytes(self.code)
        return self._push(resume=False)

    def cancel(self) -> str:
        """Push no further version, and cancel the one queued or running now through Kaggle's
        API; what was done, in one sentence."""
        versions = self._versions()
        self._save(versions, cancelled=True)
        head = f"no further version of {self.ref} will be pushed"
        if not versions:
            return head
        number = int(versions[-1]["number"])
        status = self.cli.status(f"{self.ref}/{number}").status
        if status not in ("QUEUED", "RUNNING"):
            return f"{head}; version {number} is {status} already"
        why = self.cli.cancel(self.ref, number)
        if why is None:
            return (
                f"{head}; version {number} was cancelled through Kaggle's API and keeps no "
                "output (NB2): pull gets the last version that ended well"
            )
        return (
            f"{head}; Kaggle's API did not cancel version {number} ({why}): stop it at "
            f"https://www.kaggle.com/code/{self.ref}"
        )

    def _push(self, *, resume: bool) -> list[str]:
        version = replace(self.first, resume_from=self.ref if resume else None)
        warnings = self._quota_warnings(version)
        with tempfile.TemporaryDirectory(prefix="outlive-kaggle-") as tmp:
            for name, text in kr.render(version, code=self.code, agent=self.agent).items():
                (Path(tmp) / name).write_text(text)
            number = self.cli.push(Path(tmp))
        self._save([*self._versions(), {"number": number, "status": "QUEUED"}])
        return warnings

    def _quota_warnings(self, version: kr.Version) -> list[str]:
        if kr.ACCELERATORS.get(version.accelerator) is None:
            return []
        quota = self.cli.quota()
        if quota is None:
            return []
        left_h = quota.total_h - quota.used_h
        if left_h * 3600.0 < version.budget_s:
            return [
                f"the weekly GPU quota has {left_h:.1f} h left of {quota.total_h:.0f} h, less "
                f"than one version's {version.budget_s / 3600:.1f} h; the version may stop early"
            ]
        return []

    def look(self) -> ChainView:
        """The run's state now; a version that stopped for the session limit is followed by
        the next one (pushed here), so a look keeps the chain going."""
        versions = self._versions()
        if not versions:
            return ChainView("pending", ())
        last = versions[-1]
        status = self.cli.status(f"{self.ref}/{last['number']}")
        last.update(status=status.status, failure=status.failure)
        warnings: list[str] = []
        diagnosis = None
        if status.status == "COMPLETE":
            last["outcome"] = self._outcome(int(last["number"]))
            state = {"succeeded": "succeeded", "stopped": "requeued"}.get(last["outcome"], "failed")
            if state == "requeued" and self.cancelled:
                state = "cancelled"
            self._save(versions)
            if state == "requeued":
                warnings = self._push(resume=True)
                versions = self._versions()
        else:
            state = STATES.get(status.status, "running")
            self._save(versions)
        if state == "failed":
            diagnosis = {
                "cause": "unknown",
                "evidence": [status.failure or f"the job failed in version {last['number']}"],
                "gotchas": ["NB3" if "GPU" in (status.failure or "") else "NB2"],
            }
        return ChainView(state, tuple(versions), diagnosis, tuple(warnings))

    def _outcome(self, number: int) -> str:
        doc = self._output_json(number, kr.CHAIN_FILE)
        if doc is None:
            return "failed"  # outlive never got to write it: the script itself failed
        return str(doc.get("state") or "failed")

    def _output_json(self, number: int, name: str) -> dict[str, Any] | None:
        with tempfile.TemporaryDirectory(prefix="outlive-kaggle-") as tmp:
            self.cli.output(f"{self.ref}/{number}", Path(tmp), f"^{name}$")
            try:
                doc = json.loads((Path(tmp) / name).read_text())
            except (OSError, ValueError):
                return None
        return doc if isinstance(doc, dict) else None

    def completed(self) -> int | None:
        """The number of the last version that ended well (COMPLETE), or None."""
        done = [v for v in self._versions() if v.get("status") == "COMPLETE"]
        return int(done[-1]["number"]) if done else None

    def output_manifest(self) -> dict[str, Any] | None:
        """The result manifest the last version that ended well built on Kaggle, or None."""
        number = self.completed()
        return None if number is None else self._output_json(number, kr.MANIFEST_FILE)

    def pull(self, dest: Path) -> Path:
        """Download the last version's output (``kaggle kernels output``) into ``dest``; the
        run's tree is ``dest/<project>``."""
        versions = self._versions()
        if not versions:
            raise FileNotFoundError(f"{self.ref} has no version yet")
        self.cli.output(f"{self.ref}/{versions[-1]['number']}", dest)
        return dest / self.first.project
