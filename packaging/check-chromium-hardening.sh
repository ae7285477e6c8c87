#!/bin/bash
# Runs headless Chromium, with the flags the WhatsApp sessions use, under an emulation
# of avio.service's sandbox, and says whether it still runs JavaScript (JIT) and
# WebAssembly. Re-run it after a Chromium or unit change; the unit's comment records
# the results. A development tool, not part of the package.
#
#   sudo packaging/check-chromium-hardening.sh [unit|mdwe]
#
# unit: the unit's options. mdwe: the unit plus MemoryDenyWriteExecute=yes (breaks V8).
# Emulated: ProtectSystem=strict (read-only mounts), ReadWritePaths (the data dir),
# PrivateTmp, ProtectHome, PrivateDevices (minimal /dev), ProtectKernelTunables and
# ProtectControlGroups (read-only /sys, /proc/sys), NoNewPrivileges and an empty
# CapabilityBoundingSet (setpriv), and the seccomp filters of RestrictRealtime,
# RestrictSUIDSGID, ProtectClock, ProtectKernelModules, ProtectKernelLogs,
# ProtectHostname, RestrictNamespaces and RestrictAddressFamilies.
# Needs root, unshare and setpriv (util-linux), chromium, python3-seccomp.
set -euo pipefail
MODE=${1:-unit}
CHROMIUM=${CHROMIUM_PATH:-$(command -v chromium || command -v chromium-browser || command -v google-chrome)}
# Not under /tmp: the emulated unit mounts a private /tmp over it.
WORK=$(mktemp -d -p "${AVIO_HARDENING_TMP:-/var/tmp}" avio-hardening.XXXXXX)
# The unprivileged browser user must reach the data directory inside.
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
DATA=$WORK/data
ROOT_HOME=$(getent passwd 0 | cut -d: -f6)
mkdir -p "$DATA/wa_state/1" "$WORK/dev"
chown -R 65534:65534 "$DATA"
chmod 0700 "$DATA"

cat > "$WORK/avio_filter.py" <<'PY'
import errno, os, sys, seccomp
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
EPERM = seccomp.ERRNO(errno.EPERM)
for policy in (1, 2, 6):  # RestrictRealtime: SCHED_FIFO, SCHED_RR, SCHED_DEADLINE
    f.add_rule(EPERM, "sched_setscheduler", seccomp.Arg(1, seccomp.EQ, policy))
SUID = 0o6000  # RestrictSUIDSGID
f.add_rule(EPERM, "chmod", seccomp.Arg(1, seccomp.MASKED_EQ, SUID, SUID))
f.add_rule(EPERM, "fchmod", seccomp.Arg(1, seccomp.MASKED_EQ, SUID, SUID))
f.add_rule(EPERM, "fchmodat", seccomp.Arg(2, seccomp.MASKED_EQ, SUID, SUID))
for call in ("clock_settime", "settimeofday", "adjtimex", "clock_adjtime",  # ProtectClock
             "init_module", "finit_module", "delete_module",  # ProtectKernelModules
             "syslog", "sethostname", "setdomainname", "setns"):  # Logs, Hostname, Namespaces
    f.add_rule(EPERM, call)
for flag in (0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000):
    f.add_rule(EPERM, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))  # RestrictNamespaces
    f.add_rule(EPERM, "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
for family in range(46):  # RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
    if family not in (1, 2, 10, 16):
        f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family))
if sys.argv[1] == "mdwe":  # MemoryDenyWriteExecute
    f.add_rule(EPERM, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, 0x6, 0x6))
    f.add_rule(EPERM, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, 0x4, 0x4))
    f.add_rule(EPERM, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, 0x4, 0x4))
f.load()
os.execv(sys.argv[2], sys.argv[2:])
PY

# The flags of src/channels/whatsapp/browser.rs (FLAGS).
FLAGS="--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking
 --disable-component-update --disable-sync --disable-default-apps --disable-extensions
 --disable-component-extensions-with-background-pages --no-first-run --no-default-browser-check
 --disable-quic --disable-breakpad --metrics-recording-only --password-store=basic --use-mock-keychain
 --mute-audio --single-process --no-zygote --in-process-gpu --disable-site-isolation-trials
 --disable-blink-features=AutomationControlled --js-flags=--max-old-space-size=512
 --disk-cache-size=33554432 --window-size=1280,800 --lang=ru-RU"
PAGE='data:text/html,<script>let s=0;for(let i=0;i<3e7;i++){s+=i%7};new WebAssembly.Module(new Uint8Array([0,97,115,109,1,0,0,0]));document.title="RUNS-JS-AND-WASM"</script>'

export WORK DATA ROOT_HOME MODE CHROMIUM FLAGS PAGE
OUT=$(unshare -m --propagation private bash -c '
    set -e
    mount -n --bind "$DATA" "$DATA"
    for m in $(awk "{print \$2}" /proc/mounts | sort -u); do
        case "$m" in /proc*|/dev*|/sys*|"$DATA") ;; *) mount -o remount,bind,ro "$m" 2>/dev/null || true ;; esac
    done
    mount -n -t tmpfs -o mode=1777 tmpfs /tmp
    mount -n -t tmpfs -o mode=000 tmpfs /home
    # ProtectHome=yes also hides the home of uid 0.
    mount -n -t tmpfs -o mode=000 tmpfs "$ROOT_HOME"
    mount -n -o remount,bind,ro /sys 2>/dev/null || true
    mount -n -o remount,bind,ro /proc/sys 2>/dev/null || true
    dev=$WORK/dev
    mount -n -t tmpfs -o mode=755 tmpfs "$dev"
    for d in null zero full random urandom tty; do touch "$dev/$d"; mount -n --bind "/dev/$d" "$dev/$d"; done
    mkdir "$dev/shm" "$dev/pts"
    mount -n -t tmpfs -o mode=1777 tmpfs "$dev/shm"
    mount -n --move "$dev" /dev
    cd "$DATA"
    exec python3 "$WORK/avio_filter.py" "$MODE" "$(command -v setpriv)" --reuid=65534 --regid=65534 \
        --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all \
        /usr/bin/env -i HOME="$DATA" PATH=/usr/bin:/bin "$CHROMIUM" $FLAGS \
        --user-data-dir="$DATA/wa_state/1" --dump-dom "$PAGE"
' 2>"$WORK/stderr" || true)
if grep -q "RUNS-JS-AND-WASM" <<<"$OUT"; then
    echo "chromium under the $MODE sandbox: runs JavaScript and WebAssembly"
else
    echo "chromium under the $MODE sandbox: FAILED"
    grep -v font_unique "$WORK/stderr" | tail -5
    exit 1
fi
