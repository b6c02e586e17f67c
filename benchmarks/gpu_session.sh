#!/usr/bin/env bash
# One device run for issue #22, prepared and checked on a CPU: the machine, the
# whole test suite with device="auto" (the default: CUDA there), then
# benchmarks/gpu.py. Results go to $OUT (the device tool brings them back).
#
# Before the run, here: copy Fashion-MNIST into .data/ (ignored by git; 30 MB),
#   mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/
# then run, naming .data in carry:
#   bash benchmarks/gpu_session.sh      (timeout about 540 s)
# To check it on a CPU first:
#   PYTHON=.venv/bin/python PYTEST_ARGS=tests/test_threads.py \
#   GPU_ARGS="--device cpu --rows 2000 --inference-rows 20000 --matmul-size 1024" \
#   OUT=/tmp/skvae-gpu SKVAE_FASHION_MNIST=/usr/share/datasets/fashion-mnist \
#   bash benchmarks/gpu_session.sh
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

# The suite: xdist where the image has it (8 workers share the one GPU).
workers=$("$python" -c "import xdist" 2>/dev/null && echo "-n 8")
timeout 300 "$python" -m pytest -q -p no:cacheprovider $workers ${PYTEST_ARGS:-} 2>&1 \
    | tail -40 | tee "$out/tests.txt"

timeout 300 "$python" benchmarks/gpu.py --out "$out/gpu" ${GPU_ARGS:-} 2>&1 \
    | tee "$out/gpu.log"
