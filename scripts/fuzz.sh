#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz/ (clang++, -fsanitize=fuzzer,address,undefined) into
# build-fuzz/ and runs each for N seconds (default 60) from its seed corpus and dictionary.
#   scripts/fuzz.sh [--seconds N] [--build-only] [--replay] [TARGET...]
#   targets: safetensors npy cascade image manifest; --replay runs each seed once, no fuzzing
# New interesting inputs go to build-fuzz/corpus/<target>/ (the seeds in tests/fuzz/corpus/ are
# only read). Exits non-zero on any finding (crash, sanitizer report, leak, timeout, out-of-memory)
# and prints the reproducer's path; rerun one with build-fuzz/fuzz_<target> <file>.
# JPEG and PNG decode through Debian's libjpeg-turbo and libpng (as in the apps); stb, which
# decodes BMP/TGA/GIF, is compiled in with the sanitizers (tests/fuzz/stb_instrumented.c);
# FUZZ_STB=system links Debian's libstb.so instead. FUZZ_FLAGS adds libFuzzer flags (e.g.
# FUZZ_FLAGS=-len_control=0 to try long inputs at once).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=60
BUILD_ONLY=0
REPLAY=0
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --replay) REPLAY=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(safetensors npy cascade image manifest)
CXX="${FUZZ_CXX:-clang++}"
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (apt-get install clang)" >&2; exit 2; }
B=build-fuzz
mkdir -p "$B/artifacts"
FLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Iinclude -pthread)
for t in "${TARGETS[@]}"; do
  src="tests/fuzz/fuzz_$t.cpp"
  [ -f "$src" ] || { echo "fuzz.sh: no target '$t' ($src)" >&2; exit 2; }
  libs=()
  case "$t" in
    image|manifest|cascade)
      if [ "${FUZZ_STB:-source}" = system ]; then libs=(-lstb -ljpeg -lpng)
      else
        # stb compiled in, instrumented (tests/fuzz/stb_instrumented.c)
        if [ ! -f "$B/stb_instrumented.o" ] || [ tests/fuzz/stb_instrumented.c -nt "$B/stb_instrumented.o" ]; then
          "${CC:-clang}" -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
            -fno-sanitize-recover=undefined -c tests/fuzz/stb_instrumented.c -o "$B/stb_instrumented.o"
        fi
        libs=("$B/stb_instrumented.o" -ljpeg -lpng -lm)
      fi ;;
  esac
  # rebuild when the target, any header or the linked stb changed
  mode="${libs[*]:-none}"
  if [ ! -x "$B/fuzz_$t" ] || [ "$(cat "$B/fuzz_$t.libs" 2>/dev/null)" != "$mode" ] ||
     [ -n "$(find "$src" include "$B/stb_instrumented.o" -newer "$B/fuzz_$t" -print -quit 2>/dev/null)" ]; then
    echo "fuzz.sh: building fuzz_$t (${mode})"
    "$CXX" "${FLAGS[@]}" "$src" -o "$B/fuzz_$t.tmp" "${libs[@]}"
    mv "$B/fuzz_$t.tmp" "$B/fuzz_$t"
    echo "$mode" >"$B/fuzz_$t.libs"
  fi
done
[ "$BUILD_ONLY" = 1 ] && exit 0
status=0
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
for t in "${TARGETS[@]}"; do
  mkdir -p "$B/corpus/$t"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  log="$B/fuzz_$t.log"
  set +e
  if [ "$REPLAY" = 1 ]; then
    echo "fuzz.sh: fuzz_$t on its $(ls "tests/fuzz/corpus/$t" | wc -l) seeds"
    "$B/fuzz_$t" -artifact_prefix="$B/artifacts/$t-" tests/fuzz/corpus/"$t"/* >"$log" 2>&1
  else
    echo "fuzz.sh: fuzz_$t for ${SECONDS_EACH}s ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    "$B/fuzz_$t" "$B/corpus/$t" "tests/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$SECONDS_EACH" \
      -timeout=25 -rss_limit_mb=3072 -max_len=131072 -print_final_stats=1 \
      -artifact_prefix="$B/artifacts/$t-" ${FUZZ_FLAGS:-} >"$log" 2>&1
  fi
  rc=$?
  set -e
  grep -E "^#[0-9]+.*(DONE|pulse)" "$log" | tail -1 || true
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
  if [ $rc -ne 0 ]; then
    status=1
    echo "fuzz.sh: FINDING in fuzz_$t (exit $rc); log $log"
    grep -E "ERROR: |runtime error|SUMMARY|Test unit written to|deadly signal" "$log" | head -8
    grep -o "Test unit written to .*" "$log" | sed 's/^Test unit written to /fuzz.sh: reproducer: /' | tail -1
  fi
done
exit $status
