# Sourced by benchmarks/gpu_check.sh and gpu_recheck.sh: what a bare lent GPU machine needs before s6lab runs.
# The GPU image has torch but neither torchinfo nor captum, and cannot download: they travel as wheels in
# .whl/, and MNIST as gzip files in .mnist/MNIST/raw/ (both ignored by git). Made here with:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl torchinfo captum
#   mkdir -p .mnist/MNIST/raw; for f in ~/.cache/s6lab/MNIST/raw/*; do gzip -c $f > .mnist/MNIST/raw/${f##*/}.gz; done
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg S6LAB_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "could not install the carried wheels in .whl/"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD S6LAB_DATA=/tmp/s6lab-data
mkdir -p "$S6LAB_DATA/MNIST/raw"
for f in .mnist/MNIST/raw/*.gz; do gunzip -c "$f" > "$S6LAB_DATA/MNIST/raw/$(basename "$f" .gz)"; done
step() { echo "== $(date +%T) $*"; }
