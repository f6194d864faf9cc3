#!/usr/bin/env bash
# The checks that need a CUDA card, in one go, most important first, within
# GPU_CHECK_SECONDS (default 540; each step also has its own time limit, so a slow one
# cannot starve the rest, and a step that would pass the deadline is cut short):
#   1. speed: scripts/bench.py at each model's reference setting, the fp32 eager baseline
#      against the defaults (on CUDA: fused Adam and whole-step CUDA graphs, bf16 inside them,
#      the model's measured memory format and compile choice), then a profile of 5 default
#      steps (the device's busy share, the host's waits, graph launches per step, the slowest
#      kernels);
#   2. tests/test_cuda.py: every model trains on the card in fp32, bf16 and fp16 (gradient
#      scaler), resumes, and its checkpoint serves on the CPU; every family trains through
#      CUDA graphs; graphed training tracks eager training (cuDNN benchmark off), also after a
#      resume; inductor-compiled networks train without recompiling as training goes on;
#   2b. end to end: gantrain model=cyclegan on a generated folder of 1,000 + 1,000 256-px JPEGs,
#      its own perf/images_per_s against the bench rate;
#   3. the decisions not yet measured on a card (docs/performance.md): compiled pix2pix,
#      StarGAN and StarGAN v2 (device.compile_faster_on); bf16 against fp32 inside the graphs
#      for pix2pix and StarGAN v2; channels_last for pix2pix (device.channels_last_faster_on).
# Usage: scripts/gpu_check.sh [output folder]   (results: speed.json, compiled.json,
# precision.json, channels_last.json, the logs and gpu.txt, which names the card)
# On a machine without gantrain's pure-Python dependencies, put their wheels in
# .whl/ (hydra-core, omegaconf, antlr4-python3-runtime): they are installed first.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check_out}"
mkdir -p "$out"
python="${PYTHON:-python3}"
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-540}))
within() {  # the smaller of a step's own limit and the time left, or nothing when under 15 s are left
  local left=$((deadline - SECONDS))
  [ "$left" -ge 15 ] && echo $(($1 < left ? $1 : left))
}

if compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gantrain_site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/gantrain_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"

reference() {  # model, then the Hydra overrides of its reference setting
  case $1 in
    dcgan) echo "~tuning dataset.image_size=64 trainer.batch_size=128" ;;
    cyclegan) echo "~tuning dataset=shapes_unpaired dataset.image_size=256 trainer.batch_size=1" ;;
    pix2pix) echo "~tuning dataset=shapes_paired dataset.image_size=256 trainer.batch_size=1" ;;
    stargan) echo "~tuning dataset=shapes_attributes dataset.image_size=128 trainer.batch_size=16" ;;
    stargan_v2) echo "~tuning dataset=shapes_domains dataset.image_size=256 trainer.batch_size=8" ;;
  esac
}
bench() {  # name of the result, seconds allowed, model, then bench.py's own arguments
  local name=$1 limit=$2 model=$3
  shift 3
  limit=$(within "$limit") || { echo "$name $model: skipped, out of time" | tee -a "$out/$name.log"; return; }
  local steps=(--steps 10 --rounds 2 --warmup 3)
  [ "$model" = stargan_v2 ] && steps=(--steps 4 --rounds 2 --warmup 2)
  # shellcheck disable=SC2046
  timeout "$limit" "$python" scripts/bench.py --models "$model" "${steps[@]}" \
    --overrides device=cuda $(reference "$model") "$@" --json "$out/${name}_$model.json" 2>&1 | tee -a "$out/$name.log"
}
for model in dcgan cyclegan pix2pix stargan; do bench speed 45 "$model" --profile 5; done
bench speed 90 stargan_v2 --profile 2

# --dist load: pyproject's loadfile would put the whole file on one worker, and each test
# is three CLI runs (about a minute in all on an H100 machine)
# SIGINT: pytest still reports the failures when the limit cuts it short
timeout -s INT -k 20 "$(within 170 || echo 1)" "$python" -m pytest -v --tb=short -p no:cacheprovider -p no:benchmark -n 12 --dist load tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
tests_status=${PIPESTATUS[0]}

# end to end: the data pipeline and the graphs through the real command line, at the bench's setting
limit=$(within 120) && {
  "$python" - "$out/unaligned" <<'PY'
import pathlib, sys
import numpy as np
from PIL import Image
root = pathlib.Path(sys.argv[1])
rng = np.random.default_rng(0)
for side in ("trainA", "trainB", "testA", "testB"):
    (root / side).mkdir(parents=True, exist_ok=True)
    for n in range(1000 if side.startswith("train") else 4):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(root / side / f"{n:04d}.jpg")
PY
  timeout "$limit" "$python" -m gantrain model=cyclegan dataset=unaligned dataset.path="$out/unaligned"     dataset.image_size=256 dataset.load_size=256 dataset.preprocess=crop device=cuda trainer.max_steps=600     trainer.log_every=100 trainer.checkpoint_every=100000 trainer.sample_every=100000 trainer.progress=false     hydra.run.dir="$out/end_to_end" 2>&1 | tail -n 8 | tee "$out/end_to_end.log"
}

for model in pix2pix stargan stargan_v2; do bench compiled 100 "$model" --fast device.compile=true; done
for model in pix2pix stargan_v2; do
  bench precision 90 "$model" --baseline device.precision=fp32 --fast device.precision=bf16
done
bench channels_last 45 pix2pix --baseline device.channels_last=false --fast device.channels_last=true
"$python" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for kind in ("speed", "compiled", "precision", "channels_last"):
    rows = [row for path in sorted(out.glob(f"{kind}_*.json")) for row in json.loads(path.read_text())]
    (out / f"{kind}.json").write_text(json.dumps(rows, indent=2))
PY

echo "tests exit status: $tests_status"
exit "$tests_status"
