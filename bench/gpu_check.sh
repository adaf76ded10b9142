#!/usr/bin/env bash
# bench/gpu_check.sh: validate and measure every GPU path in ONE call on a lent GPU machine.
#
#   bash bench/gpu_check.sh                          # on the GPU machine (device `run`, timeout_s 560)
#   GPU_CHECK_SMOKE=1 OUT=/tmp/out bash bench/gpu_check.sh   # dry run here, tiny sizes, CPU
#
# Runs from the repo root with the machine's own python3/torch/torchvision (PYTHONPATH=., no
# venv, no network). Steps, in order of what matters most, each time-boxed (`timeout`) inside
# one overall budget (GPU_CHECK_BUDGET, 465 s: the whole check within 8 minutes), going on
# past failures; what the budget cannot fit is recorded as skipped:
#   1 fingerprint; DALI from its parts if they are there (.gl/dali/* of this call and what
#     earlier calls left in $GPU_CHECK_DALI_PARTS: bench/gpu/dali_install.py, README-gpu.md);
#     loaders/_native.c built in place if the machine can
#   2 two embedded datasets under $LOADERBENCH_DATA: the steady-state one (GPU_CHECK_N=1024:
#     10,240 train images = 40 batches of 256, so warm-up + measured steps, 5 + 30 in loader
#     mode and 10 + 30 in train mode, never cross an epoch; val 2,560 = 10 batches, measured
#     2 + 8) and a deliberately small one (GPU_CHECK_SMALL_N=128: 1,280 train = 5 batches, an
#     epoch start every 5 steps, what fine-tuning and CIFAR-sized sets pay)
#   3 pytest -m gpu (tests/benchmarks left out: its conftest shadows tests/conftest.py)
#   4 pixel parity, torchvision-gpu vs torchvision (val and train), -> $OUT/parity.json
#   5 loader mode, steady state: synthetic, torchvision (workers = cores), torchvision-gpu,
#     dali, dali-cpu; then the same on the small set (epoch starts included)
#   6 train, eager: resnet50 + resnet18 on the steady set (synthetic first: the ceiling), then
#     resnet50 on the small set
#   7 train --compile resnet50; `--mode scaling` (torchvision, dali-cpu: 1, 2, 4, .. workers);
#     the alternatives (torchvision-gpu augment=per-image and decoder=nvimgcodec with its parity,
#     torchvision chunk=16 and pool=threads, torchvision-gpu producers=2);
#     train --compile resnet18 with what the budget leaves
#   8 summary tables (each row with its epoch starts inside the window) + one `gpu_check`
#     record with every step's outcome (bench/gpu/check_summary.py)
# Loaders that cannot run here (DALI not installed, torchvision-gpu without CUDA) still get
# their `unavailable` records, with the reason. Train: 224 px, bf16 autocast, channels-last,
# batch 256.
#
# Writes under $OUT: gpu.jsonl (every record), gpu_check.log (all output), parity.json,
# pytest_gpu.xml. Knobs (env): GPU_CHECK_BUDGET (s), GPU_CHECK_N, GPU_CHECK_SMALL_N,
# GPU_CHECK_BATCH, GPU_CHECK_STEPS, GPU_CHECK_SMOKE=1, GPU_CHECK_DALI_PARTS (/tmp/dali-parts),
# GPU_CHECK_DALI_SITE (/tmp/dali-site), GPU_CHECK_PREP=1 (only start making the datasets in
# the background and return: for an earlier call on the same warm machine), GPU_CHECK_ONLY (comma list of
# pytest,parity,loader,small,eager,compile,scaling,extras: run only those, e.g. a rerun of
# `compile` on the same warm machine, whose datasets and inductor caches are still there;
# fingerprint, DALI and datasets always run), GPU_CHECK_SMOKE_COMPILE=1 (also run the
# --compile steps in smoke mode: slow on CPU), PYTHON.
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

SMOKE=${GPU_CHECK_SMOKE:-0}
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log
REC=$OUT/gpu.jsonl
PY=${PYTHON:-python3}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
export LOADERBENCH_DATA=${LOADERBENCH_DATA:-/tmp/loaderbench-data}
# Inductor's caches beside the data: a rerun on the same warm machine compiles from cache.
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$LOADERBENCH_DATA/inductor}
export TORCHINDUCTOR_FX_GRAPH_CACHE=1 TORCHINDUCTOR_AUTOGRAD_CACHE=1
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::DeprecationWarning}
mkdir -p "$LOADERBENCH_DATA"
CORES=$(nproc)
# Wheels the GPU image lacks (simplejpeg: the torchvision backend's fast decode; without it the
# backend falls back to PIL and is measured slower than it is). Not committed (.gitignore):
# fetch them here with the `pip download --python-version 3.12 ...` line in README.md and pass
# `carry: [".whl"]` to the device call. Installed offline into a scratch dir, never the image.
WHEELS=${GPU_CHECK_WHEELS:-.whl}
if [[ $SMOKE != 1 ]] && compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/loaderbench-site "$WHEELS"/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/loaderbench-site
fi

if [[ $SMOKE == 1 ]]; then
    BUDGET=${GPU_CHECK_BUDGET:-900}; N=${GPU_CHECK_N:-4}; SMALL_N=${GPU_CHECK_SMALL_N:-1}; BATCH=${GPU_CHECK_BATCH:-8}; RES=32
    LSTEPS=${GPU_CHECK_STEPS:-3}; TSTEPS=${GPU_CHECK_STEPS:-2}; LWARM=1; TWARM=1; CWARM=1; VSTEPS=1; VWARM=1; PARITY_N=24
    SCALE=3  # the step caps below are for the GPU machine; smoke mode (2 busy cores) gets 3x
else
    BUDGET=${GPU_CHECK_BUDGET:-465}; N=${GPU_CHECK_N:-1024}; SMALL_N=${GPU_CHECK_SMALL_N:-128}; BATCH=${GPU_CHECK_BATCH:-256}; RES=224
    LSTEPS=${GPU_CHECK_STEPS:-30}; TSTEPS=${GPU_CHECK_STEPS:-30}; LWARM=5; TWARM=10; CWARM=10; VSTEPS=8; VWARM=2; PARITY_N=256
    SCALE=1
fi
RESERVE=15  # seconds kept for the summary at the end
DATA="embedded:$N"
SMALL="embedded:$SMALL_N"
ARCHS=resnet50,resnet18
LOADERS=synthetic,torchvision,torchvision-gpu,dali,dali-cpu
DALI_PARTS=${GPU_CHECK_DALI_PARTS:-/tmp/dali-parts}
DALI_SITE=${GPU_CHECK_DALI_SITE:-/tmp/dali-site}
CARRIED=${GPU_CHECK_DALI_CARRIED:-.gl/dali}  # where a call's carried parts land in the repo
PREP_PID=$LOADERBENCH_DATA/.prep.pid
T0=$(date +%s)

# bench.run, with torchvision-gpu registered if loaders/__init__.py does not list it yet.
WRAP='
import sys
import loaders
if "torchvision-gpu" not in loaders.REGISTRY:
    loaders.register("torchvision-gpu", "torchvision_gpu", "TorchvisionGpuLoader",
                     "torchvision.io.decode_jpeg on the GPU (nvJPEG, batched), crop/resize/flip on the device")
from bench.run import main
sys.exit(main(sys.argv[1:]))
'
COMMON=(--out "$REC" --no-progress --batch-size "$BATCH" --res "$RES")  # --data per step

STEP_NAMES=() STEP_STATUS=() STEP_SECS=()

ONLY=${GPU_CHECK_ONLY:-pytest,parity,loader,small,eager,compile,scaling,extras}
want() { [[ ",$ONLY," == *",$1,"* ]]; }

elapsed() { echo $(( $(date +%s) - T0 )); }

# step NAME CAP_SECONDS COMMAND...: run it under timeout (the cap, or what the budget has left).
step() {
    local name=$1 cap=$(( $2 * SCALE )); shift 2
    local left=$(( BUDGET - $(elapsed) - RESERVE ))
    if (( left < 10 )); then
        echo; echo "== [$(elapsed)s] $name: SKIPPED (budget of ${BUDGET}s spent)"
        STEP_NAMES+=("$name") STEP_STATUS+=("skipped: budget") STEP_SECS+=(0)
        return 0
    fi
    local t=$(( cap < left ? cap : left ))
    echo; echo "== [$(elapsed)s] $name (timeout ${t}s)"
    local s; s=$(date +%s)
    # The steps are shell functions (exported below): timeout runs them in a child bash, and
    # on expiry signals its whole process group (DataLoader workers included).
    timeout -k 10 "$t" bash -c '"$@"' step "$@"
    local rc=$? st
    case $rc in
        0) st=ok ;;
        124|137) st="timeout(${t}s)" ;;
        *) st="fail(rc=$rc)" ;;
    esac
    local d=$(( $(date +%s) - s ))
    echo "-- $name: $st in ${d}s"
    STEP_NAMES+=("$name") STEP_STATUS+=("$st") STEP_SECS+=("$d")
}

skip() {  # skip NAME REASON
    echo; echo "== [$(elapsed)s] $1: SKIPPED ($2)"
    STEP_NAMES+=("$1") STEP_STATUS+=("skipped: $2") STEP_SECS+=(0)
}

bench() { "$PY" -c "$WRAP" "$@"; }
# loaders/_native.c (region decode, LUT normalise) built in place where the machine has a C
# compiler and libjpeg's headers; without them the loaders run their simplejpeg/torch paths.
build_native() {
    "$PY" - <<'PY' 2>&1 | tail -3
from setuptools import Extension, setup
setup(script_args=["-q", "build_ext", "--inplace"],
      ext_modules=[Extension("loaders._native", ["loaders/_native.c"], libraries=["jpeg"], extra_compile_args=["-O3"])])
PY
    "$PY" -c 'import loaders._native' 2>/dev/null && echo "loaders._native: built" || echo "loaders._native: not built (no compiler or libjpeg headers): simplejpeg/torch paths"
}
# Smoke mode without CUDA: run torchvision-gpu's whole path with the CPU decoder (testing only).
[[ $SMOKE == 1 ]] && ! "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null \
    && export LOADERBENCH_TVGPU_ON_CPU=1

fingerprint() {
    echo "repo: $(pwd)  smoke=$SMOKE  budget=${BUDGET}s  cores=$CORES  data=$DATA  batch=$BATCH  res=$RES"
    echo "OUT=$OUT  LOADERBENCH_DATA=$LOADERBENCH_DATA  python=$(command -v "$PY")"
    [[ ${LOADERBENCH_TVGPU_ON_CPU:-0} == 1 ]] && echo "note: no CUDA: torchvision-gpu runs its code path with the CPU decoder (LOADERBENCH_TVGPU_ON_CPU=1, smoke only)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    df -h /dev/shm | tail -1  # worker processes hand batches over through it
    "$PY" - <<'PY'
import json, torch, torchvision
from bench.results import fingerprint
import loaders
print(json.dumps(fingerprint(), indent=1))
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "| torchvision", torchvision.__version__, "| cudnn", torch.backends.cudnn.version())
from loaders.torchvision_decode import simplejpeg
print("simplejpeg", getattr(simplejpeg, "__version__", None) if simplejpeg else "not installed: torchvision backend decodes with PIL")
print("libjpeg headers", "present" if __import__("os").path.exists("/usr/include/jpeglib.h") else "absent")
if "torchvision-gpu" not in loaders.REGISTRY:
    print("note: torchvision-gpu is not in loaders/__init__.py; this script registers it itself")
    loaders.register("torchvision-gpu", "torchvision_gpu", "TorchvisionGpuLoader")
for name, why in loaders.available().items():
    print(f"  {name:<16} {'available' if why is None else 'unavailable: ' + why}")
PY
}

make_data() {  # make_data DATA (after a background prep from an earlier call, if one runs)
    local pid; pid=$(cat "$PREP_PID" 2>/dev/null) && while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    "$PY" - "$1" <<'PY'
import os, sys, time
from loaders.datasets import resolve
t = time.perf_counter()
ds = resolve(sys.argv[1], progress=False)
print(ds.describe(), f"ready in {time.perf_counter() - t:.1f}s on {len(os.sched_getaffinity(0))} cores")
PY
}

# The batched augmentation (the default on CUDA) against the torchvision backend's pixels.
parity() { "$PY" -m bench.gpu.parity "$DATA" "$PARITY_N" "$OUT/parity.json" --options augment=batched; }
parity_nvimgcodec() {
    "$PY" -m bench.gpu.parity "$DATA" "$PARITY_N" "$OUT/parity_nvimgcodec.json" --options augment=batched,decoder=nvimgcodec
}
has_nvimgcodec() { "$PY" -c 'from nvidia import nvimgcodec' 2>/dev/null; }

# DALI from its parts: those this call carried (.gl/dali/*) join what earlier calls copied to
# $DALI_PARTS; with MANIFEST.json and every part there, it is unpacked into $DALI_SITE and
# checked (import + one JPEG decoded on the CPU and on the GPU). Then the main shell takes its
# PYTHONPATH/LD_LIBRARY_PATH, so every later step's dali/dali-cpu use it.
dali_install() {
    mkdir -p "$DALI_PARTS"
    compgen -G "$CARRIED/*" >/dev/null && cp -f "$CARRIED"/MANIFEST.json "$CARRIED"/dali-*.tar.xz.* "$DALI_PARTS"/ 2>/dev/null
    ls -l "$DALI_PARTS"
    "$PY" -m bench.gpu.dali_install --parts "$DALI_PARTS" --target "$DALI_SITE" --check
}

summary() {
    echo; echo "== [$(elapsed)s] summary"
    local i
    printf '%-46s %-22s %6s\n' step outcome secs
    for i in "${!STEP_NAMES[@]}"; do
        printf '%-46s %-22s %6s\n' "${STEP_NAMES[$i]}" "${STEP_STATUS[$i]}" "${STEP_SECS[$i]}"
    done
    STEPS_TSV=$(for i in "${!STEP_NAMES[@]}"; do printf '%s\t%s\t%s\n' "${STEP_NAMES[$i]}" "${STEP_STATUS[$i]}" "${STEP_SECS[$i]}"; done) \
        timeout 60 "$PY" -m bench.gpu.check_summary "$REC" "$OUT" "$SMOKE" "$BUDGET" "$(elapsed)"
}

last_ok() { [[ ${STEP_STATUS[-1]:-} == ok ]]; }

export PY DATA OUT PARITY_N WRAP SMOKE BUDGET CORES BATCH RES N DALI_PARTS DALI_SITE PREP_PID CARRIED

# GPU_CHECK_PREP=1 (an earlier call on the same warm machine, e.g. one carrying a DALI part):
# start making both datasets in a new session, which outlives that call, and return at once;
# this check's dataset steps then wait for it instead of spending ~90 s of the budget.
if [[ ${GPU_CHECK_PREP:-0} == 1 ]]; then
    setsid nohup "$PY" -c 'import sys; from loaders.datasets import resolve; [print(resolve(d, progress=False).describe()) for d in sys.argv[1:]]' \
        "$DATA" "$SMALL" >"$LOADERBENCH_DATA/prep.log" 2>&1 </dev/null &
    echo $! >"$PREP_PID"
    echo "gpu_check prep: making $DATA and $SMALL in the background (pid $!, log $LOADERBENCH_DATA/prep.log)"
    exit 0
fi
export -f bench build_native fingerprint make_data parity parity_nvimgcodec dali_install

main() {
    echo "gpu_check: $(date -u +%FT%TZ)"
    step "fingerprint" 60 fingerprint
    if compgen -G "$CARRIED/dali-*" >/dev/null || [[ -f $DALI_PARTS/MANIFEST.json ]]; then
        step "dali install (parts -> $DALI_SITE)" 90 dali_install
        # eval in this shell (a step runs in a child); --env is a no-op unpack the second time
        last_ok && eval "$("$PY" -m bench.gpu.dali_install --parts "$DALI_PARTS" --target "$DALI_SITE" --env)"
    else
        skip "dali install" "no DALI parts in $CARRIED or $DALI_PARTS: dali/dali-cpu use what $PY imports"
    fi
    step "build loaders._native" 60 build_native
    step "dataset $DATA (steady state)" 120 make_data "$DATA"
    step "dataset $SMALL (small: epoch starts)" 30 make_data "$SMALL"
    if [[ ! -f "$LOADERBENCH_DATA/embedded-v1-$N/MANIFEST.json" ]]; then
        echo "no dataset: the measurements below would only fail; stopping"
        summary; return 1
    fi

    want pytest && step "pytest -m gpu" 90 "$PY" -m pytest -m gpu -q -rfEs -p no:cacheprovider --continue-on-collection-errors \
        --ignore=tests/benchmarks --junitxml="$OUT/pytest_gpu.xml" -o junit_family=xunit2
    want parity && step "parity torchvision-gpu vs torchvision" 60 parity

    # One invocation per mode: bench.run goes on past a failing loader (an error record) and
    # writes an `unavailable` record, with the reason, for a loader that cannot run here (DALI
    # not installed, torchvision-gpu without CUDA); records are appended as each one finishes,
    # so a step cut by its timeout keeps what it measured. Synthetic first: in train mode its
    # result is the ceiling every real loader's ratio_to_synthetic divides by.
    local lm=(--mode loader --loader "$LOADERS" --workers "$CORES" "${COMMON[@]}")
    want loader && step "loader mode, steady, train: $LOADERS" 90 bench "${lm[@]}" --data "$DATA" --split train \
        --steps "$LSTEPS" --warmup "$LWARM"
    want loader && step "loader mode, steady, val" 60 bench "${lm[@]}" --data "$DATA" --split val \
        --steps "$VSTEPS" --warmup "$VWARM"
    want small && step "loader mode, small $SMALL, train" 60 bench "${lm[@]}" --data "$SMALL" --split train \
        --steps "$LSTEPS" --warmup "$LWARM"

    local train=(--mode train --amp bf16 --channels-last --steps "$TSTEPS" --loader "$LOADERS" "${COMMON[@]}")
    want eager && step "train eager $ARCHS, steady" 150 bench "${train[@]}" --data "$DATA" --warmup "$TWARM" --arch "$ARCHS"
    want small && step "train eager resnet50, small $SMALL" 60 bench "${train[@]}" --data "$SMALL" --warmup "$TWARM" --arch resnet50

    local compile=1
    if ! want compile; then
        compile=0
    elif [[ $SMOKE == 1 && ${GPU_CHECK_SMOKE_COMPILE:-0} != 1 ]]; then
        compile=0; skip "train --compile" "smoke mode: inductor on 2 CPU cores takes minutes; GPU_CHECK_SMOKE_COMPILE=1 runs it"
    fi
    (( compile )) && step "train compile resnet50, steady" 150 bench "${train[@]}" --data "$DATA" --warmup "$CWARM" --compile --arch resnet50

    # The planning curves: loader-only img/s at 1, 2, 4, ... workers (the CPU-bound loaders).
    want scaling && step "scaling mode: torchvision,dali-cpu" 60 bench --mode scaling --loader torchvision,dali-cpu \
        --split train --data "$DATA" --steps "$(( LSTEPS / 3 + 1 ))" --warmup 2 "${COMMON[@]}"

    # The alternatives to the defaults, train split: torchvision in chunks of 16 (every worker
    # on the batch the consumer waits for), its thread pool, torchvision-gpu with 2 producers.
    local alt=(--mode loader --split train --workers "$CORES" --steps "$LSTEPS" --warmup "$LWARM" --data "$DATA" "${COMMON[@]}")
    # torchvision-gpu's alternatives: the per-image augment loop (what the batched one replaced)
    # and nvImageCodec's decoder (it travels with the DALI parts).
    want extras && step "loader mode: torchvision-gpu augment=per-image" 30 bench "${alt[@]}" --loader torchvision-gpu \
        --loader-options augment=per-image
    if want extras && has_nvimgcodec; then
        step "parity torchvision-gpu decoder=nvimgcodec" 45 parity_nvimgcodec
        step "loader mode: torchvision-gpu decoder=nvimgcodec" 30 bench "${alt[@]}" --loader torchvision-gpu \
            --loader-options decoder=nvimgcodec
    elif want extras; then
        skip "torchvision-gpu decoder=nvimgcodec" "nvImageCodec not importable (it comes with the DALI parts)"
    fi
    want extras && step "loader mode: torchvision chunk=16" 30 bench "${alt[@]}" --loader torchvision --loader-options chunk=16
    want extras && step "loader mode: torchvision-gpu producers=2" 30 bench "${alt[@]}" --loader torchvision-gpu --loader-options producers=2
    want extras && step "train eager torchvision chunk=16" 45 bench "${train[@]}" --data "$DATA" --loader torchvision \
        --loader-options chunk=16 --warmup "$TWARM" --arch resnet50
    want extras && step "loader mode: torchvision pool=threads" 30 bench "${alt[@]}" --loader torchvision --loader-options pool=threads
    (( compile )) && step "train compile resnet18, steady" 120 bench "${train[@]}" --data "$DATA" --warmup "$CWARM" --compile --arch resnet18

    summary
    local i failed=0
    for i in "${!STEP_STATUS[@]}"; do [[ ${STEP_STATUS[$i]} == ok || ${STEP_STATUS[$i]} == skipped:* ]] || failed=1; done
    echo "gpu_check done in $(elapsed)s; records: $REC; log: $LOG"
    return $failed
}

: >"$LOG"
main 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
