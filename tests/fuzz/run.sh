#!/bin/sh
# Runs every libFuzzer target of a fuzz build for a fixed time:  tests/fuzz/run.sh BUILD SECONDS
# (what `make fuzz FUZZ_SECONDS=N` calls after building BUILD with -DINF_FUZZ=ON).
#
# Target NAME is BUILD/fuzz/fuzz_NAME, built from tests/fuzz/fuzz_NAME.c. Its committed seeds
# are tests/fuzz/corpus/NAME/ (read only: libFuzzer writes new inputs to the first corpus dir,
# BUILD/fuzz/corpus/NAME/); crash, leak and timeout inputs go to BUILD/fuzz/artifacts/NAME/;
# tests/fuzz/NAME.dict is passed as the dictionary when present; logs: BUILD/fuzz/logs/NAME.log.
# A target that finds a crash, a leak, a sanitizer report or a slow input (> 20 s) fails the
# run; every target runs even after a failure. Extra libFuzzer flags: $FUZZ_FLAGS.
set -u
BUILD=${1:?usage: run.sh BUILD_DIR SECONDS}
SECONDS_EACH=${2:?usage: run.sh BUILD_DIR SECONDS}
SRC=$(cd "$(dirname "$0")" && pwd)
OUT="$BUILD/fuzz"
failed=""
n=0
for bin in "$OUT"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin" | sed 's/^fuzz_//')
    n=$((n + 1))
    mkdir -p "$OUT/corpus/$name" "$OUT/artifacts/$name" "$OUT/logs"
    set -- -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$name/"
    [ -f "$SRC/$name.dict" ] && set -- "$@" -dict="$SRC/$name.dict"
    seeds=""
    [ -d "$SRC/corpus/$name" ] && seeds="$SRC/corpus/$name"
    log="$OUT/logs/$name.log"
    printf 'fuzz %-20s %ss ... ' "$name" "$SECONDS_EACH"
    # shellcheck disable=SC2086
    "$bin" "$@" ${FUZZ_FLAGS:-} "$OUT/corpus/$name" $seeds > "$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        echo "ok ($execs runs, $cov)"
    else
        echo "FAILED (exit $rc; log $log, inputs in $OUT/artifacts/$name/)"
        grep -m 1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' \
            "$log" | sed 's/^/    /'
        failed="$failed $name"
    fi
done
if [ $n -eq 0 ]; then
    echo "run.sh: no fuzz targets in $OUT (build with -DINF_FUZZ=ON)" >&2
    exit 2
fi
if [ -n "$failed" ]; then
    echo "fuzz: crashes in:$failed" >&2
    exit 1
fi
echo "fuzz: $n targets, 0 crashes"
