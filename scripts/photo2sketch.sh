#!/usr/bin/env bash
# The photo2sketch recipe: data set, default model, the loss ablation and the benchmark.
#
#   scripts/photo2sketch.sh install    # the Debian packages and pip packages that hold the photos (root)
#   scripts/photo2sketch.sh data       # WORK/data: the training tiles of forty photos, the test tiles (about 5 min)
#   scripts/photo2sketch.sh default    # the default model (22240 steps, about 60 min on one CPU thread) -> models/photo2sketch
#   scripts/photo2sketch.sh ablation   # six 4448-step runs on the default's data and recipe (about 12 min each) -> models/ablation/NAME
#   scripts/photo2sketch.sh evaluate   # the benchmark tables of the README
#   scripts/photo2sketch.sh three      # the previous default's recipe: three photos per domain (12064 steps, 39 min) -> WORK/three
#
# WORK (default /tmp/photo2sketch) holds the data and the run folders; THREADS (default 1) torch threads.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/photo2sketch}
THREADS=${THREADS:-1}
# The recipe shared by every run: a small ResNet generator (ngf 16, 6 blocks), a 70x70 PatchGAN of width 32,
# 64x64 crops of the 144x144 tiles, cycle weights 20, identity weight 1.0 (x 20), seed 0. The data: twenty photos
# per domain without their flat tiles (tile_detail under 8 grey levels: sky, smooth gradients).
COMMON=(--data "$WORK/data" --name-A photo --name-B sketch --ngf 16 --n-blocks 6 --ndf 32
        --load-size 144 --crop-size 64 --lambda-A 20 --lambda-B 20 --lambda-identity 1.0 --threads "$THREADS" --seed 0)
# The previous default's data and identity weight (three photos per domain, identity 3.0): `three`.
THREE=("${COMMON[@]/$WORK\/data/$WORK/three_data}" --lambda-identity 3.0)
ABLATIONS=(cycle_alone gan_alone gan_forward_cycle gan_backward_cycle full full_no_identity)

ablation_flags() {
  case "$1" in
    cycle_alone) echo "--no-gan" ;;
    gan_alone) echo "--no-cycle-A --no-cycle-B" ;;
    gan_forward_cycle) echo "--no-cycle-B" ;;
    gan_backward_cycle) echo "--no-cycle-A" ;;
    full) echo "" ;;
    full_no_identity) echo "--lambda-identity 0" ;;
  esac
}

ship() {  # ship RUN_DIR DEST: the exported model (safetensors + config + card), nothing else
  mkdir -p "$2"
  cp "$1/model/config.json" "$1/model/model.safetensors" "$2/"
  [ -f "$2/README.md" ] || cp "$1/model/README.md" "$2/"
}

case "${1:-}" in
  install)
    # The photos come from installed packages (sources and licences: cyclegan/photo2sketch.py, PHOTOS).
    apt-get install -y --no-install-recommends \
      $(python -c "from cyclegan.photo2sketch import DEBIAN_PACKAGES; print(*DEBIAN_PACKAGES)")
    pip install "scikit-learn" "scikit-image" "scipy" "matplotlib" ;;
  data)
    python -m cyclegan.photo2sketch build --task photo2sketch --photos wide --min-detail 8 --out "$WORK/data" ;;
  default)
    python train/run.py "${COMMON[@]}" --out "$WORK/default" --n-epochs 10 --n-epochs-decay 10 \
      --save-every 1000 --export-discriminators $( [ -f "$WORK/default/checkpoint.safetensors" ] && echo --resume )
    ship "$WORK/default" models/photo2sketch
    rm -f models/photo2sketch/training_examples/*.jpg
    python -m cyclegan.photo2sketch strip --photos wide --out models/photo2sketch/training_examples
    python -m cyclegan.evaluate --model models/photo2sketch --save-reference --threads "$THREADS" ;;
  ablation)
    # The default's data and recipe, a fifth of its budget (2 + 2 epochs); one loss term changed per run.
    names=("${@:2}"); [ ${#names[@]} -gt 0 ] || names=("${ABLATIONS[@]}")
    [ -d "$WORK/data" ] || bash scripts/photo2sketch.sh data
    for name in "${names[@]}"; do
      # shellcheck disable=SC2046
      python train/run.py "${COMMON[@]}" --out "$WORK/ablation/$name" --n-epochs 2 --n-epochs-decay 2 \
        $(ablation_flags "$name")
      ship "$WORK/ablation/$name" "models/ablation/$name"
    done ;;
  three)
    # Not shipped any more: the default before this recipe (README, "The previous default").
    python -m cyclegan.photo2sketch build --task photo2sketch --photos three --out "$WORK/three_data"
    python train/run.py "${THREE[@]}" --out "$WORK/three" \
      --n-epochs 16 --n-epochs-decay 16 --export-discriminators ;;
  evaluate)
    python -m cyclegan.evaluate --model models/photo2sketch --task photo2sketch --threads "$THREADS"
    python -m cyclegan.evaluate --task photo2sketch --threads "$THREADS" \
      --model $(for n in "${ABLATIONS[@]}"; do echo "models/ablation/$n"; done) ;;
  *)
    sed -n 2,12p "$0"; exit 2 ;;
esac
