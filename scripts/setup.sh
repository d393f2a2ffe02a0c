#!/bin/sh
# Idempotent setup for a fresh Debian 12 machine (run as root): Debian packages for the harness
# and for the VM lab's guests (they share this machine's root read-only), npm dependencies, the
# transport tests' login user, and the guest kernel. Safe to run again: it skips what is there.
set -eu
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "setup.sh: run as root (it installs Debian packages)" >&2; exit 1; }

# Host tools + everything the guests run (the guests see this machine's /usr). gcc-12, make,
# xz-utils and libelf1 build siw.ko for guest kernels that lack it (harness/vmlab/siw.ts); xz-utils
# and zstd unpack the kernels (6.1: xz, 6.12: zstd) for a PVH boot (harness/vmlab/pvh.ts).
PACKAGES="qemu-system-x86 qemu-utils busybox-static kmod cpio iproute2 procps psmisc ethtool util-linux
  openssh-server openssh-client
  rdma-core ibverbs-utils rdmacm-utils perftest infiniband-diags srptools
  fio targetcli-fb python3 python3-rtslib-fb open-iscsi nfs-kernel-server nfs-common nvme-cli
  ifenslave tcpdump iputils-ping arping
  chromium poppler-utils libxml2-utils python3-junitparser
  gcc-12 make xz-utils zstd libelf1"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages' services from starting on this machine: the guests start their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1; fi
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  [ "${created_policy:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("setup: Node >= 20.19 is required (found "+process.version+")"); process.exit(1) }'

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The transport tests log in as this user: its shell (dash) reads no rc files.
if ! id -u rf-test >/dev/null 2>&1; then
  useradd --system --create-home --home-dir /var/lib/rf-test --shell /bin/sh rf-test
fi
# "*" = no password, but not locked: sshd (UsePAM no) refuses even key logins for locked ("!") accounts.
usermod -p '*' rf-test

# Guest kernel for the VM lab (cached in .cache/; rebuilt only when inputs change).
if [ "${RF_SETUP_SKIP_KERNEL:-0}" != 1 ]; then
  ./bin/rdma-failover.js lab prepare --quiet
fi
