#!/usr/bin/env bash
# Installs a shader compiler that knows GL_KHR_cooperative_matrix on a
# Debian 12 machine, without touching the system's packages.
#
#   tools/fetch-glslang.sh [PREFIX]      (default PREFIX: /opt/libattn-glslang)
#
# Debian 12's glslang (11) and spirv-tools (2023.1) predate the
# cooperative-matrix extension; Debian 13's (glslang 15, spirv-tools 2025)
# know it but need glibc >= 2.38. This downloads those .debs and their C/C++
# runtime from the trixie suite with a private apt state, unpacks them under
# PREFIX/root, and writes PREFIX/bin/glslangValidator and PREFIX/bin/spirv-val:
# wrappers that start the tools through trixie's own dynamic loader, so the
# system's libc is never replaced. configure then takes
#   GLSLANG=PREFIX/bin/glslangValidator SPIRV_VAL=PREFIX/bin/spirv-val
# Needs network access to deb.debian.org; prints why and exits 1 without it.
set -euo pipefail
PREFIX=${1:-/opt/libattn-glslang}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
mkdir -p "$state/lists/partial" "$state/debs" "$PREFIX/root" "$PREFIX/bin"
echo "deb $MIRROR trixie main" > "$state/sources.list"
apt_opts=(-q -oAPT::Architecture=amd64 -oAPT::Architectures=amd64
          "-oDir::State::Lists=$state/lists" "-oDir::Etc::SourceList=$state/sources.list"
          -oDir::Etc::SourceParts=/dev/null "-oDir::Cache=$state/cache")
mkdir -p "$state/cache/archives/partial"
if ! apt-get "${apt_opts[@]}" update >/dev/null 2>&1; then
    echo "fetch-glslang.sh: cannot reach $MIRROR (trixie)" >&2
    exit 1
fi
(cd "$state/debs" &&
 apt-get "${apt_opts[@]}" download glslang-tools spirv-tools libc6 libstdc++6 libgcc-s1 >/dev/null 2>&1) || {
    echo "fetch-glslang.sh: downloading the trixie packages failed" >&2
    exit 1
}
for f in "$state"/debs/*.deb; do dpkg -x "$f" "$PREFIX/root"; done
lib=$PREFIX/root/usr/lib/x86_64-linux-gnu
for tool in glslangValidator spirv-val; do
    cat > "$PREFIX/bin/$tool" <<WRAP
#!/bin/sh
exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib" "$PREFIX/root/usr/bin/$tool" "\$@"
WRAP
    chmod +x "$PREFIX/bin/$tool"
done
"$PREFIX/bin/glslangValidator" --version | head -1
