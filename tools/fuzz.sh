#!/usr/bin/env bash
# Builds tapegrad-fuzz in build-fuzz/ with clang, AddressSanitizer and UndefinedBehaviorSanitizer,
# and runs it for SECONDS from the seed corpus in tools/fuzz-corpus/. Exits 1 on any finding (an
# abort, a sanitizer report, a timeout or running out of memory) and keeps the input that caused
# it in build-fuzz/fuzz-findings/. Installs nothing: it needs clang, libclang-rt-14-dev and
# libomp-dev (LLVM's OpenMP runtime) from Debian.
#
# Usage: tools/fuzz.sh SECONDS
# FUZZ_BUILD_JOBS sets ninja's parallel jobs (ninja's default when unset).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: tools/fuzz.sh SECONDS (a positive whole number of seconds to fuzz)" >&2
  exit 2
fi
seconds=$1

options=(-Dfuzz=enabled -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized)
if [[ -d build-fuzz ]]; then
  meson setup --reconfigure build-fuzz "${options[@]}" >/dev/null
else
  CXX=clang++ meson setup build-fuzz "${options[@]}" >/dev/null
fi
ninja -C build-fuzz ${FUZZ_BUILD_JOBS:+-j "$FUZZ_BUILD_JOBS"} tools/tapegrad-fuzz

# New inputs go to a temporary first corpus folder, so the seed corpus in the repository is
# only read. Findings are kept where the build folder is.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" build-fuzz/fuzz-findings

# UBSan prints a report and continues unless halt_on_error is set. The inputs are tiny (one NT-Xent tile, 5×5
# matrices), so more OpenMP or OpenBLAS threads would only add start-up cost to every run.
status=0
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  build-fuzz/tools/tapegrad-fuzz -max_total_time="$seconds" -timeout=20 -max_len=1024 -print_final_stats=1 \
  -artifact_prefix=build-fuzz/fuzz-findings/ "$work/corpus" tools/fuzz-corpus 2>"$work/log" || status=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
if [[ $status -ne 0 ]]; then
  cat "$work/log" >&2
  finding=$(sed -n 's/.*Test unit written to //p' "$work/log" | tail -n 1)
  echo "fuzz: finding after ${runs:-an unknown number of} runs, input saved as ${finding:-(not saved)}; libFuzzer exit status $status"
  exit 1
fi
tail -n 20 "$work/log" >&2
echo "fuzz: ${runs:-?} runs in $seconds s, no finding"
