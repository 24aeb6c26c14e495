#!/usr/bin/env bash
# compare_peers.sh — batch-1 fp32 inference time of our engine against peer CPU engines, in one run.
#
# Engines (each peer is optional; the script says which one it could not run, and why, and carries on):
#   ours         build/bin/cnn-infer --arch A --random-weights --input-shape 1,3,224,224 --bench N --threads T
#   PyTorch      Debian's PyTorch 1.13 (/usr/bin/python3), torchvision model with random weights,
#                torch.set_num_threads(T), torch.inference_mode()
#   ONNX Runtime npm onnxruntime-node (native CPU provider), intraOpNumThreads=T, interOpNumThreads=1,
#                graph optimisation 'all', on an ONNX export of the same torchvision model
#   OpenCV DNN   Debian python3-opencv, cv2.dnn.readNetFromONNX, cv2.setNumThreads(T),
#                DNN_BACKEND_OPENCV / DNN_TARGET_CPU, on the same ONNX file
#
# All engines use random weights (speed does not depend on them). The peers' models are torchvision's,
# with random biases and BatchNorm statistics (see bench/peers/peers.py for why); they are exported
# once to ONNX (opset 13) into --onnx-dir and reused until EXPORT_VERSION in bench/peers/peers.py changes.
#
# Needs: a C++17 compiler and CMake (ours), /usr/bin/python3 with torch+torchvision (PyTorch and the
# ONNX export) and cv2 (OpenCV), node + npm (ONNX Runtime), coreutils `timeout`.
#
# One-time setup (ONNX Runtime; its install script would fetch GPU binaries from an unreachable host):
#   (cd bench/peers && npm install --ignore-scripts)        # node_modules/ is git-ignored
#
# Run:
#   bench/compare_peers.sh                     # vgg16 resnet18 resnet50, 1 and 2 threads
#   bench/compare_peers.sh --quick             # 3 timed runs (VGG16: 2), 1 warm-up: a smoke test
#   bench/compare_peers.sh --models resnet18,resnet50 --threads 2 --runs 20 --out /tmp/r.md
#
# Options:
#   --models LIST    comma-separated torchvision names (default vgg16,resnet18,resnet50)
#   --threads LIST   comma-separated thread counts (default 1,2)
#   --runs N         timed runs per engine and round (default 15); VGG-family models use
#                    max(3, N/2) unless --vgg-runs is given
#   --vgg-runs N     timed runs for VGG-family models
#   --warmup W       untimed warm-up runs for the peers (default 2; cnn-infer always does 1)
#   --rounds R       repeat the whole engine sequence R times per model/thread count, alternating
#                    the order, and report the median of the round medians (default 1). With 2 or
#                    more rounds the report also pairs our round medians with the fastest peer's,
#                    round by round: how many rounds we won, a one-sided sign test and a
#                    distribution-free interval for the median ratio (use 20+ rounds to tell a few
#                    percent apart on this noisy machine)
#   --quick          --runs 3 --vgg-runs 2 --warmup 1 --rounds 1 (explicit options still win)
#   --engines LIST   subset of ours,pytorch,onnxruntime,opencv (default: all)
#   --precision P    fp32 (default) or int8: ours runs its int8 form (cnn-infer --precision int8,
#                    calibrated on seeded noise: speed does not depend on it), PyTorch its own
#                    post-training static int8 (bench/peers/torch_int8.py --line: oneDNN, eager
#                    quantization for ResNets, FX for VGG), ONNX Runtime a QDQ export (u8
#                    activations, per-channel s8 weights; peers.py export --int8, which needs
#                    python3-onnx) that it fuses into its int8 kernels; OpenCV is not run
#   --out FILE       Markdown table (default build/peers/results.md)
#   --json FILE      JSON results (default: --out with .json instead of .md)
#   --onnx-dir DIR   where the exported .onnx files go (default build/peers; never commit them)
#   --build-dir DIR  CMake build directory of the engine (default build)
#   --rebuild        run `cmake --build DIR --target cnn-infer` first even if the binary exists
#   --timeout S      kill any single engine run after S seconds (default 900)
#   --wait-quiet S   before each engine run, wait up to S seconds for the other processes to use
#                    less than 0.3 of a core (default 0: don't wait, just record their load)
#   --ort-spin 0|1   ONNX Runtime session.intra_op.allow_spinning (default: ORT's own default, 1).
#                    Spinning workers help on a quiet machine and hurt badly on a busy one.
#
# Fairness notes: every engine runs as its own process; for each model and thread count the engines
# run back to back (interleaved), so each ratio compares measurements taken close in time on a shared,
# noisy machine. Just before each engine run the script samples, for 0.5 s while it is itself idle,
# how many cores other processes keep busy ("background"); the table shows the largest such value per
# row, and a note flags rows where engine threads + background exceed the cores: there, threaded
# engines (OpenMP ones especially) wait for descheduled workers and their times mean little.
# OPENBLAS_CORETYPE (and every other variable of the environment) is passed through unchanged.
# Output: the table on stdout, the Markdown file, the JSON file, and the raw per-run JSON lines next
# to them (*.raw.jsonl).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR="$ROOT/bench/peers"
PY=/usr/bin/python3              # Debian's Python: the one with torch and cv2 (pyenv's has neither)

MODELS=vgg16,resnet18,resnet50
THREADS=1,2
RUNS=""; VGG_RUNS=""; WARMUP=""; ROUNDS=""
QUICK=0
ENGINES=ours,pytorch,onnxruntime,opencv
OUT="$ROOT/build/peers/results.md"
JSON=""
ONNX_DIR="$ROOT/build/peers"
BUILD_DIR="$ROOT/build"
REBUILD=0
TIMEOUT=900
ORT_SPIN=""
WAIT_QUIET=0
PRECISION=fp32

die() { echo "compare_peers: error: $*" >&2; exit 2; }
say() { echo "compare_peers: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
need_int() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 expects a positive integer, got '$2'"; }
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

while (($#)); do
  opt=$1
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    --quick) QUICK=1; shift; continue ;;
    --rebuild) REBUILD=1; shift; continue ;;
    --models|--threads|--runs|--vgg-runs|--warmup|--rounds|--engines|--out|--json|--onnx-dir|\
    --build-dir|--timeout|--wait-quiet|--ort-spin|--precision) ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
  (($# >= 2)) || die "$opt needs a value (see --help)"
  val=$2; shift 2
  case "$opt" in
    --models) MODELS=$val ;;
    --threads) THREADS=$val ;;
    --runs) need_int "$opt" "$val"; RUNS=$val ;;
    --vgg-runs) need_int "$opt" "$val"; VGG_RUNS=$val ;;
    --warmup) [[ "$val" =~ ^[0-9]+$ ]] || die "--warmup expects an integer >= 0"; WARMUP=$val ;;
    --rounds) need_int "$opt" "$val"; ROUNDS=$val ;;
    --engines) ENGINES=$val ;;
    --out) OUT=$(abspath "$val") ;;
    --json) JSON=$(abspath "$val") ;;
    --onnx-dir) ONNX_DIR=$(abspath "$val") ;;
    --build-dir) BUILD_DIR=$(abspath "$val") ;;
    --timeout) need_int "$opt" "$val"; TIMEOUT=$val ;;
    --wait-quiet) [[ "$val" =~ ^[0-9]+$ ]] || die "--wait-quiet expects seconds"; WAIT_QUIET=$val ;;
    --ort-spin) [[ "$val" == 0 || "$val" == 1 ]] || die "--ort-spin expects 0 or 1"; ORT_SPIN=$val ;;
    --precision) [[ "$val" == fp32 || "$val" == int8 ]] || die "--precision expects fp32 or int8"; PRECISION=$val ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
done

if ((QUICK)); then
  : "${RUNS:=3}" "${VGG_RUNS:=2}" "${WARMUP:=1}" "${ROUNDS:=1}"
fi
: "${RUNS:=15}" "${WARMUP:=2}" "${ROUNDS:=1}"
: "${VGG_RUNS:=$(( RUNS / 2 > 3 ? RUNS / 2 : 3 ))}"
[[ -n "$JSON" ]] || JSON="${OUT%.md}.json"
[[ "$JSON" != "$OUT" ]] || JSON="$OUT.json"
RAW="${OUT%.md}.raw.jsonl"
META="${OUT%.md}.meta.json"

IFS=, read -r -a MODEL_LIST <<<"$MODELS"
IFS=, read -r -a THREAD_LIST <<<"$THREADS"
IFS=, read -r -a ENGINE_LIST <<<"$ENGINES"
((${#MODEL_LIST[@]})) || die "--models is empty"
((${#THREAD_LIST[@]})) || die "--threads is empty"
for m in "${MODEL_LIST[@]}"; do
  [[ "$m" =~ ^[a-z0-9_]+$ ]] || die "bad model name '$m'"
done
for t in "${THREAD_LIST[@]}"; do need_int --threads "$t"; done
for e in "${ENGINE_LIST[@]}"; do
  case "$e" in ours|pytorch|onnxruntime|opencv) ;; *) die "unknown engine '$e' (ours,pytorch,onnxruntime,opencv)" ;; esac
done
command -v timeout >/dev/null || die "coreutils 'timeout' not found"
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON")" "$ONNX_DIR"

# Reporting needs only the standard library; prefer Debian's Python, else any python3.
REPORT_PY=$PY
[[ -x "$REPORT_PY" ]] || REPORT_PY=$(command -v python3 || true)
[[ -n "$REPORT_PY" ]] || die "no python3 found to write the report"

# ------------------------------------------------------------------------------------------------
# Which engines can run?  ENABLED[engine]=1, or SKIPPED[engine]=reason.
declare -A ENABLED=() SKIPPED=() VERSION=()
BG="?"
v=""
want() { [[ ",$ENGINES," == *",$1,"* ]]; }
skip() { SKIPPED[$1]=$2; say "$1: NOT RUN — $2"; }
if [[ $PRECISION == int8 ]]; then  # OpenCV 4.6's DNN has no int8 path for ONNX QDQ models
  if want opencv; then skip opencv "no int8 runner for it here"; fi
  ENGINES=$(tr ',' '\n' <<<"$ENGINES" | grep -E '^(ours|pytorch|onnxruntime)$' | paste -sd, - || true)
fi
# The ONNX file each model runs from: fp32, or int8 QDQ (peers.py export --int8).
SUFFIX=.onnx EXPORT_FLAGS=()
[[ $PRECISION == fp32 ]] || { SUFFIX=.int8.onnx; EXPORT_FLAGS=(--int8); }

CNN_INFER="$BUILD_DIR/bin/cnn-infer"
if want ours; then
  if ((REBUILD)) || [[ ! -x "$CNN_INFER" ]]; then
    say "ours: building cnn-infer in $BUILD_DIR (Release)..."
    if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
      cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2 || true
    fi
    if ! cmake --build "$BUILD_DIR" -j1 --target cnn-infer >&2; then
      if [[ -x "$CNN_INFER" ]]; then say "ours: rebuild FAILED, using the existing (older) binary"; fi
    fi
  fi
  if [[ -x "$CNN_INFER" ]]; then
    ENABLED[ours]=1
    VERSION[ours]="cnn-infer built $(date -r "$CNN_INFER" '+%Y-%m-%d %H:%M'), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- include apps 2>/dev/null || echo '+changes')"
  else
    skip ours "no binary at $CNN_INFER and the build failed (see the messages above)"
  fi
fi

HAVE_TORCH=0
if [[ -x "$PY" ]] && v=$("$PY" "$PEERS_DIR/peers.py" check torch 2>&1); then
  HAVE_TORCH=1; VERSION[pytorch]=$v
else
  why=${v:-"$PY not found"}
fi
if want pytorch; then
  if ((HAVE_TORCH)); then ENABLED[pytorch]=1; else skip pytorch "cannot import torch/torchvision with $PY: ${why##*$'\n'}"; fi
fi

if want onnxruntime; then
  if ! command -v node >/dev/null; then
    skip onnxruntime "node is not installed"
  elif [[ ! -d "$PEERS_DIR/node_modules/onnxruntime-node" ]]; then
    skip onnxruntime "onnxruntime-node is not installed; run: (cd bench/peers && npm install --ignore-scripts)"
  elif v=$(cd "$PEERS_DIR" && node bench_ort.js --check 2>&1); then
    ENABLED[onnxruntime]=1; VERSION[onnxruntime]="$v, node $(node --version)"
  else
    skip onnxruntime "the native binding does not load: ${v##*$'\n'}"
  fi
fi

if want opencv; then
  if [[ -x "$PY" ]] && v=$("$PY" "$PEERS_DIR/peers.py" check opencv 2>&1); then
    ENABLED[opencv]=1; VERSION[opencv]=$v
  else
    skip opencv "cannot import cv2.dnn with $PY: ${v##*$'\n'}"
  fi
fi
((${#ENABLED[@]})) || die "no engine can run"

# ONNX files for ONNX Runtime and OpenCV: exported once per model, reused on later runs.
EXPORT_VERSION=$(sed -n 's/^EXPORT_VERSION = \([0-9]*\).*/\1/p' "$PEERS_DIR/peers.py")
declare -A ONNX_OK=() ONNX_WHY=()
if [[ -n "${ENABLED[onnxruntime]:-}${ENABLED[opencv]:-}" ]]; then
  for m in "${MODEL_LIST[@]}"; do
    f="$ONNX_DIR/$m$SUFFIX"
    if [[ -s "$f" && "$(cat "$f.version" 2>/dev/null)" == "$EXPORT_VERSION" ]]; then ONNX_OK[$m]=1; continue; fi
    if ((!HAVE_TORCH)); then
      ONNX_WHY[$m]="no $f, and torch is not available to export it"; continue
    fi
    say "exporting $m to $f ..."
    if log=$(timeout "$TIMEOUT" "$PY" "$PEERS_DIR/peers.py" export --arch "$m" --out "$f" ${EXPORT_FLAGS[@]+"${EXPORT_FLAGS[@]}"} 2>&1); then
      ONNX_OK[$m]=1
    else
      ONNX_WHY[$m]="ONNX export failed: $(grep -v -i warn <<<"$log" | tail -n 1)"
      say "$m: ${ONNX_WHY[$m]}"
    fi
  done
fi

# ------------------------------------------------------------------------------------------------
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }
CPU=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
NCPU=$(nproc 2>/dev/null || echo '?')
ISA=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_bf16|amx_tile)$' | tr '\n' ' ' || true)
LOAD_START=$(loadavg)
DATE=$(date '+%Y-%m-%d %H:%M:%S %Z')

say "date $DATE; CPU: ${CPU:-?} ($NCPU cores; ${ISA% }); load average $LOAD_START"
say "models: ${MODEL_LIST[*]}; threads: ${THREAD_LIST[*]}; runs: $RUNS (VGG: $VGG_RUNS); peer warm-up: $WARMUP; rounds: $ROUNDS"
for e in ours pytorch onnxruntime opencv; do
  [[ -n "${ENABLED[$e]:-}" ]] && say "$e: ${VERSION[$e]:-}"
done

: >"$RAW"
ERRLOG=$(mktemp)
trap 'rm -f "$ERRLOG"' EXIT

# background_cores: how many cores the rest of the machine kept busy over 0.5 s (from /proc/stat),
# sampled while this script waits, so its own engines are not counted.
background_cores() {
  local a b i ta=0 tb=0
  read -r -a a < <(grep '^cpu ' /proc/stat) || { echo "?"; return; }
  sleep 0.5
  read -r -a b < <(grep '^cpu ' /proc/stat) || { echo "?"; return; }
  for i in 1 2 3 4 5 6 7 8; do ta=$((ta + ${a[$i]:-0})); tb=$((tb + ${b[$i]:-0})); done
  local dt=$((tb - ta)) didle=$(( (b[4] + b[5]) - (a[4] + a[5]) ))
  ((dt > 0)) || { echo "?"; return; }
  awk -v busy=$((dt - didle)) -v dt=$dt -v n="$NCPU_NUM" 'BEGIN { printf "%.2f", busy / dt * n }'
}
NCPU_NUM=$(nproc 2>/dev/null || echo 1)

# wait_quiet: sample the background load (into BG), waiting up to WAIT_QUIET seconds for it to drop.
wait_quiet() {
  local start=$SECONDS waited=0
  BG=$(background_cores)
  while ((WAIT_QUIET > 0)) && [[ "$BG" != "?" ]] && awk -v x="$BG" 'BEGIN { exit !(x >= 0.3) }'; do
    if ((SECONDS - start >= WAIT_QUIET)); then say "  (background still $BG cores after ${WAIT_QUIET}s; measuring anyway)"; return; fi
    ((waited)) || say "  (waiting up to ${WAIT_QUIET}s for background load $BG cores to drop below 0.3)"
    waited=1; sleep 2; BG=$(background_cores)
  done
}

# record ENGINE MODEL THREADS ROUND JSON-or-empty ERROR BACKGROUND
record() {
  "$REPORT_PY" - "$@" >>"$RAW" <<'EOF'
import json, sys
engine, model, threads, rnd, line, err, bg = sys.argv[1:8]
rec = {}
if line:
    try:
        rec = json.loads(line)
    except ValueError:
        err = err or f"unparsable output: {line[:200]}"
if not err and ("median_ms" not in rec):
    err = "no median_ms in the output"
if err:
    rec = {"error": err}
rec.update(engine=engine, model=model, threads_requested=int(threads), round=int(rnd))
try:
    rec["background_cores"] = float(bg)
except ValueError:
    pass
print(json.dumps(rec))
EOF
}

# run_engine ENGINE MODEL THREADS RUNS ROUND
run_engine() {
  local e=$1 m=$2 t=$3 n=$4 r=$5 f="$ONNX_DIR/$2$SUFFIX" out rc=0 cmd=()
  case "$e" in
    ours) cmd=("$CNN_INFER" --arch "$m" --random-weights --input-shape "1,3,224,224" --bench "$n" --threads "$t")
          [[ $PRECISION == fp32 ]] || cmd+=(--precision int8 --calibrate random) ;;
    pytorch)
      if [[ $PRECISION == fp32 ]]; then cmd=("$PY" "$PEERS_DIR/peers.py" torch --arch "$m" --threads "$t" --runs "$n" --warmup "$WARMUP")
      else cmd=("$PY" "$PEERS_DIR/torch_int8.py" --line --models "$m" --threads "$t" --runs "$n" --warmup "$WARMUP"); fi ;;
    onnxruntime|opencv)
      if [[ -z "${ONNX_OK[$m]:-}" ]]; then
        record "$e" "$m" "$t" "$r" "" "${ONNX_WHY[$m]:-no ONNX file}" ""; say "  $e: skipped (${ONNX_WHY[$m]:-no ONNX file})"; return
      fi
      if [[ $e == onnxruntime ]]; then
        cmd=(node "$PEERS_DIR/bench_ort.js" --onnx "$f" --arch "$m" --threads "$t" --runs "$n" --warmup "$WARMUP")
        [[ -z "$ORT_SPIN" ]] || cmd+=(--spin "$ORT_SPIN")
      else
        cmd=("$PY" "$PEERS_DIR/peers.py" opencv --onnx "$f" --arch "$m" --threads "$t" --runs "$n" --warmup "$WARMUP")
      fi ;;
  esac
  wait_quiet
  out=$(timeout "$TIMEOUT" "${cmd[@]}" 2>"$ERRLOG") || rc=$?
  local line
  line=$(grep -E '^\{.*"median_ms"' <<<"$out" | tail -n 1 || true)
  if ((rc == 0)) && [[ -n "$line" ]]; then
    record "$e" "$m" "$t" "$r" "$line" "" "$BG"
    say "  $e: $(sed -E 's/.*"median_ms": ?([0-9.]+).*"min_ms": ?([0-9.]+).*/median \1 ms, min \2 ms/' <<<"$line") (background $BG cores)"
  else
    local why
    if ((rc == 124)); then why="timed out after ${TIMEOUT}s"
    else why="exit $rc: $(grep -v -E '^\s*$|^>\s*$' "$ERRLOG" | tail -n 1 | cut -c1-300)"; fi
    record "$e" "$m" "$t" "$r" "" "$why" "$BG"
    say "  $e: FAILED ($why)"
  fi
}

ORDER=()
for e in ours pytorch onnxruntime opencv; do [[ -n "${ENABLED[$e]:-}" ]] && ORDER+=("$e"); done
for m in "${MODEL_LIST[@]}"; do
  n=$RUNS
  [[ "$m" == vgg* ]] && n=$VGG_RUNS
  for t in "${THREAD_LIST[@]}"; do
    for ((r = 1; r <= ROUNDS; ++r)); do
      seq=("${ORDER[@]}")
      if ((r % 2 == 0)); then  # alternate the order so no engine always runs first
        seq=(); for ((i = ${#ORDER[@]} - 1; i >= 0; --i)); do seq+=("${ORDER[$i]}"); done
      fi
      say "$m, $t thread(s), round $r/$ROUNDS, $n runs (load $(loadavg)):"
      for e in "${seq[@]}"; do run_engine "$e" "$m" "$t" "$n" "$r"; done
    done
  done
done
LOAD_END=$(loadavg)

# ------------------------------------------------------------------------------------------------
versions=""
for e in ours pytorch onnxruntime opencv; do
  [[ -n "${VERSION[$e]:-}" ]] && versions+="$e: ${VERSION[$e]}; "
done
skipped_args=()
for e in "${!SKIPPED[@]}"; do skipped_args+=("$e=${SKIPPED[$e]}"); done

"$REPORT_PY" - "$META" "$DATE" "$(hostname 2>/dev/null || echo '?')" "${CPU:-?}, $NCPU cores, ${ISA% }" \
  "$LOAD_START" "$LOAD_END" "runs $RUNS (VGG $VGG_RUNS), peer warm-up $WARMUP, rounds $ROUNDS, ORT allow_spinning ${ORT_SPIN:-default}, wait-quiet ${WAIT_QUIET}s" \
  "${versions%; }" "${OPENBLAS_CORETYPE-(unset)}" "$PRECISION" ${skipped_args[@]+"${skipped_args[@]}"} <<'EOF'
import json, sys
(path, date, host, cpu, l0, l1, settings, versions, obct, precision), skipped = sys.argv[1:11], sys.argv[11:]
json.dump({"title": f"CNN engine vs peers, batch 1, {precision}, 224x224", "date": date, "host": host,
           "cpu": cpu, "loadavg_start": l0, "loadavg_end": l1, "settings": settings,
           "versions": versions, "openblas_coretype": obct,
           "skipped": dict(s.split("=", 1) for s in skipped)}, open(path, "w"), indent=2)
EOF

echo
"$REPORT_PY" "$PEERS_DIR/peers.py" report --raw "$RAW" --md "$OUT" --json "$JSON" --meta "$META" --cores "$NCPU_NUM"
rm -f "$META"
echo
say "wrote $OUT, $JSON and the raw measurements $RAW"
