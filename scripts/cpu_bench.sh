#!/usr/bin/env bash
# The CPU figures of docs/performance.md, in one go (about 25 minutes on 2 cores):
#   1. the fp32 eager baseline against the default fast path at each model's reference
#      setting, scaled down where the CPU needs it (CycleGAN and pix2pix 128 px, StarGAN v2 64 px);
#   2. channels_last against the default memory format, both in bf16, per model: the
#      measurement behind each model config's device.channels_last_faster_on.
# Usage: scripts/cpu_bench.sh [output folder] [speed|channels_last|all]
#        (results: speed.json, channels_last.json, logs; default: all)
# Run it on an otherwise idle machine: the two variants alternate, but a busy machine adds noise.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-cpu_bench_out}"
parts="${2:-all}"
mkdir -p "$out"
python="${PYTHON:-python}"

reference() {  # model, then the Hydra overrides of its (scaled-down) reference setting
  case $1 in
    gan) echo "dataset.image_size=32 trainer.batch_size=64" ;;  # the MLP GAN of the paper's MNIST size
    dcgan|wgan|wgan_gp) echo "~tuning dataset.image_size=64 trainer.batch_size=64" ;;
    cyclegan) echo "~tuning dataset=shapes_unpaired dataset.image_size=128 trainer.batch_size=1" ;;
    pix2pix) echo "~tuning dataset=shapes_paired dataset.image_size=128 trainer.batch_size=1 model.generator=unet_128" ;;
    stargan) echo "~tuning dataset=shapes_attributes dataset.image_size=128 trainer.batch_size=16" ;;
    stargan_v2) echo "~tuning dataset=shapes_domains dataset.image_size=64 trainer.batch_size=8" ;;
  esac
}
steps() {  # steps per timed chunk: about 10 s of fp32 work
  case $1 in
    cyclegan|pix2pix) echo 3 ;;
    stargan) echo 5 ;;  # one whole cycle of 5 critic steps and a generator step
    stargan_v2) echo 1 ;;
    *) echo 10 ;;
  esac
}
rounds_and_warmup() {  # StarGAN v2 takes half a minute a step in fp32
  if [ "$1" = stargan_v2 ]; then echo "--rounds 2 --warmup 1"; else echo "--rounds 3 --warmup 2"; fi
}

if [ "$parts" != channels_last ]; then
rm -f "$out"/speed_*.json "$out/speed.log"
for model in gan dcgan wgan wgan_gp cyclegan pix2pix stargan stargan_v2; do
  # shellcheck disable=SC2046
  "$python" scripts/bench.py --models "$model" --steps "$(steps "$model")" $(rounds_and_warmup "$model") \
    --overrides device=cpu $(reference "$model") --json "$out/speed_$model.json" 2>&1 | tee -a "$out/speed.log"
done
fi
if [ "$parts" != speed ]; then
rm -f "$out"/channels_last_*.json "$out/channels_last.log"
for model in dcgan wgan wgan_gp cyclegan pix2pix stargan stargan_v2; do
  # shellcheck disable=SC2046
  "$python" scripts/bench.py --models "$model" --steps "$(steps "$model")" $(rounds_and_warmup "$model") --no-memory \
    --overrides device=cpu device.precision=bf16 $(reference "$model") \
    --baseline device.channels_last=false --fast device.channels_last=true \
    --json "$out/channels_last_$model.json" 2>&1 | tee -a "$out/channels_last.log"
done
fi
"$python" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for kind in ("speed", "channels_last"):
    if not list(out.glob(f"{kind}_*.json")):
        continue
    rows = [row for path in sorted(out.glob(f"{kind}_*.json")) for row in json.loads(path.read_text())]
    (out / f"{kind}.json").write_text(json.dumps(rows, indent=2))
PY
