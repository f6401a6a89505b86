#!/usr/bin/env bash
# libattn: the whole test suite, from a fresh Debian 12 machine.
#
#   sudo tools/run-tests.sh            everything (about 15-25 minutes on 2 cores)
#   tools/run-tests.sh --quick         small sizes, 10 s of fuzzing, no distcheck
#
# Stages (each in its own out-of-tree build directory under the source tree):
#   deps       apt-get install what is missing (only when run as root)
#   x86        build-x86:     -O2 -g, make check
#   asan       build-asan:    ASan + UBSan, make check (ATTN_TEST_QUICK=1)
#   aarch64    build-aarch64: cross build with NEON, make check under qemu-aarch64
#   fuzz       build-fuzz:    clang libFuzzer target tests/fuzz_api, run for 60 s
#   distcheck  make distcheck in build-x86
# The last line printed is "N passed, N failed": the PASS / FAIL (+ERROR,
# XPASS) counts of every test-suite.log, plus one failure for each stage
# that failed outside `make check` (configure, build, fuzz, distcheck).
# The exit status is non-zero if anything failed.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/run-tests.sh [options]
  --quick          ATTN_TEST_QUICK=1 for every stage, 10 s of fuzzing, no distcheck
  --no-deps        do not apt-get install anything
  --no-x86         skip the native -O2 build and its tests
  --no-asan        skip the ASan/UBSan build
  --no-cross       skip the aarch64 (NEON, qemu) cross build
  --no-fuzz        skip the libFuzzer build and run
  --no-distcheck   skip make distcheck
  --fuzz-time=S    seconds of fuzzing (default 60)
  -j N             parallel make jobs (default: nproc)
Environment: TEST_TIMEOUT (default 900) and QEMU_TEST_TIMEOUT (default 240)
  cap each test's seconds natively and under qemu-aarch64.
  -h, --help       this text
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=0
DO_DEPS=1 DO_X86=1 DO_ASAN=1 DO_CROSS=1 DO_FUZZ=1 DO_DISTCHECK=1
FUZZ_TIME=60
JOBS=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; FUZZ_TIME=10; DO_DISTCHECK=0 ;;
        --no-deps) DO_DEPS=0 ;;
        --no-x86) DO_X86=0 ;;
        --no-asan) DO_ASAN=0 ;;
        --no-cross) DO_CROSS=0 ;;
        --no-fuzz) DO_FUZZ=0 ;;
        --no-distcheck) DO_DISTCHECK=0 ;;
        --fuzz-time=*) FUZZ_TIME=${1#--fuzz-time=} ;;
        -j) shift; JOBS=$1 ;;
        -j*) JOBS=${1#-j} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-tests.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    export ATTN_TEST_QUICK=1
fi
export DEBIAN_FRONTEND=noninteractive
# Per-test time limits (seconds), so that a hung test fails instead of
# stalling the suite: native/ASan tests, and tests under qemu-aarch64.
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
# Where tools/fetch-glslang.sh puts a cooperative-matrix-capable glslang.
GLSLANG_PREFIX=${GLSLANG_PREFIX:-/opt/libattn-glslang}
QEMU_TEST_TIMEOUT=${QEMU_TEST_TIMEOUT:-240}

log() { printf '\n=== %s\n' "$*"; }
warn() { printf 'run-tests.sh: warning: %s\n' "$*" >&2; }

# --------------------------------------------------------------------------
# Dependencies
# --------------------------------------------------------------------------
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_updated=0
apt_install() {
    # apt_install PKG...: installs the ones that are missing; returns apt's status.
    local missing=() p
    for p in "$@"; do have_pkg "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$apt_updated" = 0 ]; then
        apt-get update -q </dev/null || return 1
        apt_updated=1
    fi
    echo "installing: ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

CROSS_SLEEF=yes
install_deps() {
    if [ "$DO_DEPS" = 0 ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        warn "not root (or no apt-get): not installing packages; stages whose tools are missing are skipped"
        return 0
    fi
    log "deps: installing missing packages"
    apt_install autoconf automake libtool pkg-config make gcc libc6-dev binutils libsleef-dev
    # GPU backends: headers to build them; PoCL (OpenCL on the CPU) and Mesa's
    # lavapipe (Vulkan on the CPU) so that their tests run without a GPU.
    if [ -d "$ROOT/opencl" ]; then
        apt_install opencl-headers ocl-icd-libopencl1 pocl-opencl-icd ||
            warn "OpenCL headers / PoCL not installable: OpenCL tests will skip"
    fi
    if [ -d "$ROOT/vulkan" ]; then
        apt_install libvulkan-dev libvulkan1 glslc mesa-vulkan-drivers ||
            warn "Vulkan headers / glslc / lavapipe not installable: Vulkan tests will skip"
        # test_vulkan runs under the Khronos validation layer where it exists.
        apt_install vulkan-validationlayers ||
            warn "vulkan-validationlayers not installable: Vulkan tests run without validation"
        # Debian 12's glslc cannot build the cooperative-matrix shader; the x86
        # stage builds it with trixie's glslang and validates it with spirv-val.
        if [ ! -x "$GLSLANG_PREFIX/bin/glslangValidator" ]; then
            bash "$ROOT/tools/fetch-glslang.sh" "$GLSLANG_PREFIX" ||
                warn "trixie glslang not installable: the cooperative-matrix shader is not built"
        fi
    fi
    if [ "$DO_FUZZ" = 1 ]; then
        # libFuzzer for clang 14 lives in libclang-rt-14-dev.
        apt_install clang libclang-rt-14-dev || warn "clang / libFuzzer not installable: fuzz stage will be skipped"
    fi
    if [ "$DO_CROSS" = 1 ]; then
        apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user ||
            warn "aarch64 cross toolchain / qemu not installable: cross stage will be skipped"
        # SLEEF for the cross build comes from the arm64 architecture.
        if ! have_pkg libsleef-dev:arm64; then
            if ! dpkg --print-foreign-architectures | grep -qx arm64; then
                dpkg --add-architecture arm64
                apt_updated=0
            fi
            if ! apt_install libsleef-dev:arm64; then
                warn "libsleef-dev:arm64 not installable: the NEON cross build goes without SLEEF"
                CROSS_SLEEF=no
            fi
        fi
    fi
}

# --------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------
declare -a STAGE_NAMES=() STAGE_RESULTS=() STAGE_TIMES=()
declare -a RAN_DIRS=()   # build directories whose make check ran in this run
EXTRA_FAILED=0
ANY_FAILED=0

# run_stage NAME FUNCTION: runs FUNCTION in a subshell with `set -e` in force,
# records its duration and result, and carries on with the next stage.
run_stage() {
    local name=$1 fn=$2 start rc
    log "$name"
    start=$SECONDS
    set +e
    ( set -euo pipefail; "$fn" )
    rc=$?
    set -e
    local t=$((SECONDS - start))
    STAGE_NAMES+=("$name")
    STAGE_TIMES+=("$t")
    case $rc in
        0) STAGE_RESULTS+=("ok") ;;
        77) STAGE_RESULTS+=("skipped") ;;
        *) STAGE_RESULTS+=("FAILED (rc=$rc)"); ANY_FAILED=1 ;;
    esac
    echo "--- $name: ${STAGE_RESULTS[-1]} in ${t}s"
}

# A stage whose `make check` ran leaves a test-suite.log; a stage that
# fails without one (configure or build error) counts as one failure.
count_stage_failure() {
    local dir=$1
    if [ ! -f "$dir/test-suite.log" ]; then
        EXTRA_FAILED=$((EXTRA_FAILED + 1))
    fi
}

fresh_dir() { rm -rf "$1"; mkdir -p "$1"; }

show_failures() {
    # show_failures DIR: print the test-suite.log (it holds the failing tests' logs)
    if [ -f "$1/test-suite.log" ]; then
        echo "----- $1/test-suite.log -----"
        cat "$1/test-suite.log"
        echo "----- end of $1/test-suite.log -----"
    fi
}

make_check() {
    # make_check DIR [make args...]
    local dir=$1; shift
    if ! make -C "$dir" -j"$JOBS" check "$@"; then
        show_failures "$dir"
        return 1
    fi
}

stage_autoreconf() {
    if [ -f "$ROOT/config.status" ]; then
        echo "the source tree is configured in place; running make distclean so out-of-tree builds work"
        make -C "$ROOT" distclean >/dev/null || rm -f "$ROOT/config.status"
    fi
    autoreconf -fi
}

stage_x86() {
    fresh_dir build-x86
    cd build-x86
    # With tools/fetch-glslang.sh's compiler every shader, the
    # cooperative-matrix one included, is built and run through spirv-val.
    local glsl=()
    if [ -x "$GLSLANG_PREFIX/bin/glslangValidator" ] &&
       "$GLSLANG_PREFIX/bin/glslangValidator" --version >/dev/null 2>&1; then
        glsl=(GLSLC="$GLSLANG_PREFIX/bin/glslangValidator" SPIRV_VAL="$GLSLANG_PREFIX/bin/spirv-val")
    fi
    ../configure CFLAGS="-O2 -g" "${glsl[@]}"
    make -j"$JOBS"
    cd ..
    make_check build-x86 "LOG_COMPILER=timeout $TEST_TIMEOUT"
    echo "--- attn-info:"
    ./build-x86/tools/attn-info
}

stage_asan() {
    fresh_dir build-asan
    cd build-asan
    # libgomp is not instrumented; OpenMP stays on (thread-pool leaks are
    # suppressed below) so the threaded paths are checked too.
    ../configure CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    make -j"$JOBS"
    cd ..
    # intercept_tls_get_addr=0 works around a bug in the sanitizer runtime of
    # GCC <= 13 and LLVM <= 16: its __tls_get_addr hook takes a dynamic TLS
    # block that malloc happened to place 16 bytes into a page for one with a
    # glibc 2.19-2.24 header, and records a range read from the two words
    # before it. LSan's tracer then dies scanning that range at exit
    # ("Tracer caught signal 11", "LeakSanitizer has encountered a fatal
    # error"), after all of the test's checks have passed. Where the block
    # lands depends on the allocations before it, so this strikes rarely
    # (once in our CI so far, in test_sdpa). Without the hook LSan does not
    # scan dynamic TLS, that of modules loaded by dlopen() (the GPU drivers);
    # libattn's own TLS, in a library loaded at start-up, is static TLS and
    # is still scanned.
    ATTN_TEST_QUICK=1 \
    ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:intercept_tls_get_addr=0" \
    LSAN_OPTIONS="suppressions=$PWD/tools/lsan-drivers.supp" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        make_check build-asan "LOG_COMPILER=timeout $TEST_TIMEOUT"
}

stage_aarch64() {
    if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
        echo "aarch64-linux-gnu-gcc or qemu-aarch64 missing: skipping"
        return 77
    fi
    fresh_dir build-aarch64
    cd build-aarch64
    local sleef=check
    [ "$CROSS_SLEEF" = no ] && sleef=no
    # Static-only: the test programs are then plain aarch64 executables (no
    # libtool wrapper scripts) that qemu-aarch64 runs directly.
    # --disable-openmp: under qemu-aarch64 7.2 libgomp hangs (in its first
    # parallel region with more than one thread, and in programs that start
    # their own pthreads even with one); a 5-line OpenMP program does it too.
    # This stage checks the NEON kernels; threading is tested natively.
    ../configure --host=aarch64-linux-gnu --disable-shared --enable-neon --disable-openmp \
        --with-sleef=$sleef CFLAGS="-O2 -g"
    grep -q '^#define HAVE_NEON_KERNELS 1' config.h
    make -j"$JOBS"
    cd ..
    # -fno-tree-loop-vectorize on the test programs only: aarch64-linux-gnu-gcc
    # 12.2 dies with an internal compiler error (vect_transform_reduction) on
    # a reduction loop in tests/test_linear.c at -O2.
    # ATTN_TEST_NO_THREADS=1: with or without OpenMP, any program here that
    # starts a second thread hangs under qemu-aarch64 7.2 (test_api's and
    # test_threads' pthreads timed out); those checks run natively and under ASan.
    ATTN_TEST_QUICK=1 ATTN_TEST_NO_THREADS=1 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu \
        make_check build-aarch64 "LOG_COMPILER=timeout $QEMU_TEST_TIMEOUT qemu-aarch64" \
        TESTS_EXTRA_CFLAGS=-fno-tree-loop-vectorize
    echo "--- attn-info (qemu-aarch64):"
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 ./build-aarch64/tools/attn-info
}

stage_fuzz() {
    if [ ! -f tests/fuzz_api.c ]; then
        echo "tests/fuzz_api.c does not exist: skipping"
        return 77
    fi
    if ! command -v clang >/dev/null; then
        echo "clang missing: skipping"
        return 77
    fi
    fresh_dir build-fuzz
    cd build-fuzz
    ../configure CC=clang --enable-fuzz --disable-shared --disable-openmp \
        CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    make -j"$JOBS" tests/fuzz_api
    mkdir -p corpus
    # A fixed seed keeps a CI run reproducible; FUZZ_SEED=0 lets libFuzzer
    # pick one (explore further by hand with a longer --fuzz-time).
    local seed=${FUZZ_SEED:-1}
    echo "fuzzing tests/fuzz_api for ${FUZZ_TIME}s (seed $seed)"
    # intercept_tls_get_addr=0: clang 14's runtime has the __tls_get_addr
    # bug described in stage_asan.
    if ! ASAN_OPTIONS="intercept_tls_get_addr=0" ./tests/fuzz_api -max_total_time="$FUZZ_TIME" -seed="$seed" -timeout=20 -rss_limit_mb=2048 \
            -print_final_stats=1 corpus >fuzz.log 2>&1; then
        tail -n 80 fuzz.log
        echo "fuzzer found a problem (crash input in build-fuzz/, log build-fuzz/fuzz.log)"
        return 1
    fi
    tail -n 15 fuzz.log
}

stage_distcheck() {
    if [ ! -f build-x86/Makefile ]; then
        echo "build-x86 is not configured: skipping"
        return 77
    fi
    # Builds and tests the tarball in a read-only source tree, installs,
    # uninstalls; the (long) output goes to build-x86/distcheck.log.
    if ! ATTN_TEST_QUICK=1 make -C build-x86 -j"$JOBS" distcheck >build-x86/distcheck.log 2>&1; then
        tail -n 150 build-x86/distcheck.log
        echo "make distcheck failed: see build-x86/distcheck.log"
        return 1
    fi
    grep -A2 'archives ready for distribution' build-x86/distcheck.log || true
}

# --------------------------------------------------------------------------
TOTAL_START=$SECONDS
dep_start=$SECONDS
install_deps
echo "--- deps: $((SECONDS - dep_start))s"
STAGE_NAMES+=("deps"); STAGE_RESULTS+=("ok"); STAGE_TIMES+=("$((SECONDS - dep_start))")

run_stage autoreconf stage_autoreconf
if [ "${STAGE_RESULTS[-1]}" != ok ]; then
    EXTRA_FAILED=$((EXTRA_FAILED + 1))
    DO_X86=0 DO_ASAN=0 DO_CROSS=0 DO_FUZZ=0 DO_DISTCHECK=0
fi
if [ "$DO_X86" = 1 ]; then
    run_stage "x86 (-O2 -g)" stage_x86
    RAN_DIRS+=(build-x86)
    [ "${STAGE_RESULTS[-1]}" = ok ] || count_stage_failure build-x86
fi
if [ "$DO_ASAN" = 1 ]; then
    run_stage "asan+ubsan" stage_asan
    RAN_DIRS+=(build-asan)
    [ "${STAGE_RESULTS[-1]}" = ok ] || count_stage_failure build-asan
fi
if [ "$DO_CROSS" = 1 ]; then
    run_stage "aarch64 (qemu)" stage_aarch64
    case "${STAGE_RESULTS[-1]}" in
        ok) RAN_DIRS+=(build-aarch64) ;;
        skipped) ;;
        *) RAN_DIRS+=(build-aarch64); count_stage_failure build-aarch64 ;;
    esac
fi
if [ "$DO_FUZZ" = 1 ]; then
    run_stage "fuzz (${FUZZ_TIME}s)" stage_fuzz
    case "${STAGE_RESULTS[-1]}" in ok|skipped) ;; *) EXTRA_FAILED=$((EXTRA_FAILED + 1)) ;; esac
fi
if [ "$DO_DISTCHECK" = 1 ]; then
    run_stage distcheck stage_distcheck
    case "${STAGE_RESULTS[-1]}" in ok|skipped) ;; *) EXTRA_FAILED=$((EXTRA_FAILED + 1)) ;; esac
fi

# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------
passed=0 failed=0
for dir in ${RAN_DIRS[@]+"${RAN_DIRS[@]}"}; do
    f="$dir/test-suite.log"
    [ -f "$f" ] || continue
    p=$(sed -n 's/^# PASS: *\([0-9][0-9]*\).*/\1/p' "$f" | head -n1)
    fl=$(sed -n 's/^# FAIL: *\([0-9][0-9]*\).*/\1/p' "$f" | head -n1)
    er=$(sed -n 's/^# ERROR: *\([0-9][0-9]*\).*/\1/p' "$f" | head -n1)
    xp=$(sed -n 's/^# XPASS: *\([0-9][0-9]*\).*/\1/p' "$f" | head -n1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${fl:-0} + ${er:-0} + ${xp:-0}))
    echo "$dir: PASS ${p:-0}, FAIL ${fl:-0}, ERROR ${er:-0}"
done
failed=$((failed + EXTRA_FAILED))

echo
echo "stage                 result              seconds"
for i in "${!STAGE_NAMES[@]}"; do
    printf '%-21s %-19s %7s\n' "${STAGE_NAMES[$i]}" "${STAGE_RESULTS[$i]}" "${STAGE_TIMES[$i]}"
done
printf '%-21s %-19s %7s\n' "total" "" "$((SECONDS - TOTAL_START))"
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$ANY_FAILED" -ne 0 ]; then
    exit 1
fi
exit 0
