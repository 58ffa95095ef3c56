#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the parsers that read user input.
#
#   tools/fuzz/run.sh TARGET SECONDS     one target (names: tools/fuzz/run.sh list)
#   tools/fuzz/run.sh all SECONDS        every target, SECONDS each
#
# Builds tools/fuzz (its own package: the main build never sees -sanitize=fuzzer), then runs each target
# on its committed seeds (tools/fuzz/corpus/TARGET, read only) plus a growing working corpus
# (tools/fuzz/.work/TARGET, ignored by git). A crash, trap, hang (> FUZZ_TIMEOUT s on one input) or an
# allocation over FUZZ_RSS_MB writes the input to tools/fuzz/artifacts/TARGET/ and fails the run.
# Prints one line per target: seconds, CPU seconds, inputs run, coverage, result. Exit status 1 on any finding.
# Environment: FUZZ_NO_BUILD=1 skips the build; FUZZ_TIMEOUT (default 30), FUZZ_RSS_MB (default 2048);
# FUZZ_SEED fixes libFuzzer's random seed; FUZZ_RUNS=N runs N inputs per target instead of SECONDS (CI uses
# both, so that its short run does the same work on any machine: a regression check, not a campaign).
set -uo pipefail
cd "$(dirname "$0")"
FUZZ_DIR="$(pwd)"

TARGETS=(safetensors json config tokenizer chat-template png jpeg bench-task conformance-case)

usage() { echo "usage: tools/fuzz/run.sh TARGET|all SECONDS   (targets: ${TARGETS[*]})" >&2; exit 2; }
[ "${1:-}" = "list" ] && { printf '%s\n' "${TARGETS[@]}"; exit 0; }
[ $# -eq 2 ] || usage
which="$1"; seconds="$2"
[[ "$seconds" =~ ^[0-9]+$ ]] || usage
if [ "$which" = all ]; then chosen=("${TARGETS[@]}"); else
    found=0; for t in "${TARGETS[@]}"; do [ "$t" = "$which" ] && found=1; done
    [ $found = 1 ] || usage
    chosen=("$which")
fi

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
    log="$(mktemp)"
    if ! swift build --sanitize=fuzzer --sanitize=address -Xswiftc -parse-as-library >"$log" 2>&1; then
        grep -E "error:" "$log" | head -20 >&2
        tail -20 "$log" >&2
        echo "fuzz: build failed (log: $log)" >&2
        exit 1
    fi
    rm -f "$log"
fi
bin="$(swift build --sanitize=fuzzer --sanitize=address -Xswiftc -parse-as-library --show-bin-path)"

# Swift's own crash backtracer would fight ASan for the signal; leaks of process-lifetime runtime
# caches are not findings.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=0:handle_abort=1:handle_sigill=1:handle_sigtrap=1"

status=0
printf '%-17s %7s %8s %10s %6s  %s\n' target seconds cpu_s inputs cov result
for t in "${chosen[@]}"; do
    work="$FUZZ_DIR/.work/$t"; art="$FUZZ_DIR/artifacts/$t"; logs="$FUZZ_DIR/.work/logs"
    mkdir -p "$work" "$art" "$logs"
    log="$logs/$t.log"
    start=$(date +%s)
    # Output goes to a file, stdin from /dev/null: the fuzzer must never hold the caller's pipes.
    limit=(-max_total_time="$seconds"); [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
    ( exec "$bin/fuzz-$t" "${limit[@]}" -timeout="${FUZZ_TIMEOUT:-30}" \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -malloc_limit_mb="${FUZZ_RSS_MB:-2048}" -max_len=65536 \
        -print_final_stats=1 ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -artifact_prefix="$art/" "$work" "$FUZZ_DIR/corpus/$t" ) </dev/null >"$log" 2>&1
    rc=$?
    end=$(date +%s)
    # Children's CPU time (user + system, clock ticks) as the shell accounts it.
    cpu_ticks="$(awk '{print $16+$17}' /proc/$$/stat)"
    prev="${prev_ticks:-0}"; prev_ticks="$cpu_ticks"
    cpu=$(( (cpu_ticks - prev) / $(getconf CLK_TCK) ))
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')"
    if [ $rc -eq 0 ]; then result=ok; else
        result="FOUND (exit $rc): $(grep -m1 -E 'ERROR: |Fatal error|deadly signal|timeout|out-of-memory|malloc' "$log" | cut -c1-160)"
        artifact="$(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/Test unit written to //')"
        [ -n "$artifact" ] && result="$result -> $artifact"
        status=1
    fi
    printf '%-17s %7s %8s %10s %6s  %s\n' "$t" "$((end - start))" "$cpu" "${runs:-?}" "${cov:-?}" "$result"
    if [ $rc -ne 0 ]; then
        grep -m1 -B2 -A25 -E 'ERROR: |Fatal error|deadly signal' "$log" | head -40 >&2
        echo "(full log: $log)" >&2
    fi
done
exit $status
