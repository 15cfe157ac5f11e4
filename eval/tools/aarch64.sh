#!/usr/bin/env bash
# make test-aarch64: encode/decode the cross-architecture corpus (eval/tools/cross_arch.py) on x86-64 and
# under user-mode emulation of aarch64 Linux, and require bit-identical results both ways.
# Needs root (apt, mmdebstrap, mount); makes a minimal Debian arm64 root with Debian's own tools from
# this machine's configured package sources, and installs numpy/numba aarch64 wheels from PyPI into it.
set -euo pipefail
ROOT=${1:?usage: eval/tools/aarch64.sh ARM64_ROOT [RESULT_JSON]}
RESULT=${2:-docs/results/aarch64.json}
PY=${PY:-.venv/bin/python}
REPO=$(pwd)
start=$(date +%s)

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mkdir -p "$(dirname "$ROOT")"
    mmdebstrap --arch=arm64 --variant=apt --include=python3,python3-venv,python3-pip,ca-certificates \
        "$codename" "$ROOT"
fi
versions=$($PY -c 'import numpy, numba; print(f"numpy=={numpy.__version__} numba=={numba.__version__}")')
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# the root trusts the CAs this machine trusts (a site may intercept TLS with a CA of its own)
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
if [ "$(cat "$ROOT/opt/venv/.versions" 2>/dev/null)" != "$versions" ]; then
    chroot "$ROOT" /usr/bin/python3 -m venv /opt/venv
    chroot "$ROOT" /opt/venv/bin/pip install -q --only-binary=:all: $versions
    echo "$versions" > "$ROOT/opt/venv/.versions"
fi

work=$(mktemp -d)
mkdir -p "$ROOT/src" "$ROOT/work" "$ROOT/proc"
mount --bind "$REPO" "$ROOT/src"
mount --bind "$work" "$ROOT/work"
mount -t proc proc "$ROOT/proc"  # numba reads /proc/cpuinfo
trap 'umount "$ROOT/src" "$ROOT/work" "$ROOT/proc"; rm -rf "$work"' EXIT
arm() { chroot "$ROOT" /usr/bin/env PYTHONPATH=/src NUMBA_CACHE_DIR=/tmp/numba-cache PYTHONDONTWRITEBYTECODE=1 \
        /bin/sh -c "cd /src && /opt/venv/bin/python -m eval.tools.cross_arch $*"; }

$PY -m eval.tools.cross_arch write "$work/x86"
arm_start=$(date +%s)
arm write /work/arm
arm decode /work/x86 > "$work/arm_decodes_x86.json"
arm_s=$(( $(date +%s) - arm_start ))
$PY -m eval.tools.cross_arch decode "$work/arm" > "$work/x86_decodes_arm.json"
set +e
$PY -m eval.tools.cross_arch compare "$work/x86" "$work/arm" "$work/x86_decodes_arm.json" "$work/arm_decodes_x86.json" \
    > "$work/result.json"
rc=$?
set -e
$PY - "$work/result.json" "$RESULT" "$(( $(date +%s) - start ))" "$arm_s" <<'PYEOF'
import json, sys
res = json.load(open(sys.argv[1]))
res["total_s"], res["emulated_s"] = int(sys.argv[3]), int(sys.argv[4])
json.dump(res, open(sys.argv[2], "w"), indent=1)
print(json.dumps(res, indent=1))
PYEOF
exit $rc
