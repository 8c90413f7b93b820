#!/usr/bin/env bash
# Updates per second of every dir: strategy at 1, 4 and 50 workers, with --fsync never and
# every: the files table of the dir target (docs/targets.md). Median of --repeat runs each.
#
#   scripts/files_table.sh [--dir PATH] [--repeat R] [--ops N]
#
# PATH (default: a fresh directory under $TMPDIR) must be on the file system to measure; the
# runs' files are removed afterwards (torture clean). Needs bash, cargo, jq.
# Exit: 0 table printed; 2 bad flag or jq missing; 1 a run failed or a correct strategy lost.
set -euo pipefail
args="$*"
dir=""
repeat=3
ops=200
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir="${2:?--dir needs a path}"; shift 2 ;;
        --repeat) repeat="${2:?--repeat needs a number}"; shift 2 ;;
        --ops) ops="${2:?--ops needs a number}"; shift 2 ;;
        *) echo "files_table.sh: unknown flag '$1' (--dir PATH, --repeat R, --ops N)" >&2; exit 2 ;;
    esac
done
command -v jq >/dev/null || { echo "files_table.sh: jq is not installed" >&2; exit 2; }
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
if [ -z "$dir" ]; then dir="$work/files"; mkdir -p "$dir"; fi

provenance "scripts/files_table.sh $args"
echo "dir target: updates per second, median of $repeat runs ($ops updates per worker, --latency off)"
echo
echo "| fsync | workers | racy (lost) | flock | fcntl | link-cas | append |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for fsync in never every; do
    for workers in 1 4 50; do
        json=$("$torture" --target "dir:$dir" --fsync "$fsync" -w "$workers" -n "$ops" \
            --repeat "$repeat" --latency off --json) || status=$?
        # exit 0: every correct strategy exact (racy may lose); anything else is a failure.
        if [ "${status:-0}" -ne 0 ]; then
            echo "files_table.sh: the run at --fsync $fsync -w $workers exited $status" >&2; exit 1
        fi
        echo "$json" | jq -r --arg f "$fsync" --arg w "$workers" '
          def rate: if . >= 1e6 then "\(. / 1e5 | floor / 10)M"
                    elif . >= 1e3 then "\(. / 1e2 | floor / 10)k"
                    else "\(. | floor)" end;
          [.strategies[] | {(.strategy): .}] | add as $s
          | "| \($f) | \($w) | \($s.racy.ops_per_sec_over_runs.median | rate) (\($s.racy.lost)) "
            + "| \($s.flock.ops_per_sec_over_runs.median | rate) "
            + "| \($s.fcntl.ops_per_sec_over_runs.median | rate) "
            + "| \($s["link-cas"].ops_per_sec_over_runs.median | rate) "
            + "| \($s.append.ops_per_sec_over_runs.median | rate) |"'
    done
done
"$torture" clean "dir:$dir" >/dev/null
