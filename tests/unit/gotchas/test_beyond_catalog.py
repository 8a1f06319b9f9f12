"""The entries beyond the seeds (X1...) and the widened seed matchers, proved on real public logs.

Each ``test_x<N>_...`` is the proof its catalog entry names: every public log kept for the entry
is explained with that entry ranked first, at a line that shows the signature.
"""

from __future__ import annotations

from gotcha_helpers import PUBLIC, public_files, read_text, source_of

from outlive.gotchas import CATALOG, by_id, explain_file, explain_text


def assert_ranked_first(gotcha_id: str) -> None:
    files = public_files(gotcha_id)
    assert files, f"no public log for {gotcha_id} in {PUBLIC}"
    for path in files:
        matches = explain_file(path)
        assert matches, f"{path.name}: nothing matched"
        first = matches[0]
        assert first.id == gotcha_id, (path.name, [m.id for m in matches])
        lines = read_text(path).split("\n")
        assert (
            first.text in lines[first.line - 1].strip()
            or first.text.strip() in lines[first.line - 1]
        ), (path.name, first.line, first.text)


def test_x1_nccl_watchdog_timeout() -> None:
    assert_ranked_first("X1")


def test_x2_nccl_unhandled_system_error() -> None:
    assert_ranked_first("X2")


def test_x3_shm_bus_error() -> None:
    assert_ranked_first("X3")


def test_x4_hub_rate_limit() -> None:
    assert_ranked_first("X4")


def test_x5_hub_gated_repo() -> None:
    assert_ranked_first("X5")


def test_x6_too_many_open_files() -> None:
    assert_ranked_first("X6")


def test_x7_stale_nfs_handle() -> None:
    assert_ranked_first("X7")


def test_x8_fuse_mount_disconnected() -> None:
    assert_ranked_first("X8")


def test_x9_nvml_driver_library_mismatch() -> None:
    assert_ranked_first("X9")


def test_x10_device_side_assert() -> None:
    assert_ranked_first("X10")


def test_x11_dataloader_worker_segfault() -> None:
    assert_ranked_first("X11")


def test_x12_loss_nan_divergence() -> None:
    assert_ranked_first("X12")


def test_x13_fp16_loss_scale_collapse() -> None:
    assert_ranked_first("X13")


def test_x14_notebook_kernel_restarted() -> None:
    assert_ranked_first("X14")


def test_x15_rendezvous_port_in_use() -> None:
    assert_ranked_first("X15")


def test_x16_cuda_devices_busy() -> None:
    assert_ranked_first("X16")


def test_every_public_log_names_its_source_and_is_ranked_first_for_its_entry() -> None:
    """Recall on the public set: each log's own entry is reported, and reported first."""
    files = public_files()
    assert len(files) >= 40
    missed = []
    for path in files:
        assert source_of(path).startswith("https://"), f"{path.name} has no `# source:` header"
        want = path.name.split(".")[0]
        got = [m.id for m in explain_file(path)]
        if not got or got[0] != want:
            missed.append(f"{path.name}: {got}")
    assert not missed, "public logs not explained first by their entry:\n" + "\n".join(missed)


def test_each_x_entry_lists_exactly_the_sources_of_its_public_logs() -> None:
    beyond = [g for g in CATALOG if g.id.startswith("X")]
    assert len(beyond) >= 15
    for g in beyond:
        kept = {source_of(p) for p in public_files(g.id)}
        assert set(g.sources) == kept and len(g.sources) == len(kept), g.id
        assert g.patterns and g.proofs and g.cause and g.fix, g.id


def test_a_cpu_only_torch_build_is_named_as_a_torch_build_problem() -> None:
    matches = explain_file(PUBLIC / "U28.cpu_only_build.log")
    assert [m.id for m in matches] == ["U28"]
    assert matches[0].text == "AssertionError: Torch not compiled with CUDA enabled"


def test_a_torchrun_hang_up_is_named_as_the_dropped_login_session() -> None:
    for name in ("GEN2.torchrun_sighup.log", "GEN2.signal_exception.log"):
        matches = explain_file(PUBLIC / name)
        assert matches[0].id == "GEN2" and by_id("GEN2").title == matches[0].title, name
    # SIGTERM (15) from a scheduler is not a hang-up
    assert explain_file(PUBLIC / "SLURM2.lightning_time_limit.log")[0].id == "SLURM2"


def test_a_flag_run_as_a_command_after_a_crlf_continuation_is_named_crlf() -> None:
    # bash quotes a name holding a raw \r ($'...'); a pasted log has often lost the \r
    for line in (
        "train.sh: line 5: $'--fp16\\r': command not found\n",
        "train.sh: line 4: --lr=3e-4\r: command not found\n",
        "./script.sh: line 73: --forward-agent: command not found\n",
    ):
        assert [m.id for m in explain_text(line)][:1] == ["U26"], line
    # a missing program is not a line-ending problem
    missing = explain_text("bash: line 1: torchrun: command not found\n")
    assert "U26" not in {m.id for m in missing}


def test_u11_an_oom_while_torch_holds_almost_nothing_names_a_hidden_holder() -> None:
    matches = explain_file(PUBLIC / "U11.fastmri_node.log")
    # the poster kept the numbers, not the "CUDA out of memory." head that U10 also matches
    assert [m.id for m in matches] == ["U11"]
    # an ordinary OOM, where torch itself holds the memory, stays U10 alone
    assert [m.id for m in explain_file(PUBLIC / "U10.semantic_seg.log")] == ["U10"]


def test_slurm_wordings_with_and_without_the_node_name_are_named() -> None:
    # both forms are slurmstepd's own (the node name came in a later release)
    for line in (
        "slurmstepd: error: *** STEP 1234.0 CANCELLED AT 2019-03-01T10:00:00 DUE TO TIME LIMIT ***",
        "slurmstepd: error: *** JOB 99 ON gpu7 CANCELLED AT 2024-01-01T00:00 DUE TO PREEMPTION ***",
    ):
        assert [m.id for m in explain_text(line + "\n")] == ["SLURM2"], line
