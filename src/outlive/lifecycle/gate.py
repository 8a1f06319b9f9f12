"""``down``: the teardown gate (the Iron Law). outlive never stops, deletes or releases anything
itself; this gate only says whether it is safe to, what the platform's verbs will cost and
destroy, and prints the exact commands once the user has typed the target's name.

It passes only when every file under the result roots of every run outlive knows on the target
is covered by a verified pull: a local directory whose ``PULL_VERIFIED.json`` names a manifest
that holds the file with the SHA-256 the box has *now*. The box re-hashes its roots for the
check (one round trip), so a file added or changed since the pull refuses the gate; so does a
run that is still running, a pulled copy that went missing here, or a box that does not answer.
A pull taken while its run was still going is a snapshot and never counts: only a pull after
the run ended does. A checkpoint proven by SHA-256 only (its loader, e.g. torch, is not
installed here) counts as pulled, unless ``--require-load-check`` asks for it to have loaded.
``--abandon-results`` lists exactly what would be lost and needs its own typed confirmation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypedDict

from outlive import verify as V
from outlive import wire
from outlive._hashing import hash_file
from outlive.backends.base import ManifestReply
from outlive.config import Target
from outlive.errors import TransportError, UsageError
from outlive.lifecycle.pull import OUTPUT_PREFIX, declared_outputs, result_roots
from outlive.profiles import Profile, load_profile
from outlive.session import Session
from outlive.store import PullRecord, RunRecord

# The box hashes every result root for the check; a big tree takes a while (the link itself is
# still watched by ssh's keep-alives, so a dead box is reported within about a minute, U17).
GATE_TIMEOUT_S = 3600.0

Ask = Callable[[str], str]


# ---------------------------------------------------------------------------------------------
# the report (what `down --json` prints): its fields in the order they are printed


class ActionView(TypedDict):
    """One teardown verb of the profile."""

    verb: str
    command: str | None
    stops_billing: str
    keeps_billing: str
    deletes: str
    reversible: bool
    note: str
    source: str


class KeepsBilling(TypedDict):
    """What still bills ``after`` an event or a verb."""

    after: str | None
    what: str
    billing: str | None
    multiplier: float | None
    source: str


class Deletion(TypedDict):
    verb: str
    deletes: str


class ClockView(TypedDict):
    """A danger clock of the profile."""

    name: str
    kind: str
    duration_s: float | None
    range_s: list[float] | None
    what_happens: str
    surface_first: bool
    gotchas: list[str]


class PlanStep(TypedDict):
    """One command the user runs once the gate passes (outlive runs none of them)."""

    verb: str
    command: str | None
    how: str


class TeardownFacts(TypedDict):
    """Everything the gate shows about stopping the meter, from the profile."""

    profile: str
    title: str
    meter_stop_verb: str
    meter_stop_irreversible: bool
    stop_event: str
    destroy_event: str | None
    meter_stop: ActionView | None
    actions: list[ActionView]
    keeps_billing: list[KeepsBilling]
    deletes_irreversibly: list[Deletion]
    clocks: list[ClockView]
    plan: list[PlanStep]


class PullView(TypedDict):
    """One recorded pull of a run, and whether its local copy still counts."""

    dest: str
    manifest_sha256: str | None
    pulled_at: float
    valid: bool
    snapshot: bool  # taken while the run was still going: never counts
    problem: str | None


class Uncovered(TypedDict):
    """A file on the box that no verified pull covers (``path`` None: the box did not answer)."""

    path: str | None
    box_path: str
    size_bytes: int | None
    why: str


class Lost(Uncovered):
    """An uncovered file with the runs (ids and names) whose roots hold it."""

    runs: list[str]
    names: list[str]


class RunView(TypedDict):
    """One run outlive knows on the target, as the box shows it now."""

    run_id: str
    name: str
    state: str
    ckpt_dir: str
    files: int | None
    size_bytes: int | None
    manifest_sha256: str | None
    covered: bool
    uncovered: list[Uncovered]
    pulls: list[PullView]


class GateReport(TypedDict):
    """``inspect``'s look at a target; ``decide`` fills in the verdict fields."""

    target: str
    profile: str
    host: str | None
    reachable: bool
    error: str | None
    runs: list[RunView]
    lost_if_abandoned: list[Lost]
    teardown: TeardownFacts
    allowed: bool
    refused: str | None
    confirmed: bool
    abandoned: bool
    plan: list[PlanStep] | None
    note: str
    released: list[str]  # what the look made only to reach the box and freed (a reader pod)


def _norm(verb: str) -> str:
    return verb.replace("-", " ").replace("_", " ").strip().lower()


def teardown_facts(profile: Profile) -> TeardownFacts:
    """Everything the gate shows about stopping the meter, straight from the profile."""
    actions: list[ActionView] = [
        {
            "verb": a.verb,
            "command": a.command,
            "stops_billing": a.stops_billing,
            "keeps_billing": a.keeps_billing,
            "deletes": a.deletes,
            "reversible": a.reversible,
            "note": a.note,
            "source": a.source,
        }
        for a in profile.teardown
    ]
    meter_stop = next(
        (a for a in actions if _norm(a["verb"]) == _norm(profile.meter_stop_verb)), None
    )
    keeps: list[KeepsBilling] = []
    for tier in profile.storage:
        if tier.survives_stop is True:
            keeps.append(
                {
                    "after": profile.stop_event,
                    "what": tier.name,
                    "billing": tier.billing_stopped,
                    "multiplier": tier.stopped_billing_multiplier,
                    "source": tier.source,
                }
            )
        if tier.survives_destroy is True and profile.destroy_event:
            keeps.append(
                {
                    "after": profile.destroy_event,
                    "what": tier.name,
                    "billing": tier.billing_stopped,
                    "multiplier": tier.stopped_billing_multiplier,
                    "source": tier.source,
                }
            )
    for a in profile.teardown:
        keeps.append(
            {"after": a.verb, "what": a.keeps_billing, "billing": None, "multiplier": None,
             "source": a.source}
        )  # fmt: skip
    clocks: list[ClockView] = [
        {
            "name": c.name,
            "kind": c.kind,
            "duration_s": c.duration_s,
            "range_s": list(c.range_s) if c.range_s else None,
            "what_happens": c.what_happens,
            "surface_first": c.surface_first,
            "gotchas": list(c.gotchas),
        }
        for c in profile.clocks_first()
    ]
    plan: list[PlanStep] = [
        {
            "verb": a.verb,
            "command": a.command,
            "how": a.command
            or f"no command in the profile: {a.verb} it in the provider's console or API",
        }
        for a in profile.teardown
        if not a.reversible
    ]
    return {
        "profile": profile.name,
        "title": profile.title,
        "meter_stop_verb": profile.meter_stop_verb,
        "meter_stop_irreversible": profile.meter_stop_irreversible,
        "stop_event": profile.stop_event,
        "destroy_event": profile.destroy_event,
        "meter_stop": meter_stop,
        "actions": actions,
        "keeps_billing": keeps,
        "deletes_irreversibly": [
            {"verb": a["verb"], "deletes": a["deletes"]} for a in actions if not a["reversible"]
        ],
        "clocks": clocks,
        "plan": plan,
    }


# ---------------------------------------------------------------------------------------------
# what is covered


def _abs(roots: Iterable[tuple[str, str]], path: str) -> str:
    """The box path of a manifest path (``label/rest`` under the root called ``label``)."""
    for label, root in roots:
        if path == label:
            return root
        if path.startswith(label + "/"):
            return root.rstrip("/") + "/" + path[len(label) + 1 :]
    return path


def _entry_key(entry: V.Entry) -> str:
    return f"link:{entry.link}" if entry.link is not None else f"sha256:{entry.sha256}"


def check_pulled_copy(
    pull: PullRecord, *, require_load: bool = False
) -> tuple[V.Manifest | None, str | None]:
    """The manifest of a verified pull whose local copy still holds (record, manifest, every
    file present with the SHA-256 the manifest names, or the link it names), else why it does
    not count. Every file is re-hashed here, always: a size, an mtime or an inode can be kept
    while a byte flips, so no stat-based shortcut could prove the copy. A snapshot of a run
    still going never counts; with ``require_load``, neither does a pull whose checkpoints
    were proven by hash only."""
    dest = Path(pull.dest)
    if not pull.verified or not pull.manifest_sha256:
        return None, f"the pull into {dest} did not verify"
    record = V.read_verified(dest)
    if record is None:
        return None, f"{dest / V.VERIFIED_NAME} is missing; pull again or `outlive verify {dest}`"
    if record.get("manifest_sha256") != pull.manifest_sha256:
        return None, f"{dest / V.VERIFIED_NAME} names another manifest; pull again"
    if record.get("snapshot"):
        return None, (
            f"the pull into {dest} is a snapshot taken while the run was still "
            f"{record.get('run_state')}; pull again after it ended"
        )
    skipped = record.get("load_skipped") or []
    if require_load and skipped:
        return None, (
            f"{len(skipped)} checkpoint(s) in {dest} were not load-checked (e.g. {skipped[0]}) "
            f"and --require-load-check needs them loaded; install torch here and run "
            f"`outlive verify {dest} --require-load-check`"
        )
    try:
        manifest = V.load_manifest(dest, pull.manifest_sha256)
    except UsageError as exc:
        return None, str(exc)
    problem = _copy_problem(dest, manifest)
    return (None, problem) if problem else (manifest, None)


def _copy_problem(dest: Path, manifest: V.Manifest) -> str | None:
    """The first entry whose local copy no longer matches the manifest by content, or None."""

    def one(entry: V.Entry) -> str | None:
        local = dest / entry.path
        if entry.outside is not None:
            return None  # never pulled: the gate lists it as lost on its own
        try:
            if entry.link is not None:
                if os.readlink(local) != entry.link:
                    return f"{local} no longer links where it did; pull again"
                return None
            if os.lstat(local).st_size != entry.size:
                return f"{local} changed size since it was verified; pull again"
            digest, _ = hash_file(local)
        except OSError:
            return f"{local} is gone from the pulled copy or unreadable; pull again"
        if digest != entry.sha256:
            return f"{local} changed content since it was verified (SHA-256 differs); pull again"
        return None

    workers = max(1, min(V.MAX_WORKERS, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for problem in pool.map(one, list(manifest.entries.values())):
            if problem:
                return problem
    return None


def _outputs_of(target: Target, pulls: list[PullRecord]) -> list[str]:
    """Declared outputs of a run: the target's own plus every one a pull of it asked for."""
    seen: list[str] = []
    for p in pulls:
        for r in p.roots:
            label = str(r.get("label", ""))
            if label.startswith(OUTPUT_PREFIX + "/"):
                seen.append(label[len(OUTPUT_PREFIX) + 1 :])
    try:
        wanted = declared_outputs(target, seen)
    except UsageError:
        wanted = declared_outputs(target)
    # keep only the outermost of nested declarations
    return [o for o in wanted if not any(o.startswith(p + "/") for p in wanted if p != o)]


def _followed_links(pulls: list[PullRecord]) -> bool:
    """Whether a pull of the run asked for ``--follow-links`` (its ``pull.json`` says): the
    box then lists the same content behind links for the gate as it did for that pull."""
    for p in pulls:
        with contextlib.suppress(UsageError):
            if V.read_pull_info(Path(p.dest)).get("follow_links"):
                return True
    return False


def inspect(session: Session, target_name: str, *, require_load: bool = False) -> GateReport:
    """Look at the target once: what every known run has on the box now, and whether a
    verified pull covers each file. Plain data; ``decide`` turns it into a verdict."""
    cfg = session.cfg
    target = cfg.target(target_name)
    if target.is_local:
        raise UsageError(
            "the local target is this machine: there is no meter to stop and nothing to tear down"
        )
    profile = load_profile(target.profile, cfg.profile_dirs)
    facts = teardown_facts(profile)
    exact = session.backend(target).teardown_commands()  # the platform's own, when it has them
    if exact:
        steps: list[PlanStep] = [{"verb": "delete", "command": c, "how": c} for c in exact]
        facts["plan"] = steps + [p for p in facts["plan"] if not p["command"]]
    with session.store as store:
        runs = [r for r in store.all() if r.target == target.name]
        pulls = store.pulls([r.run_id for r in runs]) if runs else []
    by_run: dict[str, list[PullRecord]] = {}
    for p in pulls:
        by_run.setdefault(p.run_id, []).append(p)

    # Which local copies count, and what they hold: box path -> sha256 / link target.
    covered: dict[str, str] = {}
    pull_views: dict[str, list[PullView]] = {}
    for p in pulls:
        manifest, problem = check_pulled_copy(p, require_load=require_load)
        record = V.read_verified(Path(p.dest)) or {}
        pull_views.setdefault(p.run_id, []).append(
            {
                "dest": p.dest,
                "manifest_sha256": p.manifest_sha256,
                "pulled_at": p.pulled_at,
                "valid": manifest is not None,
                "snapshot": bool(record.get("snapshot")),
                "problem": problem,
            }
        )
        if manifest is not None:
            for entry in manifest.entries.values():
                covered[_abs(manifest.roots, entry.path)] = _entry_key(entry)

    # Runs that share result roots (the same name reuses its checkpoint dir) are looked at once.
    sets: list[list[dict[str, str]]] = []
    index_of: dict[str, int] = {}
    set_of: dict[str, int] = {}
    follows: list[bool] = []
    for rec in runs:
        roots = result_roots(target, rec, _outputs_of(target, by_run.get(rec.run_id, [])))
        follow = _followed_links(by_run.get(rec.run_id, []))
        key = repr((roots, follow))
        if key not in index_of:
            index_of[key] = len(sets)
            sets.append(roots)
            follows.append(follow)
        set_of[rec.run_id] = index_of[key]

    report: GateReport = {
        "target": target.name,
        "profile": profile.name,
        "host": target.connection.host,
        "reachable": True,
        "error": None,
        "runs": [],
        "lost_if_abandoned": [],
        "teardown": facts,
        "allowed": False,
        "refused": None,
        "confirmed": False,
        "abandoned": False,
        "plan": None,
        "note": "outlive checks only the runs it launched; anything else on the box is unknown",
        "released": [],
    }
    reply: ManifestReply | None = None
    if runs:
        try:
            reply = session.backend(target).manifest(
                {
                    # never "reuse": the gate re-reads every byte (a pull's hash cache
                    # trusts stamps, the gate trusts only bytes)
                    "sets": [
                        {"roots": s, "hash": True, "follow_links": f}
                        for s, f in zip(sets, follows, strict=True)
                    ],
                    "probe_run_dirs": [r.run_dir for r in runs],
                },
                timeout_s=GATE_TIMEOUT_S,
            )
        except TransportError as exc:
            report["reachable"], report["error"] = False, str(exc)
        finally:
            report["released"] = session.release()
    for i, rec in enumerate(runs):
        report["runs"].append(_run_view(rec, i, reply, set_of, covered, pull_views))
    # Runs that share roots list the same box files: each file is listed once, with its runs.
    lost: dict[str, Lost] = {}
    for run in report["runs"]:
        for item in run["uncovered"]:
            key = item["box_path"]
            gone = lost.setdefault(key, {**item, "runs": [], "names": []})
            gone["runs"].append(run["run_id"])
            if run["name"] not in gone["names"]:
                gone["names"].append(run["name"])
    report["lost_if_abandoned"] = list(lost.values())
    return report


def _run_view(
    rec: RunRecord,
    index: int,
    reply: ManifestReply | None,
    set_of: dict[str, int],
    covered: dict[str, str],
    pull_views: dict[str, list[PullView]],
) -> RunView:
    view: RunView = {
        "run_id": rec.run_id,
        "name": rec.name,
        "state": rec.state,
        "ckpt_dir": rec.ckpt_dir,
        "files": None,
        "size_bytes": None,
        "manifest_sha256": None,
        "covered": False,
        "uncovered": [],
        "pulls": pull_views.get(rec.run_id, []),
    }
    if reply is None:
        view["uncovered"] = [
            {"path": None, "box_path": rec.ckpt_dir, "size_bytes": None,
             "why": "unknown: the box did not answer"}
        ]  # fmt: skip
        return view
    view["state"] = reply["probes"][index].get("state") or rec.state
    box = reply["manifests"][set_of[rec.run_id]]
    manifest = V.Manifest.from_reply(box)
    view["files"], view["size_bytes"] = len(manifest.entries), manifest.total_bytes
    view["manifest_sha256"] = box["sha256"]
    for entry in manifest.entries.values():
        where = _abs(manifest.roots, entry.path)
        if entry.outside is not None:
            view["uncovered"].append(
                {
                    "path": entry.path,
                    "box_path": where,
                    "size_bytes": None,
                    "why": f"a symlink to {entry.outside}, outside the run's result roots: its "
                    "data was never pulled (`outlive pull --follow-links`)",
                }
            )
            continue
        have = covered.get(where)
        if have == _entry_key(entry):
            continue
        if have is not None:
            why = "changed on the box since the pull"
        elif any(p["snapshot"] for p in view["pulls"]):
            why = "pulled only in a snapshot taken while the run was still going"
        else:
            why = "never pulled"
        view["uncovered"].append(
            {"path": entry.path, "box_path": where, "size_bytes": entry.size, "why": why}
        )
    view["covered"] = not view["uncovered"]
    return view


# ---------------------------------------------------------------------------------------------
# the verdict


def decide(
    report: GateReport,
    *,
    confirm: str | None,
    abandon: bool = False,
    confirm_abandon: str | None = None,
    ask: Ask | None = None,
) -> GateReport:
    """Apply the Iron Law to an ``inspect`` report: refuse (``refused`` says why) unless every
    result is covered (or abandoned with its own typed confirmation) and the target's name was
    typed. The plan of commands is filled in only when the gate passes."""
    name = str(report["target"])
    out = report.copy()
    out["abandoned"] = False

    def refuse(why: str) -> GateReport:
        out["allowed"], out["refused"], out["plan"] = False, why, None
        return out

    # Only an ended run's results stop changing: running, pending or requeued ones go on, and
    # one whose records the box could not read ("unknown") may be running still.
    busy = [r for r in report["runs"] if wire.State.parse(r["state"]) not in wire.ENDED_STATES]
    lost = report["lost_if_abandoned"]
    if (busy or lost or not report["reachable"]) and not abandon:
        if not report["reachable"]:
            return refuse(
                f"cannot check the results on {name} ({report['error']}); the gate never passes "
                "on last-known data: bring the box back, or give the results up with "
                "--abandon-results"
            )
        if busy:
            names = ", ".join(f"{r['name']!r} {r['state']}" for r in busy[:3])
            unknown = any(wire.State.parse(r["state"]) is None for r in busy)
            why = "; `outlive status` says why a state is unknown" if unknown else ""
            return refuse(
                f"{len(busy)} run(s) on {name} have not ended ({names}); their results may "
                f"still change: wait or `outlive cancel`, then pull{why}"
            )
        # The newest run of each name holds what its relaunches share (the same checkpoints).
        newest = {x["runs"][-1] for x in lost}
        shown = ", ".join(f"`outlive pull {rid}`" for rid in sorted(newest)[:3])
        first = lost[0]
        return refuse(
            f"{len(lost)} file(s) on {name} are not covered by a verified pull (e.g. "
            f"{first['path'] or first['box_path']}: {first['why']}); run {shown}, "
            "or --abandon-results to give them up (Iron Law)"
        )
    if abandon and (busy or lost or not report["reachable"]):
        phrase = f"abandon {name}"
        typed = confirm_abandon
        if typed is None and ask is not None:
            typed = ask(f'Type "{phrase}" to give up the results listed above: ')
        if typed is None:
            return refuse(
                f"--abandon-results needs its own confirmation: pass --confirm-abandon "
                f"'{phrase}' (or run interactively)"
            )
        if typed.strip() != phrase:
            return refuse(f'typed {typed.strip()!r}, not "{phrase}": nothing is given up')
        out["abandoned"] = True
    typed = confirm
    if typed is None and ask is not None:
        typed = ask(f"Type the target's name ({name}) to see the teardown commands: ")
    if typed is None:
        return refuse(f"the gate needs the target's name typed: pass --confirm {name}")
    if typed.strip() != name:
        return refuse(f"typed {typed.strip()!r}, which is not the target's name {name!r}")
    out["allowed"], out["refused"], out["confirmed"] = True, None, True
    out["plan"] = report["teardown"]["plan"]
    return out
