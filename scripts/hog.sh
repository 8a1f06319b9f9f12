#!/usr/bin/env bash
# Run a command with every core kept busy, to prove it holds on a loaded machine:
#   bash scripts/hog.sh bash scripts/test.sh
#   bash scripts/hog.sh uv run pytest tests/integration -x -q
# One busy loop per core (nproc, or HOG_PROCS=N), at normal priority: not niced, since the point
# is that the command competes for the CPU. The loops end when the command does, at once on INT
# or TERM (passed on to the command, whose teardown then runs), and even if this script is
# SIGKILLed (each loop dies with its parent). The command's exit status is this script's.
set -uo pipefail

if [ $# -eq 0 ]; then
  echo "usage: scripts/hog.sh COMMAND [ARG...]  (runs COMMAND with every core busy)" >&2
  exit 2
fi

# A busy loop that dies with this shell (PR_SET_PDEATHSIG), so none outlives it.
HOG='import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
while True:
    pass'

n="${HOG_PROCS:-$(nproc)}"
hogs=()
cmd=""
stop_hogs() {
  if [ ${#hogs[@]} -gt 0 ]; then
    kill "${hogs[@]}" 2>/dev/null
    wait "${hogs[@]}" 2>/dev/null
    hogs=()
  fi
}
on_signal() {  # stop the loops at once, pass the signal on, let the command finish its teardown
  stop_hogs
  [ -n "$cmd" ] && kill "-$1" "$cmd" 2>/dev/null && wait "$cmd"
  exit "$2"
}
trap stop_hogs EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

for _ in $(seq "$n"); do
  python3 -c "$HOG" "$$" &
  hogs+=("$!")
done
echo "hog: $n busy loop(s) at normal priority (pids ${hogs[*]}) while: $*" >&2

# In the background so a signal reaches the traps at once; with SIGINT back at its default (a
# background job of a script starts with it ignored) and this script's stdin.
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@" <&0 &
cmd=$!
wait "$cmd"
rc=$?
cmd=""
stop_hogs
exit "$rc"
