"""The sweep's own rows in the project's registry (tables made by ``outlive.store.MIGRATIONS``).

Only what cannot be re-derived lives here: the sweep, its items (parameters, command, order),
each target's slots and the moves. Which run an item has and how each ended is read from the
``runs`` table (the launch journal), so a client killed at any moment loses nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from outlive.errors import UsageError
from outlive.store import Store
from outlive.sweep.spec import SweepSpec


@dataclass(frozen=True)
class ItemRow:
    sweep: str
    key: str
    run_name: str
    params: dict[str, object]
    command: list[str]
    position: int
    note: str | None


@dataclass(frozen=True)
class SweepRow:
    name: str
    source: str
    options: dict[str, object]  # targets, per_target, retries as last given
    created_at: float


def register(store: Store, spec: SweepSpec, options: dict[str, object]) -> list[str]:
    """Record the sweep and add the items the registry does not have yet (a grown file adds
    items; known items keep their rows); the keys added."""
    now = time.time()
    added: list[str] = []
    with store.connection() as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT source FROM sweeps WHERE name = ?", (spec.name,)).fetchone()
            if row is not None and row["source"] != spec.source:
                raise UsageError(
                    f"a sweep named {spec.name!r} already runs from {row['source']}; set another "
                    "name = ... in this file"
                )
            conn.execute(
                "INSERT INTO sweeps (name, source, spec, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec,"
                " updated_at = excluded.updated_at",
                (spec.name, spec.source, json.dumps(options), now, now),
            )
            have = {
                r["key"]: r["command"]
                for r in conn.execute(
                    "SELECT key, command FROM sweep_items WHERE sweep = ?", (spec.name,)
                )
            }
            _same_commands(spec, have)
            start = len(have)
            for n, item in enumerate(i for i in spec.items if i.key not in have):
                conn.execute(
                    "INSERT INTO sweep_items (sweep, key, run_name, params, command, position,"
                    " note, added_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                    (
                        spec.name,
                        item.key,
                        spec.run_name(item.key),
                        json.dumps(item.params),
                        json.dumps(item.command),
                        start + n,
                        now,
                    ),
                )
                added.append(item.key)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return added


def _same_commands(spec: SweepSpec, have: dict[str, str]) -> None:
    """Refuse a sweep whose file now gives a known item another command: its finished items
    would not run again, and the sweep's results would mix two commands."""
    import shlex

    for item in spec.items:
        known = have.get(item.key)
        if known is None or json.loads(known) == item.command:
            continue
        before, now = shlex.join(json.loads(known)), shlex.join(item.command)
        raise UsageError(
            f"sweep {spec.name!r} ran item {item.key} as `{before}`, but {spec.source} now "
            f"gives `{now}`: its runs would mix two commands; give the new command its own "
            'name = "..." in the file, or put the old command back'
        )


def sweeps(store: Store) -> list[SweepRow]:
    with store.connection() as conn:
        rows = conn.execute("SELECT * FROM sweeps ORDER BY created_at").fetchall()
    return [SweepRow(r["name"], r["source"], json.loads(r["spec"]), r["created_at"]) for r in rows]


def items(store: Store, sweep: str) -> list[ItemRow]:
    with store.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM sweep_items WHERE sweep = ? ORDER BY position", (sweep,)
        ).fetchall()
    return [
        ItemRow(
            r["sweep"],
            r["key"],
            r["run_name"],
            json.loads(r["params"]),
            json.loads(r["command"]),
            r["position"],
            r["note"],
        )
        for r in rows
    ]


def set_note(store: Store, sweep: str, key: str, note: str | None) -> None:
    """What the scheduler last did to an item and why (shown by ``sweep status``)."""
    with store.connection() as conn:
        conn.execute(
            "UPDATE sweep_items SET note = ? WHERE sweep = ? AND key = ?", (note, sweep, key)
        )


def slots(store: Store, sweep: str) -> dict[str, int]:
    with store.connection() as conn:
        rows = conn.execute("SELECT * FROM sweep_targets WHERE sweep = ?", (sweep,)).fetchall()
    return {r["target"]: int(r["slots"]) for r in rows}


def set_slots(store: Store, sweep: str, target: str, count: int) -> None:
    with store.connection() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO sweep_targets (sweep, target, slots) VALUES (?, ?, ?)",
            (sweep, target, count),
        )


def record_move(
    store: Store,
    run_id: str,
    name: str,
    from_target: str,
    to_target: str,
    new_run_id: str | None,
    checkpoint: str | None,
) -> None:
    with store.connection() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO moves (run_id, name, from_target, to_target, new_run_id,"
            " checkpoint, moved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, name, from_target, to_target, new_run_id, checkpoint, time.time()),
        )


def moved(store: Store) -> dict[str, str]:
    """Runs that were moved: run id → the target they went to."""
    with store.connection() as conn:
        rows = conn.execute("SELECT run_id, to_target FROM moves").fetchall()
    return {r["run_id"]: r["to_target"] for r in rows}
