#!/usr/bin/env bash
# Regenerates the README's pictures (docs/images/) and evaluation table from the quickstart model.
#
#   docs/make_figures.sh [RUN_DIR]
#
# RUN_DIR defaults to runs/quickstart; when it holds no checkpoint yet, the quickstart is trained into it first
# (python -m alexnet_tf.train with its default config: a few minutes of CPU). Query images are validation images of
# the generated demo dataset that the quickstart trains on. Writes:
#   docs/images/conv1_kernels.png    the conv1 kernels, tower A above tower B (the paper's Figure 3)
#   docs/images/predictions.png      validation images with their top-5 bars (Figure 4, left)
#   docs/images/neighbors.png        training images nearest in fc7 space (Figure 4, right)
#   docs/images/evaluation.txt       the evaluation tables (centre crop, ten crops) of the run and of its export
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RUN="${1:-runs/quickstart}"
OUT=docs/images
mkdir -p "$OUT"

if ! ls "$RUN"/checkpoints/*.index >/dev/null 2>&1; then
  python3 -m alexnet_tf.train --run-dir "$RUN"
fi

# The demo's validation folder (val/<class>/*.JPEG) for the run's data settings; generated if missing.
VAL=$(python3 - "$RUN/config.yaml" <<'PY'
import os, sys
from alexnet_tf.config import load_config
from alexnet_tf.data.sources.demo import generate_demo
d = load_config(sys.argv[1]).data
if d.source != "demo":
    sys.exit(f"{sys.argv[1]}: data.source is {d.source!r}; this script draws the quickstart's demo images")
print(os.path.join(generate_demo(os.path.join(d.resolved_cache_dir(), "demo"), d.demo_classes,
                                 d.demo_train_per_class, d.demo_val_per_class, d.demo_seed), "val"))
PY
)
EXPORT=$(ls -d "$RUN"/export/[0-9]* 2>/dev/null | sort -V | tail -1 || true)

python3 -m alexnet_tf.visualize kernels --model "$RUN" --out "$OUT/conv1_kernels.png"

# One validation image of each of the first 8 classes (the paper's Figure 4 shows 8).
mapfile -t PREDICT < <(ls -d "$VAL"/*/ | head -8 | while read -r d; do ls "$d"*.JPEG | sed -n 1p; done)
python3 -m alexnet_tf.predict "${PREDICT[@]}" --model "${EXPORT:-$RUN}" --columns 4 --figure "$OUT/predictions.png"

# Five queries from five classes, six neighbours each (as the paper's Figure 4, right).
mapfile -t QUERIES < <(ls -d "$VAL"/*/ | sed -n '1~2p' | head -5 | while read -r d; do ls "$d"*.JPEG | sed -n 2p; done)
python3 -m alexnet_tf.visualize neighbors --model "$RUN" --query "${QUERIES[@]}" --out "$OUT/neighbors.png" \
  --no-progress

# The run, then its export through the SavedModel's signatures: the same numbers (the JSON reports go to RUN/reports/).
python3 -m alexnet_tf.evaluate --model "$RUN" --no-progress \
  | tee "$OUT/evaluation.txt"
if [ -n "$EXPORT" ]; then
  python3 -m alexnet_tf.evaluate --model "$EXPORT" --no-progress --classes 0 \
    | tee -a "$OUT/evaluation.txt"
fi
