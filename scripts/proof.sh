#!/usr/bin/env bash
# The claims of issues 12 and 13, proven by torture itself over repeated runs: each matrix is
# one `torture run --repeat R --json`, and every run of it is counted (lost something, or exact).
#
#   scripts/proof.sh [--repeat R] [--ops N] [--sql-ops N] [--dir PATH]
#
# Claims (8 workers everywhere; PostgreSQL's connections are shared, so never more):
# - PostgreSQL and MariaDB (--sql-ops updates per worker, 20 by default: a run there costs
#   ~0.4 s at 20 and ~6 s at the default 1000, and the matrix is 3,000 runs):
#   atomic, cas, lock, advisory exact in every run at read committed, repeatable read and
#   serializable; racy as Hermitage says, in every run: PostgreSQL loses at read committed
#   (issue 12 asks >= 99 of 100; every run is claimed here) and is exact at repeatable read and
#   serializable, with serialization failures retried in every run; MariaDB loses at read
#   committed and repeatable read and is exact at serializable. racy runs with --store target,
#   and every losing run must have witnesses (two workers that read the same value).
# - Redis and dir: (--ops updates per worker, torture's default 1000): racy loses in >= 99%
#   of runs, each losing run with witnesses (Redis: --store target; dir: --store log:);
#   Redis atomic, cas, script, lock and dir flock, fcntl, link-cas, append exact in every run.
# - Redis lock with one holder paused past the lock's TTL (100 updates per worker,
#   --lock-ttl 30 --pause 1:150, the shape of docs/targets.md): loses in every run without
#   --fencing, exact in every run with it.
# - --scenario cache on Redis and --scenario record on dir (--ops): the bug (two-step,
#   whole-record) tears or loses in >= 99% of runs; each fix exact in every run. record's
#   link-cas fix runs 100 updates per worker (~5 s a run at 1000: every rewrite retries).
#
# Every run's rows, keys and files are removed (torture clean TARGET --run ID, one run at a
# time: other people's runs share the servers), the witness runs last, after they are shown.
# Servers: RACEPOOL_POSTGRES_URL, RACEPOOL_MYSQL_URL, RACEPOOL_REDIS_URL (the team's defaults).
# Needs bash, cargo, jq. About 30 minutes at the defaults on a 2-core machine.
# Exit: 0 every claim held; 1 a claim failed (or a run could not be counted); 2 bad flag, jq
# missing or a server unreachable.
set -euo pipefail
args="$*"
repeat=100
ops=1000
sql_ops=20
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat="${2:?--repeat needs a number}"; shift 2 ;;
        --ops) ops="${2:?--ops needs a number}"; shift 2 ;;
        --sql-ops) sql_ops="${2:?--sql-ops needs a number}"; shift 2 ;;
        --dir) dir="${2:?--dir needs a path}"; shift 2 ;;
        *) echo "proof.sh: unknown flag '$1' (--repeat R, --ops N, --sql-ops N, --dir PATH)" >&2
           exit 2 ;;
    esac
done
for n in "$repeat" "$ops" "$sql_ops"; do
    case "$n" in ''|*[!0-9]*|0) echo "proof.sh: --repeat, --ops and --sql-ops are whole numbers above 0" >&2
        exit 2 ;; esac
done
if [ -n "$dir" ] && { [ ! -d "$dir" ] || [ ! -w "$dir" ]; }; then
    echo "proof.sh: --dir $dir is not a writable directory" >&2; exit 2
fi
command -v jq >/dev/null || { echo "proof.sh: jq is not installed" >&2; exit 2; }
pg="${RACEPOOL_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
my="${RACEPOOL_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
redis="${RACEPOOL_REDIS_URL:-redis://127.0.0.1:6379}"
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
if [ -z "$dir" ]; then dir="$work/files"; mkdir -p "$dir"; fi
files="dir:$dir"
workers=8

# Runs still to remove, "TARGET ID" a line; the witness runs wait in $work/kept until shown.
: >"$work/kept"
clean_all() {
    local target id
    for list in "$work/runs" "$work/kept"; do
        [ -f "$list" ] || continue
        while read -r target id; do
            "$torture" clean "$target" --run "$id" >/dev/null 2>&1 \
                || echo "proof.sh: could not remove run $id from $target" >&2
        done <"$list"
        : >"$list"
    done
}
trap 'clean_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# The exact commands the table was made from, with the scratch directory's path hidden.
shown() { sed "s|$work|<scratch>|g" <<<"$*"; }

failed=0
rows="$work/rows"
: >"$rows"
: >"$work/commands"
: >"$work/witness"

# matrix TARGET LABEL CLAIMS -- torture run flags...
# CLAIMS maps each row to its claim: "STRATEGY[@ISOLATION]=CLAIM,…" (a row's strategy is its
# scenario variant if it has one; * matches any). A claim is one of:
#   exact       exact in every run
#   retried     exact in every run, with retries (serialization failures) in every run
#   lose-all    lost in every run, each losing run with witnesses when stored (--store)
#   lose-99     lost in >= 99% of runs, each losing run with witnesses when stored
matrix() {
    local target="$1" label="$2" claims="$3"; shift 4
    local status=0
    local -a cmd=("$torture" run --target "$target" --workers "$workers" --repeat "$repeat" "$@" --json)
    shown "torture run --target $target --workers $workers --repeat $repeat $* --json" >>"$work/commands"
    echo "proof.sh: $(date -u +%H:%M:%S) $label: $(shown "$*")" >&2
    "${cmd[@]}" >"$work/out.json" 2>"$work/err" || status=$?
    # 0: every exact strategy exact; 1: one lost (the claims decide whether it should have).
    if [ "$status" -gt 1 ] || ! jq -e .strategies >/dev/null 2>&1 <"$work/out.json"; then
        echo "| $label | - | $(shown "$*") | - | - | - | could not run (exit $status: $(tail -1 "$work/err" | tr '|' '/')) | **FAILED** | |" >>"$rows"
        failed=1
        jq -r '.strategies[]?.runs[]?.run' "$work/out.json" 2>/dev/null \
            | sed "s|^|$target |" >>"$work/runs" || true
        clean_all
        return
    fi
    jq -r '.strategies[].runs[].run' "$work/out.json" | sed "s|^|$target |" >>"$work/runs"
    jq -r '.strategies[] | [
        (.scenario.variant // .strategy),
        (.isolation // "-"),
        (.runs | length),
        .runs_with_loss,
        ([.runs[] | select(.count.lost == 0 and .count.unexpected == 0 and (.interrupted | not))] | length),
        ([.runs[] | select(.count.lost > 0 and ((.history.witnesses // 0) > 0))] | length),
        ([.runs[] | select(.retries > 0)] | length),
        ((.retries_per_update // 0) * 100 | round / 100),
        ([.runs[] | select(.count.lost > 0 and ((.history.witnesses // 0) > 0)) | .run] | first // "-"),
        (.runs[0].ops_per_worker),
        ([.runs[] | select(.history != null)] | length)
      ] | @tsv' "$work/out.json" >"$work/parsed"
    local name iso runs loss exact witnessed retried rpu witness_run per_worker stored
    while IFS=$'\t' read -r name iso runs loss exact witnessed retried rpu witness_run per_worker stored; do
        local claim="" text held=held detail="" c key list
        IFS=, read -ra list <<<"$claims"
        for c in "${list[@]}"; do
            key="${c%%=*}"
            if [ "$key" = "$name@$iso" ] || [ "$key" = "$name" ] || [ "$key" = '*' ]; then
                claim="${c#*=}"; break
            fi
        done
        [ "$runs" -eq "$repeat" ] || held=FAILED
        # Losing runs must name their witnesses when the run stored its events.
        local witnesses_ok=1
        if [ "$stored" -gt 0 ] && [ "$witnessed" -ne "$loss" ]; then witnesses_ok=0; fi
        case "$claim" in
            exact)
                text="exact in every run"
                [ "$exact" -eq "$runs" ] || held=FAILED ;;
            retried)
                text="exact in every run, retried in every run"
                { [ "$exact" -eq "$runs" ] && [ "$retried" -eq "$runs" ]; } || held=FAILED ;;
            lose-all)
                text="loses in every run"
                { [ "$loss" -eq "$runs" ] && [ "$witnesses_ok" -eq 1 ]; } || held=FAILED ;;
            lose-99)
                text="loses in >= 99% of runs"
                { [ $((loss * 100)) -ge $((runs * 99)) ] && [ "$witnesses_ok" -eq 1 ]; } || held=FAILED ;;
            *)
                text="no claim"; held=FAILED ;;
        esac
        if [ "$stored" -gt 0 ] && [ "$loss" -gt 0 ]; then
            detail="witnesses in $witnessed of $loss losing runs"
            text="$text, witnesses in each"
        fi
        if [ "$retried" -gt 0 ]; then
            detail="${detail:+$detail; }retries in $retried runs ($rpu per update)"
        fi
        [ "$held" = held ] || failed=1
        echo "| $label | $iso | $name | $workers × $per_worker | $runs | $loss | $exact | $text | $( [ "$held" = held ] && echo held || echo '**FAILED**') | $detail |" >>"$rows"
        if [ "$witness_run" != "-" ]; then
            echo "$target $witness_run" >>"$work/kept"
            # The dir target's events are in the log (--store log:PATH), the others' in the target.
            local store_arg
            store_arg="$(printf '%s\n' "$@" | sed -n 's/^log://p')"
            local at=""
            [ "$iso" = "-" ] || at=" $iso"
            echo "$label$at $name|${store_arg:-$target}|$witness_run" >>"$work/witness"
        fi
    done <"$work/parsed"
    # Every run but the kept witnesses, removed now: a 3,000-run matrix leaves nothing behind.
    grep -v -x -F -f "$work/kept" "$work/runs" >"$work/runs.left" || true
    mv "$work/runs.left" "$work/runs"
    local target_line id
    while read -r target_line id; do
        "$torture" clean "$target_line" --run "$id" >/dev/null \
            || { echo "proof.sh: could not remove run $id from $target_line" >&2; failed=1; }
    done <"$work/runs"
    : >"$work/runs"
}

# Reachable before anything runs: exit 2, one line naming the server.
for target in "$pg" "$my" "$redis"; do
    if ! "$torture" run --target "$target" --workers 1 --ops 1 --strategy atomic --json \
        >"$work/probe.json" 2>"$work/err"; then
        echo "proof.sh: $(shown "$target") cannot take a run: $(tail -1 "$work/err")" >&2; exit 2
    fi
    jq -r '.strategies[].runs[].run' "$work/probe.json" | while read -r id; do
        "$torture" clean "$target" --run "$id" >/dev/null
    done
done

header="$(provenance "scripts/proof.sh $args")"
start=$(date +%s)
levels=read-committed,repeatable-read,serializable
matrix "$pg" postgres 'racy@read-committed=lose-all,*=retried' -- \
    --ops "$sql_ops" --strategy racy --isolation "$levels" --store target
matrix "$pg" postgres '*=exact' -- \
    --ops "$sql_ops" --strategy atomic,cas,lock,advisory --isolation "$levels"
matrix "$my" mariadb 'racy@serializable=exact,*=lose-all' -- \
    --ops "$sql_ops" --strategy racy --isolation "$levels" --store target
matrix "$my" mariadb '*=exact' -- \
    --ops "$sql_ops" --strategy atomic,cas,lock,advisory --isolation "$levels"
matrix "$redis" redis '*=lose-99' -- --ops "$ops" --strategy racy --store target
matrix "$redis" redis '*=exact' -- --ops "$ops" --strategy atomic,cas,script,lock
matrix "$redis" 'redis, lock paused past its TTL' '*=lose-all' -- \
    --ops 100 --strategy lock --lock-ttl 30 --pause 1:150
matrix "$redis" 'redis, lock --fencing paused past its TTL' '*=exact' -- \
    --ops 100 --strategy lock --lock-ttl 30 --pause 1:150 --fencing
matrix "$redis" 'redis, scenario cache' 'two-step=lose-99,*=exact' -- --ops "$ops" --scenario cache
matrix "$files" dir '*=lose-99' -- --ops "$ops" --strategy racy --store "log:$work/racy.log"
matrix "$files" dir '*=exact' -- --ops "$ops" --strategy flock,fcntl,link-cas,append
matrix "$files" 'dir, scenario record' 'whole-record=lose-99,*=exact' -- \
    --ops "$ops" --scenario record --fix whole-record,flock,field-files
matrix "$files" 'dir, scenario record' '*=exact' -- --ops 100 --scenario record --fix link-cas
wall=$(( $(date +%s) - start ))

echo "$header"
echo
echo "Issues 12 and 13's claims, $repeat runs per row, $workers workers; each row one strategy"
echo "(or scenario variant) at one isolation level. A run \"with loss\" lost updates or tore reads;"
echo "\"exact\" ended with every acknowledged update counted. Wall time of the runs: $((wall / 60)) min $((wall % 60)) s."
echo
echo "| target | isolation | strategy | workers × updates | runs | with loss | exact | claim | held | detail |"
echo "| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |"
cat "$rows"
echo
total=$(wc -l <"$rows")
bad=$(grep -c 'FAILED' "$rows" || true)
echo "$((total - bad)) of $total claims held."
echo
echo "Commands (the k-th run of a row used --seed k: the same command with --repeat 1 --seed k"
echo "replays its seeded choices, not its timing):"
echo
sed 's/^/    /' "$work/commands"
echo
echo "Witnesses: one losing run per row, verified again from its record alone, then removed."
while IFS='|' read -r what where id; do
    echo
    if [ "${where#/}" != "$where" ]; then
        # A log holds every run of its matrix: this run's block of the verdict.
        echo "$what: \`torture verify $(shown "$where")\`, run $id:"
        echo
        "$torture" verify "$where" 2>/dev/null \
            | awk -v id="$id" '/^run / { on = ($2 == id) } on' | head -n 4 | sed 's/^/    /' || true
    else
        echo "$what: \`torture verify $where --run $id\`:"
        echo
        "$torture" verify "$where" --run "$id" 2>/dev/null | head -n 4 | sed 's/^/    /' || true
    fi
done <"$work/witness"
clean_all
[ "$failed" -eq 0 ] || exit 1
