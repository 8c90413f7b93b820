# Sourced by the scripts beside it: a scratch directory removed on exit, the release build of
# torture, and the C peer compiled into the scratch directory.
#   work     scratch directory
#   torture  the release binary
#   loop     the C peer (benches/c/loop.c, cc -O2)

command -v cc >/dev/null || { echo "$(basename "$0"): cc is not installed" >&2; exit 2; }
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --bin torture
torture="$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/torture"
loop="$work/loop"
cc -O2 -o "$loop" benches/c/loop.c -lpthread

# provenance: the lines every generated table starts with, so a table in results/ says what made it.
provenance() { # SCRIPT ARGS...
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
    echo "command: $*"
    echo "commit: $(git describe --always --dirty 2>/dev/null || echo unknown)"
    echo "machine: ${cpu:-unknown cpu}, $(nproc) cores, $(uname -sr)"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
}
