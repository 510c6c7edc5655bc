#!/usr/bin/env bash
# Every number in README.md and docs/, regenerated: trains and evaluates on ../shared/data/cifake
# and runs the benchmarks. About 40 minutes on a 2-core CPU; outputs go to runs/readme/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/readme
mkdir -p "$out"
data=../shared/data/cifake
export AIGI_PRECISION=fp32  # the published scores are the fp32 reference, the same on every CPU
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
run bench-exit-8   python benchmarks/early_exit.py --stop-after 8
run univfd-2k      aigi train configs/univfd-cifake.yaml data.limit_per_class=1000 output=runs/univfd-cifake-2k
run univfd-2k-eval aigi eval --detector runs/univfd-cifake-2k --data $data/test
run ltd-2k         aigi train configs/ltd-cifake.yaml data.limit_per_class=1000 output=runs/ltd-cifake-2k
run ltd-2k-eval    aigi eval --detector runs/ltd-cifake-2k --data $data/test
run compare        aigi eval -d univfd-cifake -d runs/univfd-knn-cifake -d runs/ltd-cifake -d runs/mole-cifake --data $data/test -o runs/readme-compare
run robustness     aigi robustness -d univfd-cifake -d runs/ltd-cifake --data $data/test --ops jpeg,gaussian_blur --severities 0.25,0.5,0.75,1 --limit-per-class 100 -o runs/readme-robustness
run calibrate      aigi calibrate runs/univfd-cifake --data $data/val --method platt --out runs/univfd-cifake-platt
run ensemble       aigi ensemble -m univfd=univfd-cifake -m ltd=runs/ltd-cifake -m mole=runs/mole-cifake -o runs/ensemble-cifake --val $data/val
run ensemble-eval  aigi eval -d runs/ensemble-cifake --data $data/test -o runs/readme-ensemble --bootstrap 0
run ensemble-rob   aigi robustness -d runs/ensemble-cifake --data $data/test --ops jpeg,gaussian_blur --severities 0.25,0.5,0.75,1 --limit-per-class 100 -o runs/readme-ensemble-robustness
run dgs-train     aigi train configs/dgs-cifake.yaml data.limit_per_class=100
run dgs-eval      aigi eval -d runs/dgs-cifake --data $data/test --limit-per-class 250 --bootstrap 0 -o runs/readme-dgs
run dgs-univfd200 aigi train configs/univfd-cifake.yaml data.limit_per_class=100 output=runs/univfd-cifake-200
run dgs-univfd200-eval aigi eval -d runs/univfd-cifake-200 --data $data/test --limit-per-class 250 --bootstrap 0 -o runs/readme-dgs-univfd200
run dgs-cost      python benchmarks/dgs_cost.py --batch 8 --steps 3
run dgs3-train    aigi train configs/dgs-cifake.yaml data.limit_per_class=100 train.epochs=3 train.lr=1e-3 output=runs/dgs-cifake-3ep
run dgs3-eval     aigi eval -d runs/dgs-cifake-3ep --data $data/test --limit-per-class 250 --bootstrap 0 -o runs/readme-dgs3
run fd-train      aigi train configs/featdistill-cifake.yaml data.limit_per_class=400
run fd-univfd800  aigi train configs/univfd-cifake.yaml data.limit_per_class=400 output=runs/univfd-cifake-800
run fd-eval       aigi eval -d runs/featdistill-cifake -d runs/featdistill-cifake/experts/full-l2/stage1 -d runs/featdistill-cifake/experts/lora-crd/stage1 -d runs/univfd-cifake-800 --data $data/test --bootstrap 0 -o runs/readme-featdistill
run fd-rob        aigi robustness -d runs/featdistill-cifake -d runs/univfd-cifake-800 --data $data/test --ops jpeg,gaussian_blur,gaussian_noise,social_whatsapp --severities 0.5,1 --limit-per-class 100 -o runs/readme-featdistill-robustness
run fd-cost       python benchmarks/featdistill_cost.py --batch 8 --steps 3
run fd-nodistill  aigi train configs/featdistill-ablations/no-distill.yaml data.limit_per_class=400
run fd-nodistill-eval aigi eval -d runs/featdistill-cifake-full-nodistill --data $data/test --bootstrap 0 -o runs/readme-featdistill-nodistill

# The photo default (docs/data.md, docs/model-card.md): the pool from local clones of its repositories
# (CLONES: a folder of clones or `fetch` mirrors), leave-one-source-out, the shipped photo-b16.
clones=${CLONES:-/work/.mirror}
pool=${POOL:-runs/pool}
run pool-build     aigi datasets build-pool --clones "$clones" --out "$pool" --cifake $data/train
run pool-audit     aigi datasets audit "$pool"
ext=${EXT:-runs/ext}
run ext-build      aigi datasets build-pool --set external --clones "$clones" --out "$ext"
run ext-audit      aigi datasets audit "$pool" --external "$ext"
run loso-vote      aigi loso "$pool" -r configs/photo-b16.yaml -o runs/loso-vote --bootstrap 200
run loso-tables    python scripts/loso_tables.py runs/loso-vote/loso.json --ci photo-b16 --generators photo-b16 --failures photo-b16 --pool "$pool" -n 5
# the model card's columns: the six crop probes (the recipe without its resize expert) and the resize probe per seed
run loso-vote6     aigi loso "$pool" -r configs/photo-b16-fast.yaml -o runs/loso-vote6 --bootstrap 200
run loso-resize    aigi loso "$pool" -r configs/photo/univfd-layers-resize.yaml -o runs/loso-resize --bootstrap 200
for s in 1 2 3 4; do run loso-resize-s$s aigi loso "$pool" -r configs/photo/univfd-layers-resize.yaml -o runs/loso-resize-s$s --bootstrap 0 --no-shortcut train.seed=$s; done
run loso-vote9     python scripts/loso_vote.py runs/loso-vote6/photo-b16-fast runs/loso-resize{,-s1,-s2}/univfd-layers-resize --weights 6 1 1 1
feats=runs/feats
for v in crop resize; do
  run probe-pool-$v python scripts/feature_probe.py extract "$pool" --view $v --copy -o $feats/pool-$v.npz
  run probe-ext-$v  python scripts/feature_probe.py extract "$ext" --view $v -o $feats/ext-$v.npz
done
run probe-views    python scripts/feature_probe.py score "$pool" "$ext" $feats/pool-crop.npz $feats/ext-crop.npz --pair $feats/pool-resize.npz $feats/ext-resize.npz --late
run probe-mean     python scripts/feature_probe.py score "$pool" "$ext" $feats/pool-crop.npz $feats/ext-crop.npz --summary mean
run loso-photo     aigi loso "$pool" -r configs/photo/univfd-layers.yaml -r configs/photo/univfd-layers-middle.yaml -r configs/photo/univfd-layers-thumbs.yaml -r configs/photo/univfd-layers-10ep.yaml -r configs/photo/univfd-embed.yaml -r configs/photo/univfd-layers-all.yaml -r configs/photo/univfd-layers-early.yaml -r configs/photo/univfd-no-copies.yaml -o runs/loso-final --bootstrap 200
run loso-cands     python scripts/loso_tables.py runs/loso-final/loso.json --ci univfd-layers
run loso-methods   aigi loso "$pool" -r configs/photo/univfd-knn.yaml -r configs/photo/ltd.yaml -o runs/loso-methods --bootstrap 200
for s in 1 2 3 4; do run loso-seed$s aigi loso "$pool" -r configs/photo/univfd-layers.yaml -r configs/photo/univfd-layers-thumbs.yaml -o runs/loso-seed$s --bootstrap 0 --no-shortcut train.seed=$s; done
for o in 1 2; do run loso-vote-seeds$o python scripts/loso_vote.py $(for s in $o $((o+1)) $((o+2)); do echo runs/loso-seed$s/univfd-layers runs/loso-seed$s/univfd-layers-thumbs; done); done
# the pool-only votes (the defaults until 2026-11-24; every external-set figure below is theirs)
run photo-train    aigi train configs/photo-b16.yaml data.train="$pool" data.exclude=examples/photos
run photo-fast     aigi train configs/photo-b16-fast.yaml data.train="$pool" data.exclude=examples/photos
for r in univfd-layers univfd-layers-middle univfd-layers-thumbs univfd-layers-all univfd-embed; do run photo-$r aigi train configs/photo/$r.yaml data.train="$pool" data.exclude=examples/photos; done
run photo-ext      aigi eval -d runs/photo-b16 -d runs/photo-univfd-layers -d runs/photo-layers-middle -d runs/photo-thumbs -d runs/photo-layers-all -d runs/photo-embed -d univfd-cifake --data "$ext" --bootstrap 200 -o runs/readme-photo-ext
P=runs/readme-photo-ext/photo-b16/predictions.csv
run photo-ext-six  python scripts/loso_vote.py $P:p_crops-1 $P:p_crops-2 $P:p_crops-3 $P:p_thumbnails-1 $P:p_thumbnails-2 $P:p_thumbnails-3
run photo-ext-rsz  python scripts/loso_vote.py $P:p_resize-1
run ltd-full       aigi train configs/photo/ltd.yaml data.train="$pool" data.exclude=examples/photos output=runs/photo-ltd
run ltd-ext        aigi eval -d runs/photo-ltd --data "$ext" --bootstrap 0 -o runs/readme-ltd-ext
run ltd-vote-ext   python scripts/loso_vote.py $P:p_crops-1 $P:p_crops-2 $P:p_crops-3 $P:p_thumbnails-1 $P:p_thumbnails-2 $P:p_thumbnails-3 runs/readme-ltd-ext/predictions.csv
run points-cifake aigi operating-points univfd-cifake --data $data/val -o runs/univfd-cifake-points
run points-list   aigi operating-points runs/photo-b16
run points-ext     aigi eval -d runs/photo-b16 --data "$ext" --bootstrap 0 -o runs/readme-points-ext
run points-split   python scripts/holdout_reals.py "$ext" --out runs/own --fraction 0.5 --seed 0
run points-own     aigi operating-points runs/photo-b16 --data runs/own/set.csv -o runs/own/detector
run points-own-ext aigi eval -d runs/own/detector --data runs/own/test.csv --bootstrap 0 -o runs/readme-points-own
for v in crop@512; do
  run probe-pool-$v python scripts/feature_probe.py extract "$pool" --view $v --copy -o $feats/pool-$v.npz
  run probe-ext-$v  python scripts/feature_probe.py extract "$ext" --view $v -o $feats/ext-$v.npz
done
run probe-3views   python scripts/feature_probe.py score "$pool" "$ext" $feats/pool-crop.npz $feats/ext-crop.npz --pair $feats/pool-resize.npz $feats/ext-resize.npz --pair $feats/pool-crop@512.npz $feats/ext-crop@512.npz --late
run loso-crop512   aigi loso "$pool" -r configs/photo/univfd-layers-crop512.yaml -o runs/loso-crop512 --bootstrap 0 --no-shortcut
run loso-vote-c512 python scripts/loso_vote.py runs/loso-vote/photo-b16 runs/loso-crop512/univfd-layers-crop512 --weights 9 3
run robust-ext     aigi robustness -d runs/photo-b16 --data "$ext" --ops social_whatsapp,social_twitter,jpeg --severities 0,0.5,1 --limit-per-class 30 -o runs/readme-robust-ext
# the shipped votes: every source (pool + external set) in training, and their LOSO over all of them
all=${ALL:-runs/all}
run all-build      aigi datasets build-pool --set all --clones "$clones" --out "$all" --cifake $data/train
run ship-train     aigi train configs/photo-b16.yaml data.train="$all" data.exclude=examples/photos output=runs/ship-b16
run ship-fast      aigi train configs/photo-b16-fast.yaml data.train="$all" data.exclude=examples/photos output=runs/ship-b16-fast
run loso-all       aigi loso "$all" -r configs/photo-b16.yaml -o runs/loso-all --bootstrap 200
run loso-all-tables python scripts/loso_tables.py runs/loso-all/loso.json --ci photo-b16 --generators photo-b16 --failures photo-b16 --pool "$all" -n 5
run loso-all-fast  python scripts/loso_vote.py $(for k in crops thumbnails; do for s in 1 2 3; do echo runs/loso-all/photo-b16:p_$k-$s; done; done)
run photo-cifake   aigi eval -d runs/ship-b16 -d runs/ship-b16-fast --data $data/test --bootstrap 200 -o runs/readme-photo-cifake
run photo-detect   aigi detect examples/ -d runs/ship-b16
run serve-shot     python scripts/serve_screenshot.py docs/img/serve_page.png
run throughput     python benchmarks/throughput.py --photos "$pool" --n 200 --repeats 3 ${SAHU_PYTHON:+--sahu-python $SAHU_PYTHON}
