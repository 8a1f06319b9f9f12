"""The suite's CI rule (tests/conftest.py): under CI=true a skip fails, except a ``gpu`` test."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def test_under_ci_only_a_gpu_test_may_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a CUDA GPU\n")
    pytester.makepyfile(
        test_two_skips="""
        import pytest

        @pytest.mark.gpu
        @pytest.mark.skip(reason="no GPU here")
        def test_on_gpu():
            pass

        def test_with_sshd():
            pytest.skip("no sshd here")
        """
    )
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(skipped=1, failed=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true, which is not allowed: *no sshd here*"])
