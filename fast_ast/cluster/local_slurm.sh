#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (Debian/Ubuntu, run as root): `make slurm-up`.
#
# Installs munge, slurmctld, slurmd and slurm-client with apt-get when missing, writes
# /etc/slurm/slurm.conf for this host (all its CPUs, partition "debug") and starts munged (as user
# munge), slurmctld and slurmd. Idempotent: when the cluster already answers with this configuration
# it only checks the node is up (a second or two). CI (.ci/run) calls it before `make test` so that
# tests/test_slurm.py runs real sweeps through `hydra/launcher=slurm`.
#
# Environment: SLURM_REAL_MEMORY_MB (node memory offered to jobs, default 20000).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "local_slurm.sh: run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

HOST=$(hostname -s)
CPUS=$(nproc)
REAL_MEMORY=${SLURM_REAL_MEMORY_MB:-20000}
CONF=/etc/slurm/slurm.conf
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sinfo >/dev/null || missing+=(slurm-client)
    [[ ${#missing[@]} -eq 0 ]] && return
    echo "local_slurm.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Debian's packages start their services on install where systemd runs; here we start them below.
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

write_conf() {
    mkdir -p /etc/slurm "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
    local wanted
    wanted=$(cat <<CONF
# Written by fast_ast/cluster/local_slurm.sh: a one-node cluster for tests and local sweeps.
ClusterName=fast-ast-local
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
# A requeued or cancelled job's processes get SIGTERM, then SIGKILL after KillWait seconds.
KillWait=5
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEMORY State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
)
    if [[ -f $CONF && "$(cat "$CONF")" == "$wanted" ]]; then
        return 1  # unchanged
    fi
    printf '%s\n' "$wanted" > "$CONF"
    return 0
}

start_munge() {
    mkdir -p /run/munge /etc/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    chmod 0700 /etc/munge /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    fi
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        runuser -u munge -- munged
        for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
        echo "local_slurm.sh: munged did not start (see /var/log/munge/munged.log)" >&2
        exit 1
    fi
}

stop_daemon() {  # pid file
    [[ -f $1 ]] || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$1"
}

node_state() {
    sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n1
}

install_packages
changed=0
write_conf && changed=1
start_munge

if [[ $changed -eq 1 ]]; then
    stop_daemon /run/slurmd.pid
    stop_daemon /run/slurmctld.pid
fi
if ! scontrol ping 2>/dev/null | grep -q UP; then
    slurmctld
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
fi
if ! { [[ -f /run/slurmd.pid ]] && kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null; }; then
    slurmd
fi

for _ in $(seq 100); do
    state=$(node_state)
    case $state in
        idle*|mixed*|allocated*|completing*) echo "local_slurm.sh: node $HOST $state ($CPUS CPUs, partition debug)"; exit 0 ;;
        down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
done
echo "local_slurm.sh: node $HOST did not come up (state '${state:-unknown}'); see $LOG_DIR/" >&2
exit 1
