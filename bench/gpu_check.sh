#!/usr/bin/env bash
# bench/gpu_check.sh: validate and measure every GPU path in ONE call on a lent GPU machine.
#
#   bash bench/gpu_check.sh                          # on the GPU machine (device `run`, timeout_s 560)
#   GPU_CHECK_SMOKE=1 OUT=/tmp/out bash bench/gpu_check.sh   # dry run here, tiny sizes, CPU
#
# Runs from the repo root with the machine's own python3/torch/torchvision (PYTHONPATH=., no
# venv, no installs, no network). Steps, in order, each time-boxed (`timeout`) inside one
# overall budget (GPU_CHECK_BUDGET), going on past failures:
#   1 fingerprint (nvidia-smi, bench.hardware, which loaders are available); build
#     loaders/_native.c in place if the machine can
#   2 embedded dataset (loaders/embedded.py, up to 8 processes), under $LOADERBENCH_DATA
#   3 pytest -m gpu (tests/benchmarks left out: its conftest shadows tests/conftest.py)
#   4 pixel parity, torchvision-gpu vs torchvision (val and train), -> $OUT/parity.json
#   5 loader mode: synthetic, torchvision (workers = cores), torchvision-gpu, dali, dali-cpu;
#     then torchvision with its thread pool, torchvision in chunks of 16 and torchvision-gpu
#     with 2 producers (train split)
#   6 train, eager: resnet50 + resnet18, same loaders (synthetic first: the ceiling); then
#     torchvision in chunks of 16 and torchvision-gpu with 2 producers
#   7 train, --compile: resnet18, then resnet50 (what the budget leaves)
#   8 summary tables + one `gpu_check` record with every step's outcome
# Loaders that cannot run here (DALI not installed, torchvision-gpu without CUDA) still get
# their `unavailable` records, with the reason. Train: 224 px, bf16 autocast, channels-last,
# batch 256.
#
# Writes under $OUT: gpu.jsonl (every record), gpu_check.log (all output), parity.json,
# pytest_gpu.xml. Knobs (env): GPU_CHECK_BUDGET (s, default 500), GPU_CHECK_N (embedded train
# images per class, default 1024: 10240 train = 40 full batches of 256, so no odd-sized last
# batch recompiles a compiled model mid-measurement, and warm-up + measured train steps (10 + 30)
# fit in one epoch: the 2026-11-26 runs used 512 (20 batches), and two epoch starts fell inside
# each measured window, a stall ImageNet's 5,000 batches per epoch would amortise), GPU_CHECK_BATCH, GPU_CHECK_STEPS, GPU_CHECK_SMOKE=1,
# GPU_CHECK_ONLY (comma list of pytest,parity,loader,eager,compile: run
# only those, e.g. a rerun of `compile` on the same warm machine, whose dataset and inductor
# caches are still there; fingerprint and dataset always run), GPU_CHECK_SMOKE_COMPILE=1 (also run the --compile steps in smoke mode: slow on CPU), PYTHON.
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
    BUDGET=${GPU_CHECK_BUDGET:-900}; N=${GPU_CHECK_N:-4}; BATCH=${GPU_CHECK_BATCH:-8}; RES=32
    LSTEPS=${GPU_CHECK_STEPS:-3}; TSTEPS=${GPU_CHECK_STEPS:-2}; LWARM=1; TWARM=1; CWARM=1; PARITY_N=24
    SCALE=3  # the step caps below are for the GPU machine; smoke mode (2 busy cores) gets 3x
else
    BUDGET=${GPU_CHECK_BUDGET:-500}; N=${GPU_CHECK_N:-1024}; BATCH=${GPU_CHECK_BATCH:-256}; RES=224
    LSTEPS=${GPU_CHECK_STEPS:-30}; TSTEPS=${GPU_CHECK_STEPS:-30}; LWARM=5; TWARM=10; CWARM=10; PARITY_N=256
    SCALE=1
fi
RESERVE=15  # seconds kept for the summary at the end
DATA="embedded:$N"
ARCHS=resnet50,resnet18
LOADERS=synthetic,torchvision,torchvision-gpu,dali,dali-cpu
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
COMMON=(--data "$DATA" --out "$REC" --no-progress --batch-size "$BATCH" --res "$RES")

STEP_NAMES=() STEP_STATUS=() STEP_SECS=()

ONLY=${GPU_CHECK_ONLY:-pytest,parity,loader,eager,compile}
want() { [[ ",$ONLY," == *",$1,"* ]]; }

elapsed() { echo $(( $(date +%s) - T0 )); }

# step NAME CAP_SECONDS COMMAND...: run it under timeout (the cap, or what the budget has left).
step() {
    local name=$1 cap=$(( $2 * SCALE )); shift 2
    local left=$(( BUDGET - $(elapsed) - RESERVE ))
    if (( left < 10 )); then
        echo; echo "== [$(elapsed)s] $name: SKIPPED (budget of ${BUDGET}s spent)"
        STEP_NAMES+=("$name") STEP_STATUS+=("skipped-budget") STEP_SECS+=(0)
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

make_data() {
    "$PY" - "$DATA" <<'PY'
import os, sys, time
from loaders.datasets import resolve
t = time.perf_counter()
ds = resolve(sys.argv[1], progress=False)
print(ds.describe(), f"ready in {time.perf_counter() - t:.1f}s on {len(os.sched_getaffinity(0))} cores")
PY
}

parity() {
    "$PY" - "$DATA" "$PARITY_N" "$OUT/parity.json" <<'PY'
"""torchvision-gpu (CUDA if there, else its CPU path) vs the torchvision backend, 0-255 levels."""
import json, sys, time
import torch
from loaders import LoaderSpec, build
from loaders.datasets import Dataset, resolve
from loaders.torchvision_gpu import TorchvisionGpuLoader

data, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ds = resolve(data, progress=False)
device = "cuda" if torch.cuda.is_available() else "cpu"
spec = LoaderSpec(batch_size=32, res=224, val_res=224, seed=7)
result = {"device": device, "images": {}, "decoder": {}}
for split in ("val", "train"):
    samples = ds.samples(split)[:: max(1, len(ds.samples(split)) // n)][:n]
    sub = Dataset(ds.name + "-parity", ds.root, ds.classes, {"train": samples, "val": samples}, ds.fingerprint + "-p")
    t = time.perf_counter()
    with TorchvisionGpuLoader(split, sub, spec.with_(device=device)) as L:
        a = torch.cat([x.float().cpu() for x, _ in L]); result["decoder"][split] = L.describe()
    with build("torchvision", split, sub, spec.with_(device="cpu")) as L:
        b = torch.cat([x.float().cpu() for x, _ in L])
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    d = ((a - b) * std).abs()
    per = d.mean((1, 2, 3))
    r = {"mean_abs_levels": round(float(d.mean()), 4), "worst_image_levels": round(float(per.max()), 4),
         "p99_levels": round(float(d.flatten()[:: 97].quantile(0.99)), 2), "max_levels": round(float(d.max()), 2),
         "images": len(samples), "seconds": round(time.perf_counter() - t, 2)}
    result[split] = r
    print(f"parity {split:<5} {device}: mean |diff| {r['mean_abs_levels']:.3f} levels, worst image "
          f"{r['worst_image_levels']:.3f}, p99 {r['p99_levels']}, max {r['max_levels']} over {len(samples)} images")
print("decoder stats:", json.dumps(result["decoder"]))
json.dump(result, open(out, "w"), indent=1)
sys.exit(0 if result["val"]["mean_abs_levels"] <= 2.0 else 1)
PY
}

summary() {
    echo; echo "== [$(elapsed)s] summary"
    local i
    printf '%-42s %-22s %6s\n' step outcome secs
    for i in "${!STEP_NAMES[@]}"; do
        printf '%-42s %-22s %6s\n' "${STEP_NAMES[$i]}" "${STEP_STATUS[$i]}" "${STEP_SECS[$i]}"
    done
    local steps_json
    steps_json=$(for i in "${!STEP_NAMES[@]}"; do printf '%s\t%s\t%s\n' "${STEP_NAMES[$i]}" "${STEP_STATUS[$i]}" "${STEP_SECS[$i]}"; done)
    STEPS_TSV=$steps_json timeout 60 "$PY" - "$REC" "$OUT" "$SMOKE" "$BUDGET" "$(elapsed)" <<'PY'
import json, os, sys
from pathlib import Path
rec, out, smoke, budget, wall = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
steps = [dict(zip(("step", "outcome", "seconds"), l.split("\t"))) for l in os.environ.get("STEPS_TSV", "").splitlines() if l]
records = [json.loads(l) for l in open(rec)] if os.path.exists(rec) else []
parity = json.load(open(out / "parity.json")) if (out / "parity.json").exists() else None
pytest = None
xml = out / "pytest_gpu.xml"
if xml.exists():
    import xml.etree.ElementTree as ET
    s = ET.parse(xml).getroot()
    s = s if s.tag == "testsuite" else s.find("testsuite")
    pytest = {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}

def cfg(r, k):
    return (r.get("config") or {}).get(k)

print("\nloader mode (images/s)")
for r in records:
    if r["kind"] == "loader":
        m = r["metrics"]
        print(f"  {r['loader']:<16} {cfg(r, 'loader_options') or '':<12} {str(r.get('variant')):<6} {m.get('images_per_sec', 0):>10.1f}  {r['status']} {(r.get('error') or '')[:90]}")
print("\ntrain (images/s; ratio to synthetic; data-wait fraction)")
for r in records:
    if r["kind"] == "train":
        m = r["metrics"]
        mode = "compile" if cfg(r, "compile") else "eager"
        ratio = m.get("ratio_to_synthetic")
        print(f"  {str(r['arch']):<9} {mode:<8} {r['loader']:<16} {cfg(r, 'loader_options') or '':<12} {m.get('images_per_sec', 0):>9.1f}  "
              f"{'' if ratio is None else f'{ratio:.3f}':>6}  {m.get('data_wait_frac', ''):>7}  {r['status']} {(r.get('error') or '')[:80]}")
if parity:
    print("\nparity vs torchvision (levels):", {k: parity[k]["mean_abs_levels"] for k in ("val", "train") if k in parity}, "on", parity["device"])
if pytest:
    print("pytest -m gpu:", pytest)
bad = [s for s in steps if s["outcome"] != "ok" and not s["outcome"].startswith("skipped:")]
skipped = [s for s in steps if s["outcome"].startswith("skipped:")]
for st in steps:
    st["seconds"] = int(st["seconds"])
print(f"\n{len(records)} records in {rec}; steps: {len(steps) - len(bad) - len(skipped)} ok, {len(skipped)} skipped on purpose, "
      f"{len(bad)} failed/timed out/cut; {wall}s of {budget}s")
sys.path.insert(0, ".")
from bench.results import append, make_record
metrics = {"steps": steps, "steps_ok": len(steps) - len(bad) - len(skipped), "steps_failed": len(bad), "steps_total": len(steps), "wall_s": wall, "budget_s": budget,
           "records": len(records), "smoke": smoke, "pytest_gpu": pytest,
           "parity_val_levels": parity and parity.get("val", {}).get("mean_abs_levels"),
           "parity_train_levels": parity and parity.get("train", {}).get("mean_abs_levels"),
           "parity_device": parity and parity.get("device")}
append(make_record("gpu_check", variant="smoke" if smoke else "full", metrics=metrics,
                   status="ok" if not bad else "error", error="; ".join(f"{s['step']}: {s['outcome']}" for s in bad) or None), rec)
PY
}

export PY DATA OUT PARITY_N WRAP SMOKE BUDGET CORES BATCH RES N
export -f bench build_native fingerprint make_data parity

main() {
    echo "gpu_check: $(date -u +%FT%TZ)"
    step "fingerprint" 60 fingerprint
    step "build loaders._native" 60 build_native
    step "dataset $DATA" 120 make_data
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
    want loader && step "loader mode: $LOADERS" 120 bench --mode loader --loader "$LOADERS" --split both --workers "$CORES" \
        --steps "$LSTEPS" --warmup "$LWARM" "${COMMON[@]}"

    # The alternatives to the defaults, train split: torchvision's thread pool (the default
    # below 5 workers; above, processes) and torchvision-gpu with 2 producer threads.
    want loader && step "loader mode: torchvision pool=threads" 40 bench --mode loader --loader torchvision \
        --loader-options pool=threads --split train --workers "$CORES" --steps "$LSTEPS" --warmup "$LWARM" "${COMMON[@]}"
    want loader && step "loader mode: torchvision chunk=16" 40 bench --mode loader --loader torchvision \
        --loader-options chunk=16 --split train --workers "$CORES" --steps "$LSTEPS" --warmup "$LWARM" "${COMMON[@]}"
    want loader && step "loader mode: torchvision-gpu producers=2" 40 bench --mode loader --loader torchvision-gpu \
        --loader-options producers=2 --split train --workers "$CORES" --steps "$LSTEPS" --warmup "$LWARM" "${COMMON[@]}"

    local train=(--mode train --amp bf16 --channels-last --steps "$TSTEPS" --loader "$LOADERS" "${COMMON[@]}")
    want eager && step "train eager $ARCHS" 180 bench "${train[@]}" --warmup "$TWARM" --arch "$ARCHS"
    want eager && step "train eager torchvision chunk=16" 60 bench "${train[@]}" --loader torchvision \
        --loader-options chunk=16 --warmup "$TWARM" --arch "$ARCHS"
    want eager && step "train eager torchvision-gpu producers=2" 60 bench "${train[@]}" --loader torchvision-gpu \
        --loader-options producers=2 --warmup "$TWARM" --arch "$ARCHS"

    if ! want compile; then
        :
    elif [[ $SMOKE == 1 && ${GPU_CHECK_SMOKE_COMPILE:-0} != 1 ]]; then
        skip "train --compile" "smoke mode: inductor on 2 CPU cores takes minutes; GPU_CHECK_SMOKE_COMPILE=1 runs it"
    else
        # One arch at a time, the cheaper first, so the budget ends on a complete set of loaders.
        step "train compile resnet18" 200 bench "${train[@]}" --warmup "$CWARM" --compile --arch resnet18
        step "train compile resnet50" 300 bench "${train[@]}" --warmup "$CWARM" --compile --arch resnet50
    fi

    summary
    local i failed=0
    for i in "${!STEP_STATUS[@]}"; do [[ ${STEP_STATUS[$i]} == ok || ${STEP_STATUS[$i]} == skipped:* ]] || failed=1; done
    echo "gpu_check done in $(elapsed)s; records: $REC; log: $LOG"
    return $failed
}

: >"$LOG"
main 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
