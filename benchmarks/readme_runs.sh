#!/usr/bin/env bash
# Every number in the README, regenerated: trains and evaluates on ../shared/data/cifake
# and runs the benchmarks. About 40 minutes on a 2-core CPU; outputs go to runs/readme/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/readme
mkdir -p "$out"
data=../shared/data/cifake
run() { local name=$1; shift; echo "\$ $*" | tee "$out/$name.txt"; "$@" 2>&1 | tee -a "$out/$name.txt"; }

run univfd-train   aigi train configs/univfd-cifake.yaml
run univfd-eval    aigi eval --detector runs/univfd-cifake --data $data/test
run knn-train      aigi train configs/univfd-knn-cifake.yaml
run knn-eval       aigi eval --detector runs/univfd-knn-cifake --data $data/test
run detect         aigi detect examples/ --detector runs/univfd-cifake
run ltd-train      aigi train configs/ltd-cifake.yaml
run ltd-eval       aigi eval --detector runs/ltd-cifake --data $data/test
run mole-train     aigi train configs/mole-cifake.yaml data.limit_per_class=1000
run mole-eval      aigi eval --detector runs/mole-cifake --data $data/test
run mole-describe  aigi describe configs/mole-clip-b32.yaml
run bench-cache    python benchmarks/feature_cache.py --per-class 50
run bench-exit     python benchmarks/early_exit.py --detector runs/ltd-cifake
run bench-ltd      python benchmarks/train_from_cache.py --detector ltd --per-class 32 --epochs 2
run bench-mole     python benchmarks/train_from_cache.py --detector mole --per-class 16 --epochs 2
