#!/usr/bin/env bash
# One device run for issue #22, prepared and checked on a CPU: the machine,
# benchmarks/gpu_step.py (eager against CUDA-graph steps: what a captured
# step would bring), benchmarks/gpu.py (fits, steps, inference of 1,000,000
# rows), then the whole test suite with device="auto" (the default: CUDA
# there). Results go to $OUT (the device tool brings them back).
#
# Two stages, one device call each (the tool allows 600 s a call): `bench`,
# the default (about 300 s), then `tests` (about 250 s) if time is left.
#
# Before the run, here: copy Fashion-MNIST into .data/ (ignored by git; 30 MB),
#   mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/
# then run, naming .data in carry:
#   bash benchmarks/gpu_session.sh bench    (timeout 400 s)
#   bash benchmarks/gpu_session.sh tests    (timeout 330 s)
# To check it on a CPU first:
#   PYTHON=.venv/bin/python PYTEST_ARGS=tests/test_determinism.py \
#   GPU_ARGS="--device cpu --rows 2000 --inference-rows 20000 --matmul-size 1024" \
#   STEP_ARGS="--device cpu --steps 20 --batch-sizes 256 --matmul-size 1024" \
#   OUT=/tmp/skvae-gpu SKVAE_FASHION_MNIST=/usr/share/datasets/fashion-mnist \
#   bash benchmarks/gpu_session.sh bench     (then the same with tests)
# The device's image has torch, scikit-learn and pytest but no dask: the dask
# tests skip there. skvae is imported from the working tree (PYTHONPATH), not
# installed: the image's torch may be older than pyproject's floor.
set -uo pipefail
out=${OUT:-/tmp/skvae-gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export SKVAE_FASHION_MNIST=${SKVAE_FASHION_MNIST:-$PWD/.data/fashion-mnist}
python=${PYTHON:-python3}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    "$python" -c "import sys, torch, sklearn, numpy; print(sys.version); \
print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.is_available()); print('sklearn', sklearn.__version__, \
'numpy', numpy.__version__)"
} 2>&1 | tee "$out/machine.txt"

stage=${1:-bench}
if [ "$stage" = bench ]; then
    timeout 90 "$python" benchmarks/gpu_step.py --out "$out/gpu_step" ${STEP_ARGS:-} \
        2>&1 | tee "$out/gpu_step.log"
    timeout 280 "$python" benchmarks/gpu.py --out "$out/gpu" ${GPU_ARGS:-} 2>&1 \
        | tee "$out/gpu.log"
elif [ "$stage" = tests ]; then
    # xdist where the image has it: workers share the one GPU, and each
    # gets two of the cores.
    workers=$("$python" -c "import xdist" 2>/dev/null && echo "-n $(($(nproc) / 2))")
    timeout 300 "$python" -m pytest -q -p no:cacheprovider $workers ${PYTEST_ARGS:-} \
        2>&1 | tail -40 | tee "$out/tests.txt"
else
    echo "usage: bash benchmarks/gpu_session.sh [bench|tests]" >&2
    exit 2
fi
