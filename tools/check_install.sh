#!/usr/bin/env bash
# Checks that tapegrad links the two ways the README's "Linking" section describes, from outside
# the source tree, by building and running the programs in tests/consumer/:
#
#   1. installed: `meson install` into a temporary prefix, then for each of sum_exp, ops_check,
#      nt_xent_check, gradcheck_user_op and anomaly_log
#      g++ -std=c++20 PROGRAM.cpp $(pkg-config --cflags --libs --static tapegrad)
#      (values and gradients of ops and NT-Xent, typed errors, the gradcheck tool on a user's
#      op with a wrong VJP, and anomaly mode naming log for sum(log(x)) at x = [0, 1])
#   2. subproject: a meson project (tests/consumer/subproject/meson.build) with the repository
#      at subprojects/tapegrad and dependency('tapegrad').
#
# Everything happens in a temporary folder, removed on success and kept for inspection on
# failure. To keep the run short, both builds pass -Dtests=false to tapegrad and compile only the
# library, and the install step installs only what a consumer links (the `devel` install tag:
# library, headers, tapegrad.pc), not the tools.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-check-install.XXXXXX")
cleanup() {
  local status=$?
  if [[ $status -eq 0 ]]; then
    rm -rf "$work"
  else
    echo "check_install.sh: failed with status $status; files kept in $work" >&2
  fi
}
trap cleanup EXIT

echo "== install into a temporary prefix, link with pkg-config --static"
meson setup "$work/build" "$repo" --prefix "$work/prefix" -Dtests=false >"$work/setup.log" ||
  { cat "$work/setup.log" >&2; exit 1; }
meson compile -C "$work/build" tapegrad
meson install -C "$work/build" --no-rebuild --tags devel --quiet

pc_file=$(find "$work/prefix" -name tapegrad.pc -print -quit)
if [[ -z $pc_file ]]; then
  echo "check_install.sh: meson install wrote no tapegrad.pc under $work/prefix" >&2
  exit 1
fi
export PKG_CONFIG_PATH=$(dirname "$pc_file")
static_flags=$(pkg-config --cflags --libs --static tapegrad)
echo "pkg-config --cflags --libs --static tapegrad: $static_flags"
# Debian's openblas.pc lists -lgfortran for static links, but libopenblas-dev does not install
# libgfortran.so: the gfortran package does.
if [[ " $static_flags " == *" -lgfortran "* && ! -e $(g++ -print-file-name=libgfortran.so) ]]; then
  echo "check_install.sh: pkg-config --static asks for -lgfortran, but libgfortran.so is not" \
    "installed; install the Debian package gfortran and run this again" >&2
  exit 1
fi

mkdir "$work/pkg-config"
for program in sum_exp ops_check nt_xent_check gradcheck_user_op anomaly_log; do
  cp "$repo/tests/consumer/$program.cpp" "$work/pkg-config/"
  (
    cd "$work/pkg-config"
    g++ -std=c++20 "$program.cpp" -o "$program" $(pkg-config --cflags --libs --static tapegrad)
    "./$program"
  )
done
unset PKG_CONFIG_PATH

echo "== use the repository as a meson subproject"
consumer=$work/subproject
mkdir -p "$consumer/subprojects"
cp "$repo/tests/consumer/subproject/meson.build" "$repo/tests/consumer/sum_exp.cpp" "$consumer/"
ln -s "$repo" "$consumer/subprojects/tapegrad"
# --force-fallback-for makes dependency('tapegrad') take the subproject even on a machine where
# an installed tapegrad.pc is visible to pkg-config.
meson setup "$consumer/build" "$consumer" --force-fallback-for=tapegrad -Dtapegrad:tests=false \
  >"$work/subproject-setup.log" || { cat "$work/subproject-setup.log" >&2; exit 1; }
if ! grep -q "Executing subproject tapegrad" "$work/subproject-setup.log"; then
  echo "check_install.sh: the consumer project did not configure tapegrad as a subproject" >&2
  cat "$work/subproject-setup.log" >&2
  exit 1
fi
meson compile -C "$consumer/build" sum_exp
"$consumer/build/sum_exp"

echo "check_install.sh: both consumers built and passed"
