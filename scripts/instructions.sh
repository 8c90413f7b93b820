#!/usr/bin/env bash
# Instructions per update, counted with callgrind, for each memory strategy: racepool's worker
# loop (untimed, and timed on every update) beside the C peer (benches/c/loop.c), then one
# timed update alone, the old way and the new (benches/timed_update.rs).
#
#   scripts/instructions.sh [--ops N] [--strategies a,b,...]
#
# Per update = (Ir at 2N ops - Ir at N ops) / N, N = 1,000,000 by default: whatever runs once
# per process cancels out. 1 worker, 1 slot, process mode, release build.
#
# Which process is counted: valgrind follows a forked worker into a file of its own
# (callgrind.out.PID), and the counts are zeroed when fork runs (--zero-before=*_Fork), so the
# worker's file holds the update loop and its fixed start and end. Only that file is read: the
# parent's count includes its wait for the worker, which grows with wall time (and valgrind's
# slowdown), not with updates. Process mode rather than --mode threads for the same reason: one
# file per process keeps the waiting parent out without --separate-threads bookkeeping, and it
# is the mode the C peer and the issue's table use.
#
# Caveat: valgrind hides the vDSO, so clock_gettime runs as a syscall whose kernel side is not
# counted (about 10 instructions of glibc are). The timed figures undercount the old clock.
#
# Exit: 0 table printed; 2 bad flag or valgrind/cc missing; 1 a run failed.
# Needs bash, cargo, cc, valgrind (callgrind).
set -euo pipefail
args="$*"

ops=1000000
strategies="atomic cas racy futex-lock spin-lock pthread"
while [ $# -gt 0 ]; do
    case "$1" in
        --ops) ops="${2:?--ops needs a number}"; shift 2 ;;
        --strategies) strategies="${2//,/ }"; shift 2 ;;
        *) echo "instructions.sh: unknown flag '$1' (--ops N, --strategies a,b)" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed" >&2; exit 2; }
positive() { # NAME VALUE: exits 2 unless VALUE is a whole number above 0
    case "$2" in ''|*[!0-9]*|0) echo "instructions.sh: $1 must be a whole number above 0" >&2; exit 2 ;; esac
}
positive --ops "$ops"
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"
timed_update="$(cargo bench --no-run --bench timed_update --message-format json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)"

# worker_ir NAME COMMAND...: runs COMMAND under callgrind; prints the forked worker's Ir.
worker_ir() {
    local name="$1"; shift
    local status=0
    valgrind --tool=callgrind --zero-before='*_Fork' \
        --callgrind-out-file="$work/$name.%p" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    local parent=$!
    wait "$parent" || status=$?
    # racy at one worker loses nothing, but 1 (a check failed) is racy's to return.
    if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
        echo "instructions.sh: '$*' exited $status:" >&2; tail -5 "$work/$name.err" >&2; exit 1
    fi
    local files=() f
    for f in "$work/$name".*; do
        case "$f" in "$work/$name.$parent"|*.out|*.err) ;; *) files+=("$f") ;; esac
    done
    if [ "${#files[@]}" -ne 1 ]; then
        echo "instructions.sh: '$*' left ${#files[@]} worker profiles, expected 1" >&2; exit 1
    fi
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "${files[0]}"
}

# whole_ir NAME COMMAND...: the Ir of the functions matching timed_update::run_* (one process).
whole_ir() {
    local name="$1"; shift
    valgrind --tool=callgrind --toggle-collect='timed_update::run_*' \
        --callgrind-out-file="$work/$name" "$@" >/dev/null 2>"$work/$name.err" \
        || { echo "instructions.sh: '$*' failed:" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$work/$name"
}

# per_update SMALL LARGE: (LARGE - SMALL) / ops, one decimal.
per_update() { awk -v a="$1" -v b="$2" -v n="$ops" 'BEGIN { printf "%.1f", (b - a) / n }'; }

racepool() { # strategy latency ops
    worker_ir "rp-$1-$2-$3" "$torture" run --strategy "$1" --workers 1 --slots 1 \
        --ops "$3" --latency "$2" --stall-timeout 600
}
c_loop() { # strategy ops
    worker_ir "c-$1-$2" "$loop" "$1" 1 "$2" 1
}

provenance "scripts/instructions.sh $args"
echo "Instructions per update (callgrind: (Ir at $((2 * ops)) ops - Ir at $ops ops) / $ops;"
echo "the forked worker only; 1 worker, 1 slot, processes, release build)"
echo
echo "| strategy | C peer | racepool, --latency off | racepool, --latency all |"
echo "| --- | ---: | ---: | ---: |"
for s in $strategies; do
    case "$s" in
        atomic|cas|racy) c="$(per_update "$(c_loop "$s" "$ops")" "$(c_loop "$s" $((2 * ops)))")" ;;
        pthread)
            plain="$(per_update "$(c_loop pthread "$ops")" "$(c_loop pthread $((2 * ops)))")"
            robust="$(per_update "$(c_loop pthread-robust "$ops")" "$(c_loop pthread-robust $((2 * ops)))")"
            c="$plain (robust: $robust)" ;;
        *) c="-" ;;
    esac
    off="$(per_update "$(racepool "$s" off "$ops")" "$(racepool "$s" off $((2 * ops)))")"
    all="$(per_update "$(racepool "$s" all "$ops")" "$(racepool "$s" all $((2 * ops)))")"
    echo "| $s | $c | $off | $all |"
done

echo
echo "One timed update alone (benches/timed_update.rs: a fetch_add, timed or not)"
echo
echo "| timing | instructions per update |"
echo "| --- | ---: |"
for mode in off hdr buckets laps; do
    label="$(case "$mode" in
        off) echo "untimed" ;;
        hdr) echo "before: clock_gettime x2 + HDR record" ;;
        buckets) echo "after: Clock::now x2 + Buckets::record" ;;
        laps) echo "after, one read per update (laps)" ;;
    esac)"
    echo "| $label | $(per_update "$(whole_ir "tu-$mode-1" "$timed_update" "$mode" "$ops")" \
        "$(whole_ir "tu-$mode-2" "$timed_update" "$mode" $((2 * ops)))") |"
done
echo
echo "clock source of the new timer: $("$timed_update" buckets 1 | cut -f3 | sed "s/^clock //")"
