"""Entry of a provider fake's background process: ``python -m outlive.testing._fakeprocess
KIND STATE_DIR`` (started by ``python -m outlive.testing KIND up``)."""

from __future__ import annotations

import sys
from pathlib import Path

from outlive.testing._fakeserver import FakeApi, serve


def _api(kind: str, key: str, state_dir: Path) -> FakeApi:
    if kind == "kaggle":
        from outlive.testing.kaggle_fake import KaggleFake

        return KaggleFake(key, state_dir)
    if kind == "runpod":
        from outlive.testing.runpod_fake import RunPodFake

        return RunPodFake(key)
    from outlive.testing.paperspace_fake import PaperspaceFake

    return PaperspaceFake(key)


def main(argv: list[str]) -> int:
    kind, state_dir = argv[0], Path(argv[1])
    serve(_api(kind, (state_dir / "key").read_text().strip(), state_dir), state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
