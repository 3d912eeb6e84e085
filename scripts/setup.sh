#!/usr/bin/env bash
# scripts/setup.sh — install the system packages clozeloop needs, and only
# those missing (apt, --no-install-recommends; sudo when not root). It holds
# the one list of packages: "make setup" runs it, and so do the Docker images'
# build and runtime stages (deploy/docker/), so a machine set up by hand and an
# image cannot drift apart (deploy/deploy_test.go checks the Dockerfiles).
#
#	scripts/setup.sh [all|build|runtime]
#
#   all      (default, "make setup") build + test packages, and Node.js/npm
#            when no npm is installed
#   build    what "make build" needs: the cgo toolchain, libtorch, OpenBLAS
#   runtime  what bin/clozeloop needs to run (built against Debian's libtorch)
#
# With LIBTORCH set (an official libtorch, e.g. the CUDA build) Debian's
# libtorch-dev is not installed. On systems other than Debian/Ubuntu it only
# says what to install.
set -euo pipefail

# Build: cgo toolchain, Debian's libtorch, OpenBLAS (Debian's libtorch is
# ~100x slower on the reference BLAS).
BUILD_PACKAGES="ca-certificates git make g++ libtorch-dev libopenblas0-pthread"
# Tests and the dev demo: PyTorch on the same libtorch (reference figures),
# WordNet and the King James Bible (cloze data sets), Chromium (the
# annotation page's headless browser test, hook/browser_test.go), PostgreSQL
# (Temporal's SQL store for "clozeloop server --postgres" and its tests).
TEST_PACKAGES="python3-torch wordnet-base bible-kjv chromium postgresql"
# Node.js runs the real Hugging Face tokenizers for the tokenizer parity
# tests (tools/hfparity); Debian's nodejs/npm are used only when no npm is
# installed already.
NODE_PACKAGES="nodejs npm"
# Run time of a binary built against Debian 12's libtorch: its shared
# objects (libtorch1.13) and OpenBLAS behind libblas.so.3.
RUNTIME_PACKAGES="ca-certificates libtorch1.13 libopenblas0-pthread"

mode=${1:-all}
case $mode in
all)
	pkgs="$BUILD_PACKAGES $TEST_PACKAGES"
	command -v npm >/dev/null || pkgs="$pkgs $NODE_PACKAGES"
	;;
build) pkgs=$BUILD_PACKAGES ;;
runtime) pkgs=$RUNTIME_PACKAGES ;;
*)
	echo "usage: scripts/setup.sh [all|build|runtime]" >&2
	exit 2
	;;
esac
if [[ -n ${LIBTORCH:-} ]]; then
	pkgs=$(printf '%s\n' $pkgs | grep -vx 'libtorch-dev' | tr '\n' ' ')
fi

if ! [[ -f /etc/debian_version ]] || ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
	echo "setup: not a Debian/Ubuntu system; install libtorch 2.1 yourself and set LIBTORCH=/path (see README)"
	exit 0
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [[ -z $missing ]]; then
	echo "setup: apt packages present ($pkgs)"
	exit 0
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "setup: installing$missing"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
