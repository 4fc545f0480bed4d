# The whole attack with the stage binaries, at small scale, offline, on the digits problem.
# Run from the repository after `make venv`: bash docs/chain_digits.sh [WORK_DIR]  (about 5 minutes on 2 CPU cores)
set -ex
B=.venv/bin
export TF_CPP_MIN_LOG_LEVEL=3
W=${1:-chain_output}; L=$W/lake; R=$W/runs
$B/copycat-prepare-problem --problem=digits --output=$L/problems/digits
$B/copycat-train --model=vgg16_bn --width=0.25 --input_size=32 --epochs=8 --lr=0.01 --train=$L/problems/digits/odd --val=$L/problems/digits/tdd --output=$R/BL-VGG-ODD-OL
$B/copycat-train --model=vgg16_bn --width=0.25 --input_size=32 --epochs=8 --lr=0.01 --train=$L/problems/digits/pdd --output=$R/BL-VGG-PDD-OL
$B/copycat-build-npdd --source=bundled --bundled_crops=6000 --max_side=64 --output=$L/npdd
$B/copycat-steal-labels --images=$L/npdd --oracle=$R/BL-VGG-ODD-OL/export --batch_size=64 --price_per_1000=1.0 --output=$L/stolen/BL-VGG-ODD-OL/NPDD-SL
$B/copycat-balance --input=$L/stolen/BL-VGG-ODD-OL/NPDD-SL --per_class=400 --allow_missing_classes --output=$L/stolen/BL-VGG-ODD-OL/NPDD-SL-balanced-400
$B/copycat-train --model=vgg16_bn --width=0.25 --input_size=32 --epochs=5 --lr=0.01 --train=$L/stolen/BL-VGG-ODD-OL/NPDD-SL-balanced-400 --output=$R/CC-VGG-NPDD-SL
for run in BL-VGG-ODD-OL BL-VGG-PDD-OL CC-VGG-NPDD-SL; do
  $B/copycat-evaluate --model=$R/$run/export --reference=$R/BL-VGG-ODD-OL/export --test=$L/problems/digits/tdd --output=$R/$run/evaluation.json --bootstrap=200
done
$B/copycat-relevance --target=$R/BL-VGG-ODD-OL --copycat=$R/CC-VGG-NPDD-SL --images=$L/problems/digits/tdd --output=$R/relevance --count=3
$B/copycat-report --runs=$R --output=$R/report --tsne_samples=200
