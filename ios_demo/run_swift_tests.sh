#!/usr/bin/env bash
# Test the Swift policy package (ios_demo/EdgeVariatorPolicy) on Linux, in a Debian trixie chroot
# with Debian's own Swift 6 (package `swiftlang`), against tests/vectors and a real bundle manifest.
#
#   sudo bash ios_demo/run_swift_tests.sh        # from any directory; needs root (chroot, mount)
#
# The chroot lives at ${EDGE_VARIATOR_TOOLS:-$HOME/.cache/edge-variator/tools}/swift-trixie and is
# made once (debootstrap --variant=minbase, then apt-get install swiftlang); a marker file says it
# is complete, so a half-made one is removed and made again. The repository is bind-mounted
# read-only inside it; the build goes to a scratch folder inside the chroot, so the cached run only
# recompiles what changed. Everything mounted is unmounted on exit, whatever happens.
# The last line is `swift policy tests: N passed, N failed`, N counting the per-vector checks.
#
# Environment: EDGE_VARIATOR_TOOLS (where the chroot lives), EDGE_VARIATOR_DEBIAN_MIRROR
# (default http://deb.debian.org/debian), EDGE_VARIATOR_SWIFT_JOBS (build jobs, default 1: the
# machine is shared), EDGE_VARIATOR_SWIFT_FILTER (passed to `swift test --filter`),
# EDGE_VARIATOR_MANIFEST (a bundle's manifest.json outside the repository to test too; its bundle
# folder is bind-mounted read-only), EDGE_VARIATOR_REQUIRE_MANIFEST=1 (fail, not skip, when the
# repository has no bundle under edge_variator/default/bundles).
set -euo pipefail

started=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tools="${EDGE_VARIATOR_TOOLS:-$HOME/.cache/edge-variator/tools}"
chroot_dir="$tools/swift-trixie"
marker="$chroot_dir/.edge-variator-swift-ready"
mirror="${EDGE_VARIATOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
jobs="${EDGE_VARIATOR_SWIFT_JOBS:-1}"
# swiftlang brings the compiler, SwiftPM, Foundation and XCTest; swift links through clang and
# needs the C library's and libstdc++'s headers and objects, which minbase lacks.
packages=(swiftlang libc6-dev libstdc++-14-dev libgcc-14-dev binutils ca-certificates)
repo_in_chroot=/work/edge-variator
scratch_in_chroot=/var/cache/edge-variator-swift-build

say() { printf '[swift-tests] %s\n' "$*" >&2; }
fail() { say "error: $*"; echo "swift policy tests: 0 passed, 1 failed"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root: making the chroot and mounting into it need it (sudo bash $0)"
[ -f "$repo/ios_demo/EdgeVariatorPolicy/Package.swift" ] || fail "no package at $repo/ios_demo/EdgeVariatorPolicy"

mkdir -p "$tools"
exec 9>"$tools/swift-trixie.lock"
flock -w 3600 9 || fail "another run holds $tools/swift-trixie.lock"

# Mounts below the chroot, deepest first.
mounts_below() {
    local root
    root="$(realpath -m "$1")"
    awk -v root="$root" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/self/mounts \
        | awk '{ print length($0), $0 }' | sort -rn | cut -d' ' -f2-
}

unmount_all() {
    local target
    [ -d "$chroot_dir" ] || return 0
    while read -r target; do
        [ -n "$target" ] || continue
        umount "$target" 2>/dev/null || umount -l "$target" || say "could not unmount $target"
    done < <(mounts_below "$chroot_dir")
}

cleanup() {
    local status=$?
    unmount_all
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_chroot() {
    chroot "$chroot_dir" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        "$@"
}

mount_system() {
    mountpoint -q "$chroot_dir/proc" || mount -t proc proc "$chroot_dir/proc"
    mountpoint -q "$chroot_dir/dev" || mount --bind /dev "$chroot_dir/dev"  # /dev/null, /dev/urandom
}

setup_chroot() {
    unmount_all  # what a killed run may have left
    if [ -n "$(mounts_below "$chroot_dir")" ]; then
        fail "something is still mounted under $chroot_dir; unmount it before it is made again"
    fi
    if [ -e "$chroot_dir" ]; then
        say "removing the half-made chroot $chroot_dir (no marker)"
        rm -rf --one-file-system "$chroot_dir"
    fi
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    say "debootstrap --variant=minbase trixie $chroot_dir $mirror (a few minutes)"
    debootstrap --variant=minbase trixie "$chroot_dir" "$mirror" >"$tools/debootstrap.log" 2>&1 \
        || { tail -20 "$tools/debootstrap.log" >&2; fail "debootstrap failed; see $tools/debootstrap.log"; }
    cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf" 2>/dev/null || true
    mount_system
    say "apt-get install ${packages[*]} (in the chroot)"
    in_chroot apt-get update -qq
    in_chroot apt-get install -y -qq --no-install-recommends "${packages[@]}" >"$tools/apt.log" 2>&1 \
        || { tail -20 "$tools/apt.log" >&2; fail "apt-get install in the chroot failed; see $tools/apt.log"; }
    in_chroot apt-get clean
    in_chroot swift --version >&2 || fail "swift does not run in the chroot"
    in_chroot dpkg-query -W "${packages[@]}" >"$marker"
}

if [ -f "$marker" ]; then
    say "reusing $chroot_dir ($(head -1 "$marker" | tr '\t' ' '))"
else
    setup_chroot
fi
mount_system
mkdir -p "$chroot_dir$repo_in_chroot" "$chroot_dir$scratch_in_chroot"
mount --bind "$repo" "$chroot_dir$repo_in_chroot"
mount -o remount,bind,ro "$chroot_dir$repo_in_chroot"  # the tests only read the repository
# The tests' and SwiftPM's temporary files, kept until the next run (the profile the tests write
# for the real manifest is there, for `edge-variator profile BUNDLE --import` by hand).
run_tmp=/tmp/edge-variator-swift-tests
rm -rf "${chroot_dir:?}$run_tmp"
mkdir -p "$chroot_dir$run_tmp"
extra_env=("TMPDIR=$run_tmp")
if [ -n "${EDGE_VARIATOR_MANIFEST:-}" ]; then
    manifest="$(realpath "$EDGE_VARIATOR_MANIFEST")"
    [ -f "$manifest" ] || fail "EDGE_VARIATOR_MANIFEST=$EDGE_VARIATOR_MANIFEST is not a file"
    mkdir -p "$chroot_dir/work/extra-bundle"
    mount --bind "$(dirname "$manifest")" "$chroot_dir/work/extra-bundle"
    mount -o remount,bind,ro "$chroot_dir/work/extra-bundle"
    extra_env+=("EDGE_VARIATOR_MANIFEST=/work/extra-bundle/$(basename "$manifest")")
fi
[ -z "${EDGE_VARIATOR_REQUIRE_MANIFEST:-}" ] || extra_env+=("EDGE_VARIATOR_REQUIRE_MANIFEST=$EDGE_VARIATOR_REQUIRE_MANIFEST")
set_up=$(date +%s)
say "setup: $((set_up - started)) s"

log="$(mktemp)"
filter=()
[ -z "${EDGE_VARIATOR_SWIFT_FILTER:-}" ] || filter=(--filter "$EDGE_VARIATOR_SWIFT_FILTER")
set +e
in_chroot EDGE_VARIATOR_REPO="$repo_in_chroot" "${extra_env[@]}" nice -n 10 \
    swift test --package-path "$repo_in_chroot/ios_demo/EdgeVariatorPolicy" \
    --scratch-path "$scratch_in_chroot" --jobs "$jobs" "${filter[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# The app's sources that do not import SwiftUI (backends, model, device monitor) type-check
# against the package as built and against stand-ins of ExecuTorch, Core ML, UIKit and Combine
# (EdgeVariatorDemo/LinuxStandIns): a change of the package's API that breaks the app shows here.
app="$repo_in_chroot/ios_demo/EdgeVariatorDemo"
typecheck="set -e; rm -rf $scratch_in_chroot/standins; mkdir -p $scratch_in_chroot/standins
cd $scratch_in_chroot/standins
awk '/^#if canImport\\(Darwin\\)/{f=1;next} /^#endif/{f=0} f' \
    $repo_in_chroot/ios_demo/EdgeVariatorPolicy/Sources/EdgeVariatorPolicy/Policy.swift > darwin_only.swift
sed -i '1i import EdgeVariatorPolicy\\nimport Foundation\\nimport UIKit' darwin_only.swift
for module in ExecuTorch CoreML UIKit Combine; do
    swiftc -emit-module -parse-as-library -module-name \$module -emit-module-path \$module.swiftmodule \
        $app/LinuxStandIns/\$module.swift
done
swiftc -typecheck -I . -I $scratch_in_chroot/debug/Modules darwin_only.swift \$(grep -L '^import SwiftUI' $app/Sources/*.swift)"
if [ "$status" -eq 0 ]; then
    if in_chroot nice -n 10 sh -c "$typecheck" >>"$log" 2>&1; then
        echo "check PASS app: non-UI sources type-check against the package and the stand-ins" | tee -a "$log"
    else
        tail -30 "$log" >&2
        echo "check FAIL app: non-UI sources do not type-check (see above)" | tee -a "$log"
    fi
fi
tested=$(date +%s)

# Every vector or check the tests make prints `check PASS ...` or `check FAIL ...`; a test method
# that failed outside those lines (a crash, a missing file) still counts as a failure.
passed=$(grep -c '^check PASS ' "$log" || true)
failed=$(grep -c '^check FAIL ' "$log" || true)
skipped=$(grep '^check SKIP ' "$log" || true)
methods_failed=$(grep -cE "^Test Case '.*' failed" "$log" || true)
executed=$(grep -E 'Executed [0-9]+ tests?, with [0-9]+ failures?' "$log" | tail -1 || true)
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=$((methods_failed > 0 ? methods_failed : 1))
fi
[ -z "$skipped" ] || say "skipped: ${skipped#check SKIP }"
say "XCTest: ${executed:-no summary (the build or the run failed)}"
say "setup: $((set_up - started)) s, test: $((tested - set_up)) s"
echo "swift policy tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
