#!/usr/bin/env bash
# The checks that need a CUDA card, in one go (a few minutes on an H100):
#   1. tests/test_cuda.py: every model trains on the card in fp32, bf16 and fp16
#      (gradient scaler), resumes, and its checkpoint serves on the CPU;
#   2. scripts/bench.py at each model's reference setting, fp32 / bf16 / fp16.
# Usage: scripts/gpu_check.sh [output folder]   (results: gpu_bench.json, logs)
# On a machine without gantrain's pure-Python dependencies, put their wheels in
# .whl/ (hydra-core, omegaconf, antlr4-python3-runtime): they are installed first.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check_out}"
mkdir -p "$out"
python="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gantrain_site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/gantrain_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"

parallel=()  # pytest-xdist, where installed: the 24 runs are small for the card
if "$python" -c "import xdist" 2>/dev/null; then parallel=(-n "$(( $(nproc) > 8 ? 8 : $(nproc) ))"); fi
"$python" -m pytest -q -p no:cacheprovider "${parallel[@]}" tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
tests_status=${PIPESTATUS[0]}

bench() {  # model, then Hydra overrides for its reference setting
  local model=$1; shift
  "$python" scripts/bench.py --models "$model" --precisions fp32 bf16 fp16 --steps 20 --warmup 5 \
    --overrides device=cuda '~tuning' "$@" --json "$out/bench_$model.json" 2>&1 | tee -a "$out/bench.log"
}
bench dcgan dataset.image_size=64 trainer.batch_size=128
bench cyclegan dataset=shapes_unpaired dataset.image_size=256 trainer.batch_size=1
bench pix2pix dataset=shapes_paired dataset.image_size=256 trainer.batch_size=1
bench stargan dataset=shapes_attributes dataset.image_size=128 trainer.batch_size=16
bench stargan_v2 dataset=shapes_domains dataset.image_size=256 trainer.batch_size=8
"$python" - "$out" <<'EOF'
import json, pathlib, sys
rows = [row for path in sorted(pathlib.Path(sys.argv[1]).glob("bench_*.json")) for row in json.loads(path.read_text())]
pathlib.Path(sys.argv[1], "gpu_bench.json").write_text(json.dumps(rows, indent=2))
EOF
echo "tests exit status: $tests_status"
exit "$tests_status"
