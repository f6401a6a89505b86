#!/usr/bin/env bash
# libattn: the main job. On a fresh Debian 12 machine:
#
#   sudo tools/run-demo.sh
#
# installs the build dependencies (when root), builds the library out of tree
# in build-demo/ (-O2, every kernel set the compiler can build), then runs
#   tools/attn-info   what the library sees: devices, CPU features, kernel set
#   tools/attn-demo   attention on every device and every CPU kernel set the
#                     machine can run: correctness against a double-precision
#                     reference, and throughput
# Arguments after the options are passed to attn-demo.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/run-demo.sh [--no-deps] [--rebuild] [-j N] [-- attn-demo args...]
  --no-deps   do not apt-get install anything
  --rebuild   start from an empty build-demo/ directory
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DO_DEPS=1 REBUILD=0
JOBS=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
    case "$1" in
        --no-deps) DO_DEPS=0 ;;
        --rebuild) REBUILD=1 ;;
        -j) shift; JOBS=$1 ;;
        -j*) JOBS=${1#-j} ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
    shift
done
export DEBIAN_FRONTEND=noninteractive

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if [ "$DO_DEPS" = 1 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        missing=()
        pkgs=(autoconf automake libtool pkg-config make gcc libc6-dev binutils libsleef-dev)
        # GPU backends: headers to build them, the ICD loader, and PoCL /
        # lavapipe so that there is an OpenCL / Vulkan device even without a
        # GPU. The runtimes are dlopen()ed: without them the CPU still works.
        [ -d opencl ] && pkgs+=(opencl-headers ocl-icd-libopencl1 pocl-opencl-icd)
        [ -d vulkan ] && pkgs+=(libvulkan-dev libvulkan1 glslc mesa-vulkan-drivers)
        for p in "${pkgs[@]}"; do
            have_pkg "$p" || missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            echo "=== installing: ${missing[*]}"
            apt-get update -q </dev/null
            apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
        fi
    else
        echo "run-demo.sh: not root (or no apt-get): not installing packages" >&2
    fi
fi

start=$SECONDS
if [ -f "$ROOT/config.status" ]; then
    echo "=== the source tree is configured in place; make distclean so the out-of-tree build works"
    make -C "$ROOT" distclean >/dev/null || rm -f "$ROOT/config.status"
fi
if [ "$REBUILD" = 1 ]; then
    rm -rf build-demo
fi
if [ ! -f configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    echo "=== autoreconf"
    autoreconf -fi
fi
mkdir -p build-demo
cd build-demo
if [ ! -f Makefile ]; then
    echo "=== configure"
    ../configure CFLAGS="${CFLAGS:--O2 -g}"
fi
echo "=== make -j$JOBS"
make -j"$JOBS"
echo "=== built in $((SECONDS - start))s"

echo
echo "=== attn-info"
./tools/attn-info

echo
echo "=== attn-demo $*"
./tools/attn-demo "$@"
