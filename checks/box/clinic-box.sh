#!/usr/bin/env bash
# The clinic box: a clinic server booted here, broken the way clinic servers break, repaired by
# msp-agent running as its systemd service, and every repair checked by looking at the system.
#
#   clinic-box.sh prepare
#       Build (once) the cached Debian rootfs the box boots: debootstrap into $MSP_BOX_ROOTFS.
#   clinic-box.sh run --agent EXE --keys DIR --runbooks DIR --out DIR
#       Boot the box, install EXE as msp-agent.service with the signing keys in DIR and every
#       RB-*.yaml in the runbooks DIR (all approved, SHA-256 computed here), cause the six
#       incidents and the service-behaviour tests, verify every bundle inside and outside the
#       box with ssh-keygen and openssl, and leave the evidence in OUT/evidence plus a
#       tab-separated line per incident in OUT/box-summary.tsv.
#
# `msp-agent demo --out DIR` embeds this script and runs it; CI runs it through
# agent/tests/box.rs. Needs root (unshare, mount), util-linux, ssh-keygen, openssl, jq.
#
# How the box is built (DESIGN.md 5): the cached rootfs is the lower layer of an overlay, so it
# is never modified; this run's files (agent, units, config) are the upper layer. systemd runs
# as PID 1 in new PID, mount, UTS, IPC and network namespaces (the network namespace keeps the
# box's ports — the TLS portal on 8443, the webhook sink on 9099 — off the host). Everything the
# box mounts lives in its private mount namespace and disappears with it: teardown kills the
# box's PID 1 by pid (which ends every process in the namespace) and removes the run directory.
# Snippets for inside the box are single-quoted on purpose: they expand there, not here.
# shellcheck disable=SC2016
set -euo pipefail

# -v2: openssh-server and libpam-systemd for the break-glass login and the brute-force burst
# (a new directory, so a box built from the older package list keeps its cache).
ROOTFS=${MSP_BOX_ROOTFS:-/var/cache/msp-flake/rootfs-bookworm-systemd-v2}
PACKAGES=systemd,systemd-sysv,dbus,openssl,procps,restic,openssh-client,openssh-server,libpam-systemd
# Timing of the box's agent: short probe interval and cooldown so the whole run stays short.
PROBE_INTERVAL=2
WATCHDOG_SEC=4
STOP_TIMEOUT_SEC=30
DISK_THRESHOLD=80
CERT_WARN_DAYS=14

BOX='' MERGED='' PID1='' UNSHARE_PID='' OUT='' AGENT='' KEYS='' RUNBOOKS=''
# The approved runbook set (id: sha256 lines) and permissions, filled by stage_agent.
approved='' permissions=''
T0=$(date +%s)

say() { printf '[box %3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { printf '[box] FAILED: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ------------------------------------------------------------------ rootfs cache

rootfs_ok() {
  [ -x "$ROOTFS/lib/systemd/systemd" ] && [ -x "$ROOTFS/usr/bin/openssl" ] \
    && [ -x "$ROOTFS/usr/bin/restic" ] && [ -x "$ROOTFS/usr/bin/ssh-keygen" ] \
    && [ -x "$ROOTFS/usr/sbin/sshd" ] && compgen -G "$ROOTFS/lib/*/security/pam_systemd.so" >/dev/null
}

prepare_rootfs() {
  if rootfs_ok; then
    return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  say "building the base system once: debootstrap bookworm into $ROOTFS (a few minutes)"
  local parent log
  parent=$(dirname "$ROOTFS")
  log="$parent/debootstrap.log"
  mkdir -p "$parent"
  rm -rf "$ROOTFS.tmp"
  if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS.tmp" \
      http://deb.debian.org/debian >"$log" 2>&1; then
    die "debootstrap failed; see $log"
  fi
  # Downloaded packages are not needed to boot.
  rm -f "$ROOTFS.tmp"/var/cache/apt/archives/*.deb
  rm -rf "$ROOTFS.old"
  if [ -e "$ROOTFS" ]; then mv "$ROOTFS" "$ROOTFS.old"; fi
  mv "$ROOTFS.tmp" "$ROOTFS"
  # A running container may still use the old tree as its lower layer: removed only now.
  rm -rf "$ROOTFS.old"
  rootfs_ok || die "$ROOTFS lacks a package of $PACKAGES after debootstrap"
}

# ------------------------------------------------------------------ running things inside

# Run a bash snippet inside the box (all its namespaces, its root).
inbox() {
  nsenter -t "$PID1" -m -p -u -i -n chroot "$MERGED" /bin/bash -c "$1"
}

# Poll `inbox "$2"` until it succeeds; fail after $1 seconds naming $3.
wait_for() {
  local limit=$1 check=$2 what=$3 end
  end=$(( $(date +%s) + limit ))
  until inbox "$check" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      inbox "systemctl status --no-pager msp-agent | tail -n 20" >&2 || true
      die "timed out after ${limit}s waiting for: $what"
    fi
    sleep 0.2
  done
}

# Every bundle file of the box's store, oldest first (names sort by day and sequence).
bundles() {
  find "$BOX/evidence" -name 'EB-*.json' ! -name '*.receipt.json' -type f 2>/dev/null | sort
}

# The newest bundle (host path) recording runbook $1 with resolution $2 written after
# sequence $3; empty when there is none.
find_bundle() {
  local rb=$1 status=$2 after=$3 f
  for f in $(bundles | sort -r); do
    if jq -e --arg rb "$rb" --arg st "$status" --argjson after "$after" \
        '.runbook.runbook_id == $rb and .outputs.resolution_status == $st and .chain.sequence > $after' \
        "$f" >/dev/null 2>&1; then
      printf '%s\n' "$f"
      return 0
    fi
  done
}

# Wait until runbook $1 has a bundle with resolution $2 after sequence $3; print its path.
wait_bundle() {
  local rb=$1 status=$2 after=$3 limit=${4:-90} end b
  end=$(( $(date +%s) + limit ))
  while :; do
    b=$(find_bundle "$rb" "$status" "$after")
    if [ -n "$b" ]; then printf '%s\n' "$b"; return 0; fi
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "bundles so far:" >&2
      for b in $(bundles); do
        jq -r '[.bundle_id, .runbook.runbook_id, .incident.event_type, .outputs.resolution_status, (.actions_taken | map(.step_id + "=" + .result) | join(","))] | @tsv' "$b" >&2
      done
      inbox "journalctl -u msp-agent --no-pager -n 30" >&2 || true
      die "timed out after ${limit}s waiting for a '$status' bundle of $rb"
    fi
    sleep 0.2
  done
}

# The head sequence of the evidence chain (0 when empty).
head_seq() {
  local last
  last=$(bundles | tail -n 1)
  if [ -z "$last" ]; then echo 0; else jq -r '.chain.sequence' "$last"; fi
}

# A line for the summary's service-behaviour part (and the log).
note() {
  say "  $*"
  printf '%s\n' "$*" >>"$BOX/service.txt"
}

# Record one repaired incident for the summary: what was broken, the bundle, what was checked.
record() {
  local incident=$1 bundle=$2 checked=$3
  jq -r --arg inc "$incident" --arg chk "$checked" \
    '[$inc, .runbook.runbook_id, .outputs.resolution_status, (.execution.mttr_seconds | tostring),
      (.execution.sla_target_seconds | tostring), (.execution.sla_met | tostring), .bundle_id, $chk] | @tsv' \
    "$bundle" >>"$BOX/summary.tsv"
  # MTTR and SLA come from real times: present, positive, consistent.
  jq -e '.execution.mttr_seconds > 0 and (.execution.sla_target_seconds > 0)
         and (.execution.sla_met == (.execution.mttr_seconds <= .execution.sla_target_seconds))' \
    "$bundle" >/dev/null || die "$bundle: MTTR/SLA fields missing or inconsistent"
  say "  repaired and checked: $checked ($(jq -r '.bundle_id + ", MTTR " + (.execution.mttr_seconds|tostring) + " s"' "$bundle"))"
}

# ------------------------------------------------------------------ staging the box

# Write a file into the upper layer: stage PATH MODE < content
stage() {
  local path="$BOX/upper$1" mode=$2
  mkdir -p "$(dirname "$path")"
  cat >"$path"
  chmod "$mode" "$path"
}

# The agent's configuration; $1: whether the CPU probe is on. Uses the approved set and
# permissions computed by stage_agent.
agent_config() {
  local cpu=$1 backup_units=${2:-restic-backups-daily.service}
  cat <<EOF
# msp-agent on the clinic box: production layout, box timing (short probe interval and cooldown).
client_id: clinic-001
hostname: clinic-001-srv
runbooks_dir: /etc/msp/runbooks
evidence_dir: /var/lib/msp/evidence
state_dir: /var/lib/msp/state
approved_runbooks:
${approved}client_permissions:
${permissions}guard:
  cooldown_seconds: 1
  max_backoff_multiplier: 2
max_concurrent_runbooks: 2
journal:
  enabled: true
  backup_unit_patterns: ["restic-backups-*.service"]
  # The box breaks the backup twice within a minute; each failure is its own incident.
  dedupe_window_seconds: 3
probes:
  interval_seconds: $PROBE_INTERVAL
  disk: {enabled: true, threshold_percent: $DISK_THRESHOLD, mounts: [/var/log]}
  # Machine-wide CPU: on only while the hog incident runs (see incident_cpu_hog).
  cpu: {enabled: $cpu, threshold_percent: 70, sustained_seconds: 4}
  certs: {enabled: true, paths: [/etc/ssl/msp], warn_days: $CERT_WARN_DAYS}
  restore_test: {enabled: true, interval_days: 7}
  # The baseline checks: backup age on (see incident_backup_stale); the box has no time daemon,
  # no NixOS generation and no TLS endpoint of its own to judge, so those are off here.
  policy_interval_seconds: $PROBE_INTERVAL
  backup_age: {enabled: true, units: [$backup_units]}
  clock: {enabled: false}
  system_age: {enabled: false}
  tls: {enabled: false}
alert:
  webhook_url: http://127.0.0.1:9099/alert
  retries: 3
  timeout_seconds: 5
# This host's settings for the shipped runbooks (their defaults are NixOS paths).
runbook_parameters:
  RB-BACKUP-001:
    password_file: /etc/msp/secrets/restic-password
    # Box timing: wait 6 s for a repository that went away (production default 300 s).
    repository_wait_seconds: 6
  RB-RESTORE-001:
    password_file: /etc/msp/secrets/restic-password
    sample_path: /srv/clinic
    read_data_subset: "100%"
  RB-CERT-001:
    key_path: /etc/ssl/private/portal.key
    renew_unit: cert-renew.service
    reload_unit: clinic-portal.service
    served_port: "8443"
    server_name: portal.clinic-001.example
  RB-DISK-001:
    threshold_percent: "$DISK_THRESHOLD"
  RB-SERVICE-001:
    settle_seconds: "3"
  RB-CPU-001:
    cpu_quota_percent: "50"
    sample_seconds: "3"
EOF
}

stage_agent() {
  install -D -m 0755 "$AGENT" "$BOX/upper/usr/local/bin/msp-agent"
  install -d -m 0700 "$BOX/upper/etc/msp/signing-keys"
  install -m 0400 "$KEYS/evidence-signing.key" "$BOX/upper/etc/msp/signing-keys/"
  local f
  for f in evidence-signing.pub.pem evidence-signing.pub allowed_signers key-info.json; do
    install -m 0444 "$KEYS/$f" "$BOX/upper/etc/msp/signing-keys/"
  done
  # Every runbook the agent ships is installed and approved with the SHA-256 of its exact
  # bytes (what the NixOS module computes at build time), so a runbook added to the binary
  # (RB-DRIFT-001, ...) is in the box without touching this script.
  install -d -m 0755 "$BOX/upper/etc/msp/runbooks"
  local id
  for f in "$RUNBOOKS"/RB-*.yaml; do
    [ -e "$f" ] || die "no RB-*.yaml in $RUNBOOKS"
    id=$(basename "$f" .yaml)
    install -m 0444 "$f" "$BOX/upper/etc/msp/runbooks/"
    approved+="  $id: $(sha256sum "$f" | cut -d' ' -f1)"$'\n'
    permissions+="  $id: auto"$'\n'
  done
  install -d -m 0700 "$BOX/upper/etc/msp/secrets"
  head -c 24 /dev/urandom | base64 | stage /etc/msp/secrets/restic-password 0400

  agent_config false | stage /etc/msp/agent.yaml 0644
  # The same with the CPU probe on, for the hog incident only (see incident_cpu_hog).
  agent_config true | stage /etc/msp/agent-cpu-probe.yaml 0644
  # The same with the offsite backup unit among the units that must back up (see
  # incident_backup_stale).
  agent_config false "restic-backups-daily.service, restic-backups-offsite.service" | stage /etc/msp/agent-backup-age.yaml 0644

  # The unit: what modules/agent.nix generates, with the box's watchdog and stop timeout.
  stage /etc/systemd/system/msp-agent.service 0644 <<EOF
[Unit]
Description=msp-agent HIPAA compliance agent
After=network.target
StartLimitBurst=5
StartLimitIntervalSec=300

[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/local/bin/msp-agent run --config /etc/msp/agent.yaml
WatchdogSec=$WATCHDOG_SEC
Restart=on-failure
RestartSec=1
TimeoutStopSec=$STOP_TIMEOUT_SEC
# SIGTERM to the agent only: the step it is running finishes, then the agent exits (the
# default, control-group, would kill the step's processes too and fail the step).
KillMode=mixed
LoadCredential=evidence-signing.key:/etc/msp/signing-keys/evidence-signing.key
StateDirectory=msp msp/state msp/evidence
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=multi-user.target
EOF
}

stage_clinic() {
  # The clinic's data, backed up daily to the NAS (restic, as NixOS services.restic.backups
  # names it). The repository is /var/lib/restic/repo, RB-BACKUP-001's default; /var/lib/restic
  # is where the NAS share is mounted (see boot_box).
  local i
  for i in 1 2 3 4 5 6 7 8; do
    head -c $((i * 40000)) /dev/urandom | base64 | stage "/srv/clinic/scans/scan-$i.txt" 0640
  done
  printf 'clinic-001 appointment book (synthetic, no PHI)\n' | stage /srv/clinic/appointments.csv 0640
  stage /etc/systemd/system/restic-backups-daily.service 0644 <<'EOF'
[Unit]
Description=restic backup daily
After=network.target

[Service]
Type=oneshot
Environment=RESTIC_REPOSITORY=/var/lib/restic/repo
Environment=RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password
Environment=RESTIC_CACHE_DIR=/var/cache/restic-backups-daily
ExecStart=/usr/bin/restic backup --tag daily /srv/clinic
EOF
  # The offsite copy: a second backup unit whose timer was never enabled (the mistake the
  # backup-age check exists for: it never fails, it just never runs).
  stage /etc/systemd/system/restic-backups-offsite.service 0644 <<'EOF'
[Unit]
Description=restic backup offsite

[Service]
Type=oneshot
Environment=RESTIC_REPOSITORY=/var/lib/restic/repo
Environment=RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password
Environment=RESTIC_CACHE_DIR=/var/cache/restic-backups-offsite
ExecStart=/usr/bin/restic backup --tag offsite /srv/clinic
EOF
  stage /etc/systemd/system/restic-backups-daily.timer 0644 <<'EOF'
[Unit]
Description=restic backup daily timer

[Timer]
OnCalendar=daily
Persistent=true
RandomizedDelaySec=1h

[Install]
WantedBy=timers.target
EOF

  # The patient portal: a TLS server (openssl s_server -www answers GET with a status page).
  stage /etc/systemd/system/clinic-portal.service 0644 <<'EOF'
[Unit]
Description=Clinic patient portal (TLS on 8443)

[Service]
ExecStart=/usr/bin/openssl s_server -quiet -www -accept 8443 -cert /etc/ssl/msp/portal.pem -key /etc/ssl/private/portal.key
EOF
  # Renewal, as acme-<domain>.service does it: a new certificate for the same key, from the
  # clinic's CA, written atomically. RENEW_DAYS only exists so the box can issue the nearly
  # expired certificate of the incident the same way.
  stage /usr/local/lib/clinic-box/cert-renew 0755 <<'EOF'
#!/bin/bash
set -euo pipefail
days=${RENEW_DAYS:-90}
umask 022
tmp=$(mktemp /etc/ssl/msp/.portal.XXXXXX)
trap 'rm -f "$tmp" "$tmp.csr"' EXIT
openssl req -new -key /etc/ssl/private/portal.key -subj /CN=portal.clinic-001.example -out "$tmp.csr"
openssl x509 -req -in "$tmp.csr" -CA /etc/ssl/clinic-ca/ca.pem -CAkey /etc/ssl/clinic-ca/ca.key \
  -set_serial "0x$(openssl rand -hex 8)" -days "$days" -out "$tmp" 2>/dev/null
chmod 0644 "$tmp"
mv -f "$tmp" /etc/ssl/msp/portal.pem
echo "issued a certificate valid for $days days"
EOF
  stage /etc/systemd/system/cert-renew.service 0644 <<'EOF'
[Unit]
Description=Renew the portal certificate

[Service]
Type=oneshot
ExecStart=/usr/local/lib/clinic-box/cert-renew
EOF

  # Services for the crash, the runaway and the restart test.
  stage /etc/systemd/system/billing-sync.service 0644 <<'EOF'
[Unit]
Description=Clinic billing sync (a long-running worker, slow to start)

[Service]
# It waits for its upstream before it counts as started: a restart takes 3 seconds, which
# is where the box restarts the agent in the middle of RB-SERVICE-001.
ExecStartPre=/bin/sleep 3
ExecStart=/bin/sleep infinity
EOF
  stage /etc/systemd/system/report-export.service 0644 <<'EOF'
[Unit]
Description=Nightly report export (runs away: a busy loop per CPU)

[Service]
# One loop per CPU, so that the machine-wide CPU probe sees it on any number of cores
# ($$ is systemd's escape for a literal $).
ExecStart=/bin/bash -c 'for _ in $$(seq "$$(nproc)"); do yes > /dev/null & done; wait'
EOF

  # The MSP's alert endpoint: a socket-activated HTTP sink that appends each POST body.
  stage /etc/systemd/system/webhook-sink.socket 0644 <<'EOF'
[Socket]
ListenStream=127.0.0.1:9099
Accept=yes

[Install]
WantedBy=sockets.target
EOF
  stage /etc/systemd/system/webhook-sink@.service 0644 <<'EOF'
[Service]
ExecStart=/usr/local/lib/clinic-box/webhook-sink
StandardInput=socket
StandardOutput=socket
StandardError=journal
EOF
  stage /usr/local/lib/clinic-box/webhook-sink 0755 <<'EOF'
#!/bin/bash
# Read one HTTP request from stdin, append its body to posts.jsonl, answer 204.
set -euo pipefail
len=0
IFS= read -r _request || exit 0
while IFS= read -r line; do
  line=${line%$'\r'}
  [ -z "$line" ] && break
  case "${line,,}" in content-length:*) len=${line#*:}; len=${len//[!0-9]/} ;; esac
done
body=
if [ "${len:-0}" -gt 0 ]; then IFS= read -r -N "$len" body || true; fi
mkdir -p /var/lib/webhook-sink
printf '%s\n' "$body" >> /var/lib/webhook-sink/posts.jsonl
printf 'HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'
EOF
  mkdir -p "$BOX/upper/etc/systemd/system/sockets.target.wants"
  ln -sf /etc/systemd/system/webhook-sink.socket "$BOX/upper/etc/systemd/system/sockets.target.wants/"
  printf 'clinic-001-srv\n' | stage /etc/hostname 0644
  # Mount points the launcher binds the evidence store and the NAS share onto.
  install -d "$BOX/upper/var/lib/msp/evidence" "$BOX/upper/var/lib/restic"
}

# Log-ins: the box's sshd (openssh-server, with libpam-systemd so that logind registers every
# session), and a nightly job that writes its export to /var/log (the small file system).
# Accounts and keys are made in setup_logins.
stage_logins() {
  # Hardened hosts log at VERBOSE (key fingerprints, every failed key); loopback only.
  stage /etc/ssh/sshd_config.d/clinic-box.conf 0644 <<'EOF'
ListenAddress 127.0.0.1
LogLevel VERBOSE
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM yes
EOF
  stage /etc/systemd/system/nightly-export.service 0644 <<'EOF'
[Unit]
Description=Nightly export of the appointment statistics (12 MiB to /var/log/export)

[Service]
Type=oneshot
# A job that cleans up after itself: a partial export is removed when the write fails.
ExecStart=/bin/bash -c 'mkdir -p /var/log/export && dd if=/dev/zero of=/var/log/export/report.csv bs=1M count=12 status=none || { rm -f /var/log/export/report.csv; exit 1; }'
EOF
}

# ------------------------------------------------------------------ boot and teardown

boot_box() {
  # Launcher, run by `unshare` as the new namespaces' first process.
  cat >"$BOX/launch.sh" <<'EOF'
set -euo pipefail
lower=$1 box=$2 root=$box/merged
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$box/upper,workdir=$box/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount -t tmpfs -o mode=755 tmpfs "$root/dev"
for n in null zero random urandom tty full; do touch "$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"; done
# The evidence store is a host directory, so the host reads it live and keeps it afterwards.
mount --bind "$box/evidence" "$root/var/lib/msp/evidence"
# /var/log is its own small file system (as CIS benchmarks ask): a 32 MiB tmpfs holding what
# the rootfs had there. It is the file system the disk incident fills.
mkdir -p "$box/varlog-seed"
cp -a "$root/var/log/." "$box/varlog-seed/"
mount -t tmpfs -o size=32m,mode=755 tmpfs "$root/var/log"
cp -a "$box/varlog-seed/." "$root/var/log/"
# The NAS: its export lives outside the box's file tree; the share is mounted at
# /var/lib/restic (and unmounted when the NAS goes away, see incident_backup).
mkdir -p "$root/mnt/.nas-export"
mount -t tmpfs -o size=256m,mode=700 tmpfs "$root/mnt/.nas-export"
mount --bind "$root/mnt/.nas-export" "$root/var/lib/restic"
# On a real host systemd makes / shared at boot, so that a mount or unmount reaches the
# services' private namespaces (ProtectSystem=); in a container it leaves that to us.
mount --make-rshared "$root"
exec chroot "$root" /usr/bin/env container=other /lib/systemd/systemd --system
EOF
  mkdir -p "$BOX/upper" "$BOX/work" "$BOX/merged" "$BOX/evidence"
  unshare --pid --fork --mount --uts --ipc --net bash "$BOX/launch.sh" "$ROOTFS" "$BOX" \
    </dev/null >"$BOX/console.log" 2>&1 &
  UNSHARE_PID=$!
  local i
  for i in $(seq 1 200); do
    PID1=$(cut -d' ' -f1 "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null || true)
    [ -n "$PID1" ] && break
    sleep 0.05
  done
  [ -n "$PID1" ] || die "the box's PID 1 did not appear (see $BOX/console.log)"
  MERGED=$BOX/merged
  local end=$(( $(date +%s) + 60 )) state=
  while :; do
    state=$(inbox 'systemctl is-system-running 2>/dev/null' 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    [ "$(date +%s)" -lt "$end" ] || die "systemd in the box did not finish booting (state: $state)"
    sleep 0.2
  done
  say "booted: systemd $(inbox 'systemctl --version | head -n1 | cut -d" " -f2') as PID 1 (host pid $PID1), system $state"
}

teardown() {
  local rc=$?
  if [ -n "$PID1" ] && kill -0 "$PID1" 2>/dev/null; then
    # SIGKILL to the namespace's init ends every process in it; the mount namespace (the
    # overlay, /var/log, the NAS, the evidence bind) goes with the last of them.
    kill -KILL "$PID1" 2>/dev/null || true
  fi
  if [ -n "$UNSHARE_PID" ]; then wait "$UNSHARE_PID" 2>/dev/null || true; fi
  if [ -n "$BOX" ] && [ -d "$BOX" ]; then
    if [ "$rc" -ne 0 ] && [ -n "$OUT" ]; then
      # A failed run leaves what it has for a person to read; never over earlier evidence.
      mkdir -p "$OUT"
      cp "$BOX/console.log" "$OUT/box-console.log" 2>/dev/null || true
      if [ ! -e "$OUT/evidence" ]; then cp -a "$BOX/evidence" "$OUT/evidence" 2>/dev/null || true; fi
    fi
    if grep -qs " $BOX/" /proc/self/mounts; then
      echo "[box] WARNING: mounts under $BOX remain; leaving it in place" >&2
    else
      rm -rf "$BOX"
    fi
  fi
  exit "$rc"
}

# ------------------------------------------------------------------ the clinic, running

setup_clinic() {
  inbox '
    set -euo pipefail
    hostname clinic-001-srv
    install -d -m 0755 /etc/ssl/msp /etc/ssl/clinic-ca
    install -d -m 0700 /etc/ssl/private
    cd /etc/ssl/clinic-ca
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
      -subj "/CN=clinic-001 internal CA" -days 3650 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out /etc/ssl/private/portal.key 2>/dev/null
    systemctl start cert-renew.service
    systemctl start clinic-portal.service
    systemctl start --no-block billing-sync.service
    export RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password
    restic init --quiet > /dev/null
    systemctl start restic-backups-daily.service
    systemctl enable --quiet restic-backups-daily.timer
    # Logs a clinic server has: the live portal log, an audit trail, old rotated logs.
    install -d -m 0750 /var/log/audit /var/log/portal
    head -c 200000 /dev/urandom | base64 > /var/log/portal/access.log
    head -c 100000 /dev/urandom | base64 > /var/log/audit/audit.log.1
    touch -d "200 days ago" /var/log/audit/audit.log.1
  '
  inbox 'systemctl is-active --quiet clinic-portal.service && systemctl show -p Result --value restic-backups-daily.service' \
    | grep -qx success || die "the clinic did not come up (portal or first backup)"
  wait_for 10 "printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -quiet -connect 127.0.0.1:8443 2>/dev/null | head -n1 | grep -q ' 200 '" \
    "the portal to answer on 8443"
  say "clinic running: portal on 8443 (TLS), first backup made, restic-backups-daily.timer enabled"
}

start_agent() {
  # The weekly restore test last ran 7 days minus 8 seconds ago: it comes due during the run.
  local last
  last=$(date -u -d "@$(( $(date +%s) - 7 * 86400 + 8 ))" +%Y-%m-%dT%H:%M:%SZ)
  inbox "install -d -m 0700 /var/lib/msp /var/lib/msp/state && printf '{\"last_run\":\"$last\"}' > /var/lib/msp/state/restore-schedule.json"
  inbox 'systemctl enable --quiet --now msp-agent.service'
  wait_for 15 'systemctl is-active --quiet msp-agent.service' "msp-agent.service active (READY=1)"
  say "msp-agent.service active: Type=notify, WatchdogSec=${WATCHDOG_SEC}s, MainPID $(inbox 'systemctl show -p MainPID --value msp-agent')"
}

check_native_journal() {
  # The agent logs to journald directly (structured fields), not through stdout.
  local n
  n=$(inbox "journalctl -u msp-agent -o json --no-pager" \
      | jq -s '[.[] | select(.SYSLOG_IDENTIFIER == "msp-agent" and (.MESSAGE | tostring | test("msp-agent ready"))
                       and (keys | any(test("RUNBOOKS$"))) and (._TRANSPORT == "journal"))] | length')
  [ "$n" -ge 1 ] || die "no native journald entry 'msp-agent ready' with structured fields"
  note "journald: the agent logs natively (_TRANSPORT=journal, structured fields)"
}

portal_ok() {
  inbox "printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 openssl s_client -quiet -connect 127.0.0.1:8443 2>/dev/null | head -n1 | grep -q ' 200 '"
}

# Wait until the agent runs no runbook (its sd_notify STATUS says "(running 0)"; refreshed
# with every watchdog ping).
wait_idle() {
  wait_for 30 "systemctl is-active --quiet msp-agent.service && systemctl show -p StatusText --value msp-agent.service | grep -q '(running 0)'" \
    "msp-agent to be idle"
}

# ------------------------------------------------------------------ incidents

incident_restore_test() {
  say "incident: the weekly restore test comes due"
  local b snap
  b=$(wait_bundle RB-RESTORE-001 resolved 0 60)
  # Checked here, not taken from the agent: the snapshot it restored matches the live data.
  snap=$(jq -r '.artifacts[] | select(.filename == "restore-snapshot.txt") | .filename' "$b")
  [ -n "$snap" ] || die "$b has no restore-snapshot.txt artifact"
  inbox '
    set -euo pipefail
    export RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password
    d=$(mktemp -d)
    restic --no-cache restore latest --target "$d" --include /srv/clinic --quiet
    diff -r "$d/srv/clinic" /srv/clinic
    rm -rf "$d"
    test -z "$(ls -A /var/tmp/msp-restore-test 2>/dev/null)"
  ' || die "restore check: restored data differs from /srv/clinic or the restore copy was left behind"
  record "restore test due" "$b" "restic restore of the snapshot == /srv/clinic (diff -r); no restored copy left"
}

incident_service_crash() {
  say "incident: the patient portal crashes (SIGSEGV)"
  local before after b
  before=$(head_seq)
  inbox 'systemctl kill --signal=SEGV clinic-portal.service'
  b=$(wait_bundle RB-SERVICE-001 resolved "$before" 60)
  after=$(inbox 'systemctl is-active clinic-portal.service' || true)
  [ "$after" = active ] || die "clinic-portal.service is $after after RB-SERVICE-001"
  portal_ok || die "the portal does not answer after RB-SERVICE-001"
  record "service crash (portal SIGSEGV)" "$b" "systemctl is-active = active; GET / over TLS = 200"
}

incident_cert_expiry() {
  say "incident: the portal certificate expires in 3 days"
  local before b served on_disk
  before=$(head_seq)
  inbox 'RENEW_DAYS=3 /usr/local/lib/clinic-box/cert-renew >/dev/null && systemctl restart clinic-portal.service'
  inbox "! openssl x509 -in /etc/ssl/msp/portal.pem -noout -checkend $((CERT_WARN_DAYS * 86400)) >/dev/null" \
    || die "the broken certificate is not inside the renewal window"
  b=$(wait_bundle RB-CERT-001 resolved "$before" 60)
  inbox "openssl x509 -in /etc/ssl/msp/portal.pem -noout -checkend $((60 * 86400))" >/dev/null \
    || die "the certificate on disk still expires within 60 days"
  on_disk=$(inbox 'openssl x509 -in /etc/ssl/msp/portal.pem -noout -fingerprint -sha256')
  served=$(inbox 'openssl s_client -connect 127.0.0.1:8443 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256')
  [ "$served" = "$on_disk" ] || die "the portal serves $served, not the renewed $on_disk"
  inbox 'openssl verify -CAfile /etc/ssl/clinic-ca/ca.pem /etc/ssl/msp/portal.pem' >/dev/null || die "renewed certificate does not verify"
  portal_ok || die "the portal does not answer after renewal"
  record "certificate expiring (3 days)" "$b" "openssl x509 -checkend 60d ok; served cert == renewed cert; GET / = 200"
}

# What RB-DISK-001 must never touch: the live log and the audit trail (by content), the
# journal's files (by name: journald appends to them) and every evidence file (by content).
kept_files() {
  inbox 'sha256sum /var/log/portal/access.log /var/log/audit/audit.log.1
         find /var/log/journal /run/log/journal -name "*.journal" 2>/dev/null | sort'
  (cd "$BOX/evidence" && find . -type f -name 'EB-*' -print0 | sort -z | xargs -0 sha256sum)
}

incident_disk_full() {
  say "incident: /var/log (32 MiB) filled past ${DISK_THRESHOLD}% by old rotated logs"
  local before b used keep_before keep_after
  before=$(head_seq)
  # What must survive: the live log, the audit trail, the journal, the evidence.
  keep_before=$(kept_files)
  inbox '
    set -euo pipefail
    for i in $(seq 1 13); do
      head -c 2000000 /dev/urandom > /var/log/portal/access.log.$i.gz
      touch -d "$((100 + i)) days ago" /var/log/portal/access.log.$i.gz
    done
  '
  used=$(inbox "df -P /var/log | awk 'NR == 2 { sub(\"%\", \"\", \$5); print \$5 }'")
  [ "$used" -ge "$DISK_THRESHOLD" ] || die "filling /var/log reached only $used%"
  b=$(wait_bundle RB-DISK-001 resolved "$before" 60)
  used=$(inbox "df -P /var/log | awk 'NR == 2 { sub(\"%\", \"\", \$5); print \$5 }'")
  [ "$used" -lt "$DISK_THRESHOLD" ] || die "/var/log is still at $used% after RB-DISK-001"
  keep_after=$(kept_files)
  # Evidence only grows: every file there before is there after, byte for byte.
  comm -23 <(printf '%s\n' "$keep_before" | sort) <(printf '%s\n' "$keep_after" | sort) >"$BOX/lost.txt"
  [ ! -s "$BOX/lost.txt" ] || die "RB-DISK-001 touched logs or evidence: $(cat "$BOX/lost.txt")"
  record "disk full (/var/log)" "$b" "df /var/log = $used% (< $DISK_THRESHOLD%); live log, audit log, journal, evidence unchanged"
}

# The NAS reboots: the share is away for a few seconds, the daily backup fails (repository
# unreachable). RB-BACKUP-001 waits for the repository (repository_wait_seconds), re-runs the
# backup unit once the NAS is back, and the backup succeeds on that retry.
incident_backup_nas_blip() {
  say "incident: the NAS reboots; the daily backup fails while its share is away"
  local before b snaps_before snaps_after
  snaps_before=$(inbox 'RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache --no-lock snapshots --json' | jq length)
  before=$(head_seq)
  inbox 'umount /var/lib/restic && systemctl start --no-block restic-backups-daily.service'
  wait_for 30 "systemctl is-failed --quiet restic-backups-daily.service" "the backup unit to fail"
  # The NAS is back two seconds later, while the runbook waits for it.
  sleep 2
  inbox 'mount --bind /mnt/.nas-export /var/lib/restic'
  b=$(wait_bundle RB-BACKUP-001 resolved "$before" 90)
  inbox 'systemctl show -p Result --value restic-backups-daily.service' | grep -qx success \
    || die "restic-backups-daily.service did not end with Result=success after the NAS came back"
  snaps_after=$(inbox 'RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache --no-lock snapshots --json' | jq length)
  [ "$snaps_after" -gt "$snaps_before" ] || die "no new snapshot after RB-BACKUP-001 ($snaps_before before, $snaps_after after)"
  record "backup failed (NAS away ~2 s)" "$b" "backup unit Result=success on the retry; restic snapshots $snaps_before -> $snaps_after"
  # The guard's cooldown (1 s) for this unit must pass before the next backup incident.
  sleep 2
}

# The NAS share drops for good: the repository stays unreachable past repository_wait_seconds,
# and RB-BACKUP-001 cannot fix that (it has no step that brings a NAS back, by design): a failed
# remediation, which must reach a human as a crit journal entry and a webhook POST.
incident_backup_unreachable() {
  say "incident: the NAS share drops for good; the daily backup fails (repository unreachable)"
  local before b kind posts
  before=$(head_seq)
  inbox 'umount /var/lib/restic && systemctl start --no-block restic-backups-daily.service'
  b=$(wait_bundle RB-BACKUP-001 failed "$before" 60)
  jq -e '.actions_taken[] | select(.step_id == "check-repository" and .result == "failed")' "$b" >/dev/null \
    || die "$b: expected check-repository to fail while the NAS is away: $(jq -c '[.actions_taken[] | {step_id, result, stderr_excerpt}]' "$b")"
  local id
  id=$(jq -r .bundle_id "$b")
  wait_for 20 "journalctl -u msp-agent -p crit -o json --no-pager | grep -q '\"MSP_BUNDLE_ID\":\"$id\"'" \
    "a PRIORITY=2 journal entry naming $id"
  kind=$(inbox "journalctl -u msp-agent -p crit -o json --no-pager" | jq -r --arg id "$id" 'select(.MSP_BUNDLE_ID == $id) | .PRIORITY + " " + .MSP_ALERT_KIND' | head -n1)
  [ "$kind" = "2 remediation_failed" ] || die "crit entry for $id: '$kind'"
  wait_for 20 "grep -q '\"bundle_id\":\"$id\"' /var/lib/webhook-sink/posts.jsonl" "a webhook POST naming $id"
  posts=$(inbox "grep -c '\"bundle_id\":\"$id\"' /var/lib/webhook-sink/posts.jsonl")
  note "NAS unreachable: RB-BACKUP-001 failed ($id) -> journal PRIORITY=2 remediation_failed + $posts webhook POST(s)"
  printf '%s\n' "$id" >"$BOX/failed-bundle"
}

# The NAS is back, but the repository is still unusable: a `restic prune` that was killed while
# holding the exclusive lock (the OOM killer's favourite) left that lock behind, and every
# backup now fails with "repository is already locked exclusively". RB-BACKUP-001 removes only
# stale locks, re-runs the backup unit and checks the repository. (The lock holder here is a
# `restic key passwd` waiting for input: it takes the same exclusive lock and, unlike prune,
# holds it for as long as we need to kill it deterministically.)
incident_backup_locked() {
  say "incident: NAS back, but a killed restic left a stale exclusive lock; the backup fails"
  local before b snaps_before snaps_after t_break
  inbox 'mount --bind /mnt/.nas-export /var/lib/restic'
  # After the failed run the guard backs off (cooldown 1 s x 2) for this unit; let it pass
  # (the only fixed wait in the box: the backoff is the agent's, not something to poll).
  sleep 2
  snaps_before=$(inbox 'RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache snapshots --json' | jq length)
  inbox '
    set -euo pipefail
    export RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password
    (sleep 60 | exec restic --no-cache key passwd) > /dev/null 2>&1 &
    for _ in $(seq 1 100); do
      [ -n "$(restic --no-cache --no-lock list locks 2>/dev/null)" ] && break
      sleep 0.1
    done
    pid=$(pgrep -x restic)
    kill -KILL "$pid"
    [ -n "$(restic --no-cache --no-lock list locks)" ]
  ' || die "could not leave a stale lock"
  before=$(head_seq)
  t_break=$(date +%s)
  inbox 'systemctl start --no-block restic-backups-daily.service'
  b=$(wait_bundle RB-BACKUP-001 resolved "$before" 90)
  inbox 'systemctl show -p Result --value restic-backups-daily.service' | grep -qx success \
    || die "restic-backups-daily.service did not end with Result=success"
  snaps_after=$(inbox 'RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache snapshots --json' \
    | jq --argjson t "$t_break" '[.[] | select((.time | sub("\\.[0-9]+"; "") | sub("(?<tz>[+-][0-9]{2}:[0-9]{2}|Z)$"; "") | strptime("%Y-%m-%dT%H:%M:%S") | mktime) >= $t - 86400)] | length')
  [ "$snaps_after" -gt "$snaps_before" ] || die "no new snapshot after RB-BACKUP-001 ($snaps_before before, $snaps_after after)"
  [ -z "$(inbox 'RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache --no-lock list locks')" ] \
    || die "a lock is still in the repository"
  record "backup failed (stale exclusive lock)" "$b" "backup unit Result=success; restic snapshots $snaps_before -> $snaps_after; no locks left"
}

# A backup that silently stopped: restic-backups-offsite.service has not succeeded since the
# agent started watching the host 27 hours ago (its timer was never enabled), past the
# baseline's backup.max_age_hours (26). The agent's first start is staged 27 h back (the only
# simulated time, as the restore schedule is staged in start_agent) and the offsite unit is
# made one of the units that must back up; the backup-age check finds no backup_completed
# record for it, raises backup_stale, and RB-BACKUP-001 runs the unit. Its success is read
# from the journal as a new backup_completed record, and the check holds again.
incident_backup_stale() {
  say "incident: the offsite backup has not run for 27 h (its timer was never enabled)"
  local before b snaps_before snaps_after first
  snaps_before=$(inbox 'RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache --no-lock snapshots --tag offsite --json' | jq length)
  before=$(head_seq)
  first=$(( $(date +%s) - 27 * 3600 ))
  inbox "set -e
    mkdir -p /run/systemd/system/msp-agent.service.d
    printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/msp-agent run --config /etc/msp/agent-backup-age.yaml\n' \
      > /run/systemd/system/msp-agent.service.d/box-backup-age.conf
    systemctl daemon-reload
    systemctl stop msp-agent.service
    printf '%s\n' $first > /var/lib/msp/state/first-start
    systemctl start msp-agent.service"
  wait_for 15 'systemctl is-active --quiet msp-agent.service' "msp-agent back with the offsite unit watched"
  b=$(wait_bundle RB-BACKUP-001 resolved "$before" 90)
  jq -e '.incident.event_type == "backup_stale" and .incident.details.unit == "restic-backups-offsite.service"
         and .incident.details.counted_from == "agent first start" and .incident.details.max_age_hours == 26
         and .incident.details.age_hours >= 27' "$b" >/dev/null \
    || die "$b: expected RB-BACKUP-001 to answer a backup_stale incident of the offsite unit: $(jq -c .incident "$b")"
  inbox 'systemctl show -p Result --value restic-backups-offsite.service' | grep -qx success \
    || die "restic-backups-offsite.service did not end with Result=success"
  snaps_after=$(inbox 'RESTIC_REPOSITORY=/var/lib/restic/repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache --no-lock snapshots --tag offsite --json' | jq length)
  [ "$snaps_after" -gt "$snaps_before" ] || die "no new offsite snapshot ($snaps_before before, $snaps_after after)"
  # The run's success is in the evidence as a backup_completed record of the offsite unit.
  local rec=''
  for _ in $(seq 1 100); do
    rec=$(for f in $(bundles); do
      jq -r 'select(.incident.event_type == "backup_completed" and .incident.details.unit == "restic-backups-offsite.service") | .bundle_id' "$f"
    done | head -n 1)
    [ -z "$rec" ] || break
    sleep 0.2
  done
  [ -n "$rec" ] || die "no backup_completed record of the offsite unit after RB-BACKUP-001"
  # Back to the main configuration (the first start stays 27 h back: harmless there, only
  # the daily unit is judged and it has records).
  inbox 'set -e
    rm /run/systemd/system/msp-agent.service.d/box-backup-age.conf
    systemctl daemon-reload
    systemctl restart msp-agent.service'
  wait_for 15 'systemctl is-active --quiet msp-agent.service' "msp-agent back on its main configuration"
  wait_idle
  record "backup stale (offsite unit, 27 h)" "$b" "backup_stale from the backup_completed records; offsite unit Result=success; offsite snapshots $snaps_before -> $snaps_after; recorded as $rec"
}

incident_cpu_hog() {
  say "incident: report-export.service runs away (a busy loop per CPU)"
  local before b quota used
  # The CPU probe measures the whole machine, which the box shares with the host: it is
  # switched on for this incident only, so that host load never reads as a box incident.
  # (A runtime drop-in points the unit at the second configuration: nothing under /etc
  # changes, so no drift detector sees the box's own doing.)
  inbox 'set -e
    mkdir -p /run/systemd/system/msp-agent.service.d
    printf "[Service]\nExecStart=\nExecStart=/usr/local/bin/msp-agent run --config /etc/msp/agent-cpu-probe.yaml\n" \
      > /run/systemd/system/msp-agent.service.d/box-cpu-probe.conf
    systemctl daemon-reload
    systemctl restart msp-agent.service' 
  wait_for 15 'systemctl is-active --quiet msp-agent.service' "msp-agent back after enabling the CPU probe"
  before=$(head_seq)
  inbox 'systemctl start report-export.service'
  b=$(wait_bundle RB-CPU-001 resolved "$before" 90)
  quota=$(inbox 'systemctl show -p CPUQuotaPerSecUSec --value report-export.service')
  [ "$quota" = 500ms ] || die "report-export.service CPUQuotaPerSecUSec=$quota, expected 500ms"
  # Measured from the unit's cgroup (cgroup v2 cpu.stat; on a hybrid host the v2 tree is
  # under unified/), not from what systemd or the agent report.
  used=$(inbox '
    set -euo pipefail
    for d in /sys/fs/cgroup/system.slice /sys/fs/cgroup/unified/system.slice; do
      if [ -r "$d/report-export.service/cpu.stat" ]; then stat=$d/report-export.service/cpu.stat; break; fi
    done
    a=$(awk "/^usage_usec/ { print \$2 }" "$stat"); sleep 3
    b=$(awk "/^usage_usec/ { print \$2 }" "$stat")
    echo $(( (b - a) / 30000 ))')
  [ "$used" -le 55 ] || die "report-export.service still uses $used% of a CPU"
  inbox 'systemctl is-active --quiet report-export.service' || die "the throttled unit is not running"
  # Probe off first (a run in flight is interrupted and resumes against the still running,
  # already throttled unit), then wait until nothing runs, then end the runaway.
  inbox 'set -e
    rm /run/systemd/system/msp-agent.service.d/box-cpu-probe.conf
    systemctl daemon-reload
    systemctl restart msp-agent.service' 
  wait_idle
  inbox 'systemctl stop report-export.service'
  record "CPU hog (report-export)" "$b" "CPUQuota 50% in place; measured $used% of a CPU over 3 s; unit still active"
}

# ------------------------------------------------------------------ log-ins and a full disk (ISSUE 13)

# A line for the summary's detection part: what happened, event type, bundle, details.
detection() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$BOX/detections.tsv"
  say "  detected and recorded: $1 ($3)"
}

# The newest bundle (host path) of incident type $1 written after sequence $2 whose bundle
# matches the jq filter $3 (default: any); empty when there is none.
find_event_bundle() {
  local ev=$1 after=$2 filter=${3:-true} f
  for f in $(bundles | sort -r); do
    if jq -e --arg ev "$ev" --argjson after "$after" \
        ".incident.event_type == \$ev and .chain.sequence > \$after and ($filter)" "$f" >/dev/null 2>&1; then
      printf '%s\n' "$f"
      return 0
    fi
  done
}

# Wait for find_event_bundle $1 $2 $3 (up to $4 seconds); print its path.
wait_event_bundle() {
  local ev=$1 after=$2 filter=${3:-true} limit=${4:-30} end b
  end=$(( $(date +%s) + limit ))
  while :; do
    b=$(find_event_bundle "$ev" "$after" "$filter")
    if [ -n "$b" ]; then printf '%s\n' "$b"; return 0; fi
    if [ "$(date +%s)" -ge "$end" ]; then
      inbox "journalctl -u msp-agent --no-pager -n 20" >&2 || true
      die "timed out after ${limit}s waiting for a $ev bundle matching $filter"
    fi
    sleep 0.2
  done
}

# Event types of the bundles after sequence $1, one per line.
event_types_after() {
  local f
  for f in $(bundles); do
    jq -r --argjson after "$1" 'select(.chain.sequence > $after) | .incident.event_type' "$f"
  done
}

# The accounts and keys: msp-breakglass (its key stands for the sealed credential) and
# clinic-staff (an ordinary local user, who tries to forge what the agent trusts).
setup_logins() {
  inbox '
    set -euo pipefail
    for u in msp-breakglass clinic-staff; do
      id "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u"
      install -d -m 0700 -o "$u" -g "$u" "/home/$u/.ssh"
    done
    install -d -m 0700 /root/.ssh
    for k in breakglass staff wrong; do
      [ -e "/root/.ssh/$k" ] || ssh-keygen -q -t ed25519 -N "" -C "box-$k" -f "/root/.ssh/$k"
    done
    install -m 0600 -o msp-breakglass -g msp-breakglass /root/.ssh/breakglass.pub /home/msp-breakglass/.ssh/authorized_keys
    install -m 0600 -o clinic-staff -g clinic-staff /root/.ssh/staff.pub /home/clinic-staff/.ssh/authorized_keys
    systemctl restart ssh.service
  '
  wait_for 10 'systemctl is-active --quiet ssh.service && (exec 3<>/dev/tcp/127.0.0.1/22)' "sshd to listen on 127.0.0.1:22"
  say "sshd listening on 127.0.0.1:22 (LogLevel VERBOSE, keys only); accounts msp-breakglass, clinic-staff"
}

# ssh from the box to its own loopback: box_ssh USER KEY COMMAND
box_ssh() {
  inbox "ssh -n -i /root/.ssh/$2 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR $1@127.0.0.1 $(printf '%q' "$3")"
}

# A local user forges what the agent trusts, from a real login session: logger as sshd, a
# native entry with logind's MESSAGE_ID and USER_ID, TLS and out-of-space words. None of it
# may raise an incident. Then the break-glass account logs in for real (ssh, a logind
# session): one critical break_glass_login escalation (signed) and its alert, with who,
# when and from where.
incident_break_glass() {
  say "incident: a local user forges break-glass lines; then the break-glass account logs in"
  local before b id forged n uid
  before=$(head_seq)
  box_ssh clinic-staff staff '
    set -e
    logger -t sshd "Accepted publickey for msp-breakglass from 10.6.6.6 port 6666 ssh2: ED25519 SHA256:forged"
    printf "MESSAGE_ID=8d45620c1a4348dbb17410da57c60c66\nUSER_ID=msp-breakglass\nSESSION_ID=99\nSYSLOG_IDENTIFIER=systemd-logind\nMESSAGE=New session 99 of user msp-breakglass.\n" > /tmp/forged.fields
    logger --journald=/tmp/forged.fields
    logger -t nginx "SSL: certificate has expired"
    echo "dd: error writing /var/log/x: No space left on device" | systemd-cat -t nightly-export
  ' || die "the staff session could not log its forgeries"
  # They are in the journal as the user wrote them (proof that they were tried).
  uid=$(inbox 'id -u clinic-staff')
  forged=$(inbox "journalctl -o json --no-pager _UID=$uid" \
    | jq -s '[.[] | select(.MESSAGE | tostring | test("msp-breakglass|certificate has expired|No space left"))] | length')
  [ "$forged" -ge 4 ] || die "expected 4 forged lines from clinic-staff in the journal, found $forged"
  # Kept with the run's output: what a local user can and cannot set, as journald recorded it.
  # Kept with the output (box-forged-lines.export): what a local user could and could not set,
  # as journald recorded it.
  inbox "journalctl -o export --no-pager _UID=$uid" >"$BOX/forged.export" 2>/dev/null || true
  box_ssh msp-breakglass breakglass 'echo "break-glass session $XDG_SESSION_ID"' >"$BOX/breakglass-session.txt" \
    || die "the break-glass login failed"
  b=$(wait_event_bundle break_glass_login "$before" '.incident.details.source_address == "127.0.0.1"' 30)
  id=$(jq -r .bundle_id "$b")
  jq -e '.incident.severity == "critical" and .execution.resolution_type == "escalated"
         and .incident.details.account == "msp-breakglass" and (.incident.details.at | type) == "string"
         and .incident.details.method == "publickey"' "$b" >/dev/null \
    || die "$b: not a critical escalation with who/when/where: $(jq -c .incident "$b")"
  # logind saw the session too (libpam-systemd): the same log-in, no second incident.
  inbox "journalctl -o json --no-pager _COMM=systemd-logind MESSAGE_ID=8d45620c1a4348dbb17410da57c60c66 USER_ID=msp-breakglass" | grep -q . \
    || die "logind did not register the break-glass session"
  # Exactly one: the forged lines raised nothing, sshd's and logind's lines are one log-in.
  n=$(event_types_after "$before" | grep -c -e break_glass_login -e cert_expiry -e disk_full || true)
  [ "$n" -eq 1 ] || die "expected exactly 1 incident record (the real break-glass login) after the forgeries, found $n: $(event_types_after "$before" | tr '\n' ' ')"
  if grep -rqs '10\.6\.6\.6' "$BOX/evidence"; then die "a forged break-glass line reached the evidence"; fi
  wait_for 20 "grep -q '\"bundle_id\":\"$id\"' /var/lib/webhook-sink/posts.jsonl" "a webhook POST naming $id"
  detection "break-glass login (ssh + logind session)" break_glass_login "$id" \
    "$(jq -r '.incident.details | "\(.account) from \(.source_address) port \(.source_port) by \(.method) at \(.at); alerted; 4 forged lines of a local user ignored"' "$b")"
}

# Someone tries account names against the box's sshd: six connections from one address
# within seconds, each refused. One login_failures escalation for the burst, with counts.
incident_login_burst() {
  say "incident: a brute-force burst against sshd (6 refused log-ins from 127.0.0.1)"
  local before b i n
  before=$(head_seq)
  for i in 1 2 3 4 5 6; do
    if box_ssh "admin$i" wrong true >/dev/null 2>&1; then die "a log-in as admin$i was accepted"; fi
  done
  b=$(wait_event_bundle login_failures "$before" '.incident.details.source_address == "127.0.0.1"' 30)
  jq -e '.incident.details.failures >= 5 and .incident.details.invalid_user_attempts >= 5
         and .execution.resolution_type == "escalated"' "$b" >/dev/null \
    || die "$b: unexpected burst record: $(jq -c .incident "$b")"
  # One per burst: the sixth attempt did not raise a second one.
  sleep 1
  n=$(event_types_after "$before" | grep -c login_failures || true)
  [ "$n" -eq 1 ] || die "expected one login_failures record for the burst, found $n"
  detection "brute-force burst against sshd" login_failures "$(jq -r .bundle_id "$b")" \
    "$(jq -r '.incident.details | "\(.failures) failures from \(.source_address) within \(.window_seconds) s (\(.distinct_users) user names, \(.invalid_user_attempts) invalid); alerted"' "$b")"
}

# The nightly export fails because /var/log is full of old rotated logs: its own line says
# "No space left on device", then PID 1 reports the failure. The agent answers with
# RB-DISK-001 on /var/log (not a service restart), which then runs the export again.
incident_job_enospc() {
  say "incident: the nightly export fails with ENOSPC on /var/log (old rotated logs fill it)"
  local before b avail fill result
  before=$(head_seq)
  avail=$(inbox "df -P --block-size=1M /var/log | awk 'NR == 2 { print \$4 }'")
  fill=$(( avail - 8 ))
  [ "$fill" -gt 4 ] || die "/var/log has only ${avail} MiB free"
  # Usage stays under the probe's threshold (8 MiB of 32 free): only the job's write fails,
  # and the job removes its partial file, so the incident is the journal's, not the probe's.
  inbox "
    set -euo pipefail
    i=0; left=$fill
    while [ \$left -gt 0 ]; do
      n=\$(( left > 2 ? 2 : left )); i=\$((i + 1))
      head -c \$((n * 1048576)) /dev/zero > /var/log/portal/export-archive.log.\$i.gz
      touch -d \"\$((120 + i)) days ago\" /var/log/portal/export-archive.log.\$i.gz
      left=\$((left - n))
    done
    systemctl start nightly-export.service || true
  "
  b=$(wait_bundle RB-DISK-001 resolved "$before" 90)
  jq -e '.incident.event_type == "disk_full" and .incident.source == "journal"
         and .incident.details.retry_unit == "nightly-export.service" and .incident.details.mount == "/var/log"
         and .incident.details.mount_from == "path_in_message"
         and ([.actions_taken[] | select(.step_id == "retry-job" and .result == "success")] | length == 1)' "$b" >/dev/null \
    || die "$b: not the journal's disk_full with a successful retry: $(jq -c '{incident, steps: [.actions_taken[] | {step_id, result, stdout_excerpt}]}' "$b")"
  result=$(inbox 'systemctl show -p Result --value nightly-export.service')
  [ "$result" = success ] || die "nightly-export.service Result=$result after the retry"
  inbox 'test "$(stat -c %s /var/log/export/report.csv)" -eq $((12 * 1048576))' || die "the export is not complete after the retry"
  # Not a service crash: no RB-SERVICE-001 run for the export.
  [ -z "$(find_bundle RB-SERVICE-001 resolved "$before")$(find_bundle RB-SERVICE-001 failed "$before")" ] \
    || die "the ENOSPC failure was also treated as a service crash"
  record "job failed: ENOSPC on /var/log" "$b" "disk_full from the job's own line (mount /var/log); old logs removed; export retried: Result=success, 12 MiB"
  inbox 'rm -rf /var/log/export'
}

# ------------------------------------------------------------------ service behaviour

service_restart_mid_runbook() {
  say "service: systemctl restart msp-agent in the middle of a runbook"
  local before inc interrupted resumed steps
  before=$(head_seq)
  wait_for 10 'systemctl is-active --quiet billing-sync.service' "billing-sync.service to be running"
  inbox 'systemctl kill --signal=KILL billing-sync.service'
  # Wait until the run is inside its `restart` step (billing-sync is starting, which takes
  # 3 s), then restart the agent: that step finishes, the rest resumes after the restart.
  wait_for 30 '[ "$(systemctl is-active billing-sync.service)" = activating ]' "RB-SERVICE-001 to be restarting billing-sync"
  inbox 'systemctl restart msp-agent.service'
  interrupted=$(wait_bundle RB-SERVICE-001 interrupted "$before" 30)
  inc=$(jq -r .incident.incident_id "$interrupted")
  resumed=$(wait_bundle RB-SERVICE-001 resolved "$(jq .chain.sequence "$interrupted")" 60)
  [ "$(jq -r .incident.incident_id "$resumed")" = "$inc" ] || die "the resumed run is for another incident"
  # Nothing lost, nothing repeated: the two bundles' steps are each step exactly once.
  steps=$(jq -r '.actions_taken[] | select(.result != "skipped") | .step_id' "$interrupted" "$resumed" | sort | uniq -c | awk '$1 != 1')
  [ -z "$steps" ] || die "steps repeated across the restart: $steps"
  jq -r '.actions_taken[].step_id' "$interrupted" "$resumed" | sort -u | tr '\n' ' ' | grep -q 'capture-state reset-failed restart settle' \
    || die "steps missing across the restart: $(jq -r '.actions_taken[].step_id' "$interrupted" "$resumed" | tr '\n' ' ')"
  inbox 'systemctl is-active --quiet billing-sync.service' || die "billing-sync.service not active"
  note "systemctl restart mid-run: $(jq -r .bundle_id "$interrupted") interrupted + $(jq -r .bundle_id "$resumed") resumed, every step once"
}

service_watchdog() {
  say "service: the agent hangs (SIGSTOP); the watchdog must restart it"
  local old new restarts_before restarts_after end
  old=$(inbox 'systemctl show -p MainPID --value msp-agent.service')
  restarts_before=$(inbox 'systemctl show -p NRestarts --value msp-agent.service')
  inbox "kill -STOP $old"
  end=$(( $(date +%s) + WATCHDOG_SEC * 5 ))
  while :; do
    new=$(inbox 'systemctl show -p MainPID --value msp-agent.service')
    if [ "$new" != "$old" ] && [ "$new" != 0 ] && inbox 'systemctl is-active --quiet msp-agent.service'; then break; fi
    [ "$(date +%s)" -lt "$end" ] || die "the watchdog did not restart the frozen agent (MainPID still $new)"
    sleep 0.2
  done
  restarts_after=$(inbox 'systemctl show -p NRestarts --value msp-agent.service')
  [ "$restarts_after" -gt "$restarts_before" ] || die "NRestarts did not grow"
  inbox "journalctl -u msp-agent --no-pager | grep -q 'Watchdog timeout'" || die "no 'Watchdog timeout' in the journal"
  note "SIGSTOP: watchdog timeout, MainPID $old -> $new, NRestarts $restarts_before -> $restarts_after"
}

service_stop() {
  say "service: systemctl stop msp-agent"
  local t0 t1
  t0=$(date +%s%N)
  inbox 'systemctl stop msp-agent.service'
  t1=$(date +%s%N)
  inbox 'systemctl show -p Result --value msp-agent.service' | grep -qx success || die "msp-agent did not stop cleanly"
  inbox "journalctl -u msp-agent --no-pager | grep -q 'msp-agent stopped'" || die "no clean shutdown line"
  note "systemctl stop: clean in $(( (t1 - t0) / 1000000 )) ms (TimeoutStopSec=${STOP_TIMEOUT_SEC}s), Result=success"
}

# ------------------------------------------------------------------ the PHI boundary

# The patient line the EHR logs before it crashes (synthetic: no such patient). Each field
# is grepped for below; agent/tests/box.rs greps the demo's output for the same strings.
PHI_NAME='Jane Q. Doe'
PHI_DOB=1962-03-14
PHI_MRN=00481516
PHI_EMAIL=jane.doe@example.com
PHI_PHONE='(555) 867-5309'

# A second clinic service, the EHR's chart renderer, logs a realistic patient line and
# crashes (first run only); RB-SERVICE-001 repairs it. Then every file the agent wrote or
# sent (bundles, signatures, artifacts, receipts and anything else in the evidence store, the
# agent's state directory with its outbox, the webhook bodies) is grepped for each field of
# the line, and the new bundle is verified with ssh-keygen and openssl. The box has no S3:
# what would be uploaded is the evidence store's files (and receipts/outbox in the state
# directory), which are what is grepped; the demo's packet is grepped by agent/tests/box.rs.
phi_boundary() {
  say "PHI boundary: the EHR logs a patient line (name, DOB, MRN, e-mail, phone), then crashes"
  wait_idle
  local before b line field hits
  line="ERROR chart render failed for patient $PHI_NAME, DOB $PHI_DOB, MRN $PHI_MRN, $PHI_EMAIL, $PHI_PHONE"
  inbox "install -d -m 0755 /usr/local/lib/clinic-box && cat > /usr/local/lib/clinic-box/ehr-chart <<'SCRIPT'
#!/bin/bash
# The EHR's chart renderer: logs what it failed on (a patient, as EHRs do), crashes once.
echo '$line'
if [ ! -e /var/lib/ehr-chart/crashed-once ]; then
  install -d /var/lib/ehr-chart && touch /var/lib/ehr-chart/crashed-once
  sleep 1
  kill -SEGV \$\$
fi
exec sleep infinity
SCRIPT
chmod 0755 /usr/local/lib/clinic-box/ehr-chart
printf '[Unit]\nDescription=EHR chart renderer\n\n[Service]\nExecStart=/usr/local/lib/clinic-box/ehr-chart\n' > /etc/systemd/system/ehr-chart.service
systemctl daemon-reload"
  before=$(head_seq)
  inbox 'systemctl start ehr-chart.service'
  b=$(wait_bundle RB-SERVICE-001 resolved "$before" 60)
  jq -e '.incident.details.unit == "ehr-chart.service"' "$b" >/dev/null || die "$b is not the EHR's repair"
  [ "$(inbox 'systemctl is-active ehr-chart.service' || true)" = active ] || die "ehr-chart.service is not active after RB-SERVICE-001"
  # The line really is in the EHR's journal (so the greps below can fail) ...
  inbox "journalctl _SYSTEMD_UNIT=ehr-chart.service --no-pager -o cat | grep -qF '$PHI_MRN'" \
    || die "the EHR's patient line is not in its journal: the check below would prove nothing"
  # ... and systemd's account and the counts are in the bundle's artifacts.
  jq -e '[.artifacts[] | select(.filename == "service-app-output-before.txt" and .scrubbed == true)] | length == 1' "$b" >/dev/null \
    || die "$b has no scrubbed service-app-output-before.txt artifact"
  # The evidence store is a host directory; the state directory (outbox, receipts, guard
  # state) and the webhook sink's bodies are inside the box.
  for field in "$PHI_NAME" "$PHI_DOB" "$PHI_MRN" "$PHI_EMAIL" "$PHI_PHONE" "${PHI_PHONE#(555) }"; do
    hits=$(grep -rlF -- "$field" "$BOX/evidence" || true)
    hits+=$(inbox "grep -rlF -- '$field' /var/lib/msp/state /var/lib/webhook-sink 2>/dev/null || true")
    [ -z "$hits" ] || die "PHI boundary: '$field' found in: $hits"
  done
  ssh-keygen -Y verify -f "$KEYS/allowed_signers" -I msp-evidence -n msp-evidence -s "$b.sshsig" <"$b" >/dev/null \
    || die "ssh-keygen -Y verify failed for $b"
  openssl pkeyutl -verify -pubin -inkey "$KEYS/evidence-signing.pub.pem" -rawin -in "$b" -sigfile "$b.sig" >/dev/null \
    || die "openssl pkeyutl -verify failed for $b"
  note "PHI boundary: the EHR's patient line (name, DOB, MRN, e-mail, phone) is in no bundle, artifact, receipt, outbox file or webhook body; $(basename "$b") verifies (ssh-keygen, openssl)"
}

# ------------------------------------------------------------------ proof

verify_evidence() {
  local n
  n=$(bundles | wc -l)
  say "proof: verifying $n bundles inside the box and on the host"
  inbox '
    set -euo pipefail
    k=/etc/msp/signing-keys
    msp-agent evidence verify --keys "$k" /var/lib/msp/evidence
    for f in /var/lib/msp/evidence/*/*/EB-*.json; do
      ssh-keygen -Y verify -f "$k/allowed_signers" -I msp-evidence -n msp-evidence -s "$f.sshsig" < "$f" > /dev/null
      openssl pkeyutl -verify -pubin -inkey "$k/evidence-signing.pub.pem" -rawin -in "$f" -sigfile "$f.sig" > /dev/null
    done
  ' >"$BOX/verify-inside.txt" 2>&1 || { cat "$BOX/verify-inside.txt" >&2; die "verification inside the box failed"; }
  local f
  "$AGENT" evidence verify --keys "$KEYS" "$BOX/evidence" >"$BOX/verify-host.txt" 2>&1 \
    || { cat "$BOX/verify-host.txt" >&2; die "msp-agent evidence verify failed on the host"; }
  for f in "$BOX"/evidence/*/*/EB-*.json; do
    ssh-keygen -Y verify -f "$KEYS/allowed_signers" -I msp-evidence -n msp-evidence -s "$f.sshsig" <"$f" >/dev/null \
      || die "ssh-keygen -Y verify failed for $f"
    openssl pkeyutl -verify -pubin -inkey "$KEYS/evidence-signing.pub.pem" -rawin -in "$f" -sigfile "$f.sig" >/dev/null \
      || die "openssl pkeyutl -verify failed for $f"
  done
  # The chain is complete: sequences 1..n with no gap.
  jq -s 'map(.chain.sequence) | sort == [range(1; length + 1)]' "$BOX"/evidence/*/*/EB-*.json | grep -qx true \
    || die "the chain has a gap"
  note "all $n bundles verify inside the box and on the host (msp-agent, ssh-keygen, openssl); chain 1..$n"
}

collect() {
  install -d -m 0755 "$OUT"
  [ ! -e "$OUT/evidence" ] || die "$OUT/evidence exists; it is never overwritten"
  cp -a "$BOX/evidence" "$OUT/evidence"
  cp "$BOX/summary.tsv" "$OUT/box-summary.tsv"
  cp "$BOX/service.txt" "$OUT/box-service.txt"
  cp "$BOX/detections.tsv" "$OUT/box-detections.tsv"
  if [ -s "$BOX/forged.export" ]; then cp "$BOX/forged.export" "$OUT/box-forged-lines.export"; fi
  inbox 'journalctl -u msp-agent -o short-iso --no-pager' >"$OUT/box-agent-journal.txt" 2>/dev/null || true
}

# ------------------------------------------------------------------ main

run_box() {
  [ "$(id -u)" -eq 0 ] || { echo "clinic-box: needs root (unshare, mount, chroot)" >&2; exit 2; }
  local t
  for t in unshare nsenter chroot mount jq ssh-keygen openssl sha256sum; do
    command -v "$t" >/dev/null || { echo "clinic-box: $t is not installed" >&2; exit 2; }
  done
  [ -x "$AGENT" ] || { echo "clinic-box: --agent $AGENT is not executable" >&2; exit 2; }
  [ -r "$KEYS/evidence-signing.key" ] || { echo "clinic-box: no evidence-signing.key in $KEYS" >&2; exit 2; }
  prepare_rootfs
  BOX=$(mktemp -d /var/tmp/msp-clinic-box.XXXXXXXX)
  trap teardown EXIT
  : >"$BOX/summary.tsv"
  : >"$BOX/service.txt"
  : >"$BOX/detections.tsv"
  stage_agent
  stage_clinic
  stage_logins
  boot_box
  setup_clinic
  start_agent
  check_native_journal
  incident_restore_test
  incident_service_crash
  incident_cert_expiry
  incident_disk_full
  incident_job_enospc
  setup_logins
  incident_break_glass
  incident_login_burst
  incident_backup_nas_blip
  incident_backup_unreachable
  incident_backup_locked
  incident_backup_stale
  incident_cpu_hog
  phi_boundary
  service_restart_mid_runbook
  service_watchdog
  service_stop
  verify_evidence
  collect
  say "done: the six kinds of incident repaired and checked, evidence in $OUT/evidence"
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  case "$cmd" in
    prepare) prepare_rootfs; return ;;
    run) ;;
    *) usage ;;
  esac
  while [ $# -gt 0 ]; do
    case "$1" in
      --agent) AGENT=$2; shift 2 ;;
      --keys) KEYS=$2; shift 2 ;;
      --runbooks) RUNBOOKS=$2; shift 2 ;;
      --out) OUT=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  if [ -z "$AGENT" ] || [ -z "$KEYS" ] || [ -z "$RUNBOOKS" ] || [ -z "$OUT" ]; then usage; fi
  run_box
}

main "$@"
