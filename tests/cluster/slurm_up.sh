#!/usr/bin/env bash
# A real one-node SLURM on this host, for tests/cluster/test_slurm.py (issue: "a real SLURM in CI").
#
#   bash tests/cluster/slurm_up.sh [STATE_DIR]     # default /tmp/causalxai-slurm
#   export SLURM_CONF=STATE_DIR/slurm.conf         # what the test and sbatch/squeue read
#   bash tests/cluster/slurm_down.sh [STATE_DIR]   # stops the daemons this script started, by pid
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when they are missing (needs root
# and the package registry), writes slurm.conf and gres.conf for this host into STATE_DIR (nothing
# under /etc/slurm is replaced), then starts munged, slurmctld and slurmd and waits until the node
# is idle. Commands inside a job (the plugin's srun) read the default /etc/slurm/slurm.conf, not
# SLURM_CONF, so when /etc/slurm holds no slurm.conf yet, slurm.conf and gres.conf are linked
# there (and unlinked by slurm_down.sh); an existing one is never replaced. The node advertises
# one count-only GPU (GresTypes=gpu, Gres=gpu:1, File=/dev/null), so jobs that ask for --gpus=1
# are accepted and scheduled; there is no real GPU behind it, and the
# workflow's `device: auto` runs them on the CPU. Accounting is off, so the Snakemake plugin must
# poll with squeue (--slurm-status-command squeue); MinJobAge=600 keeps finished jobs visible to it.
set -euo pipefail

STATE=$(realpath -m "${1:-/tmp/causalxai-slurm}")
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))

need=()
for bin in slurmctld slurmd sbatch munged; do command -v "$bin" >/dev/null || need+=("$bin"); done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "slurm_up.sh: ${need[*]} missing and not root: install slurmctld slurmd slurm-client munge" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

if [[ -f "$STATE/pids" ]] && kill -0 $(cat "$STATE/pids") 2>/dev/null; then
    echo "slurm_up.sh: already running (pids $(tr '\n' ' ' <"$STATE/pids")); slurm_down.sh first" >&2
    exit 0
fi
rm -rf "$STATE" && mkdir -p "$STATE"/{ctld,spool,munge,log}
chmod 700 "$STATE/munge"

# munge: a fresh key for this run; the daemon runs as root with its files in STATE
dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$STATE/munge/munge.key"
MUNGE_SOCKET="$STATE/munge/munge.socket"

cat >"$STATE/slurm.conf" <<CONF
ClusterName=causalxai-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
GresTypes=gpu
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$STATE/gres.conf" <<CONF
AutoDetect=off
NodeName=$HOST Name=gpu File=/dev/null
CONF
export SLURM_CONF="$STATE/slurm.conf"
mkdir -p /etc/slurm
for f in slurm.conf gres.conf; do
    if [[ -L /etc/slurm/$f && $(readlink /etc/slurm/$f) == /tmp/*slurm*/$f ]]; then rm -f "/etc/slurm/$f"; fi
    if [[ ! -e /etc/slurm/$f ]]; then ln -s "$STATE/$f" "/etc/slurm/$f" && echo "/etc/slurm/$f" >>"$STATE/links"; fi
done
if [[ $(realpath /etc/slurm/slurm.conf) != "$STATE/slurm.conf" ]]; then
    echo "slurm_up.sh: /etc/slurm/slurm.conf belongs to another SLURM; jobs' srun would read it, not ours" >&2
    exit 1
fi

munged --force --key-file="$STATE/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/seed"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

for _ in $(seq 60); do
    [[ -s "$STATE/munge/munged.pid" && -s "$STATE/slurmctld.pid" && -s "$STATE/slurmd.pid" ]] && break
    sleep 0.5
done
cat "$STATE/munge/munged.pid" "$STATE/slurmctld.pid" "$STATE/slurmd.pid" >"$STATE/pids"

for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    [[ $state == idle* ]] && break
    sleep 1
done
if [[ $state != idle* ]]; then
    echo "slurm_up.sh: node $HOST not idle after 60 s (state '${state:-none}'); logs in $STATE/log" >&2
    tail -n 20 "$STATE"/log/*.log >&2 || true
    exit 1
fi
echo "SLURM_CONF=$SLURM_CONF"
echo "slurm_up.sh: one node $HOST ($CPUS CPUs, ${MEM_MB} MB, gres gpu:1) idle; pids $(tr '\n' ' ' <"$STATE/pids")"
