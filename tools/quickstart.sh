#!/usr/bin/env bash
# Sets up, builds and runs tapegrad on a Debian 12 machine.
#
#   tools/quickstart.sh demo   install missing packages, build, check every op, run the demo
#   tools/quickstart.sh test   install missing packages, build, run every test
#
# The build folder is build/ at the repository root. It is reconfigured when it exists.
set -euo pipefail

# gfortran supplies libgfortran.so, which `pkg-config --libs --static tapegrad` requests through
# Debian's openblas.pc (-lgfortran in its Libs.private) and libopenblas-dev does not install.
packages=(meson ninja-build pkg-config g++ python3 libopenblas-dev libfmt-dev doctest-dev libcli11-dev
  nlohmann-json3-dev gfortran)

usage() {
  echo "usage: tools/quickstart.sh demo|test" >&2
  echo "  demo  build, then run tapegrad-gradcheck and the SimCLR digits demo" >&2
  echo "  test  build, then run meson test -C build --print-errorlogs" >&2
}

install_missing_packages() {
  local missing=()
  local package
  for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return
  fi
  local command="apt-get update && apt-get install -y ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "quickstart.sh: missing Debian packages: ${missing[*]}" >&2
    echo "Installing them needs root. Run this, then run quickstart.sh again:" >&2
    echo "  sudo sh -c '$command'" >&2
    exit 1
  fi
  echo "quickstart.sh: installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

configure_and_build() {
  if [[ -d build ]]; then
    meson setup --reconfigure build
  else
    meson setup build
  fi
  meson compile -C build
}

main() {
  if [[ $# -ne 1 || ( $1 != demo && $1 != test ) ]]; then
    usage
    exit 2
  fi
  cd "$(dirname "$0")/.."
  install_missing_packages
  configure_and_build
  case $1 in
    demo)
      build/tools/tapegrad-gradcheck
      build/tools/tapegrad-simclr-digits --out build/simclr-digits
      ;;
    test) meson test -C build --print-errorlogs ;;
  esac
}

main "$@"
