#!/usr/bin/env bash
# A SLURM cluster of NODES compute nodes on this one machine (Debian/Ubuntu, run as root):
#   local_slurm.sh up [NODES]   (`make slurm-up NODES=2`; NODES defaults to 2)
#   local_slurm.sh down         (`make slurm-down`)
#
# Topology (NODES=2; the README's "SLURM" section draws it):
#   head node = this machine's root network namespace: bridge fa-slurm0 10.213.0.1/24; slurmctld, in
#     UTS namespace /run/fast_ast_slurm/fa-head.uts (hostname fa-head), bound to 10.213.0.1:6817 only; munged (one key, one socket: every node shares this machine's filesystem),
#     and the clients (sbatch, squeue, scontrol; Hydra's submitit launcher; the tests).
#   compute node i = network namespace fa-node<i> (lo + eth0 10.213.0.<10+i>, the peer of fa-node<i>-h on
#     the bridge) and UTS namespace /run/fast_ast_slurm/fa-node<i>.uts (hostname fa-node<i>); its slurmd
#     and everything it starts (job steps, DDP ranks, gloo) live in both.
#   /etc/hosts names the head (fa-head) and the nodes; lines tagged "# fast_ast local_slurm".
# CommunicationParameters=NoCtldInAddrAny,NoInAddrAny make every daemon bind its own address, not
# 0.0.0.0: traffic stays on loopback and the links made here. Nothing else is used.
#
# Idempotent: when the cluster already runs with this configuration, `up` restarts only what is missing
# (e.g. the slurmd of a node that was killed) and returns once every node answers. A different NODES
# (or a changed configuration) tears the old cluster down first. `down` stops the daemons, deletes the
# namespaces, the bridge and the /etc/hosts lines, and forgets the scheduler's state (queued jobs too).
#
# Environment: SLURM_REAL_MEMORY_MB (memory each node offers to jobs, default 8000).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "local_slurm.sh: run as root (it installs packages, makes namespaces and starts daemons)" >&2
    exit 1
fi

ACTION=${1:-up}
NODES=${2:-${NODES:-2}}
if ! [[ $NODES =~ ^[1-9][0-9]?$ ]]; then
    echo "local_slurm.sh: NODES=$NODES: give a number of compute nodes from 1 to 99 (e.g. make slurm-up NODES=2)" >&2
    exit 1
fi

HEAD=fa-head                  # slurmctld's hostname (its own UTS namespace): it binds what this resolves to
SUBNET=10.213.0
HEAD_ADDR=$SUBNET.1
BRIDGE=fa-slurm0
UTS_DIR=/run/fast_ast_slurm   # a private mount holding the nodes' UTS namespaces
HOSTS_TAG="# fast_ast local_slurm"
CPUS=$(nproc)
REAL_MEMORY=${SLURM_REAL_MEMORY_MB:-8000}
CONF=/etc/slurm/slurm.conf
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm

node_name() { echo "fa-node$1"; }
node_addr() { echo "$SUBNET.$((10 + $1))"; }
uts_file() { echo "$UTS_DIR/$1.uts"; }

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

wanted_conf() {
    cat <<CONF
# Written by fast_ast/cluster/local_slurm.sh: $NODES compute nodes in network + UTS namespaces.
ClusterName=fast-ast-local
SlurmctldHost=$HEAD($HEAD_ADDR)
AuthType=auth/munge
# A requeued job waits cred_expire + 1 s before it may start again (default 120 s).
AuthInfo=cred_expire=10
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
# A node whose slurmd stops answering is DOWN after SlurmdTimeout s; its batch jobs are requeued.
SlurmdTimeout=10
JobRequeue=1
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR/%n
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
# A requeued or cancelled job's processes get SIGTERM, then SIGKILL after KillWait seconds.
KillWait=5
MinJobAge=300
CONF
    local i
    for i in $(seq "$NODES"); do
        echo "NodeName=$(node_name "$i") NodeAddr=$(node_addr "$i") CPUs=$CPUS RealMemory=$REAL_MEMORY State=UNKNOWN"
    done
    # LLN: a job goes to the least loaded node, so a sweep spreads over the nodes.
    local nodes
    nodes=$(for i in $(seq "$NODES"); do node_name "$i"; done | paste -sd,)
    echo "PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE LLN=YES State=UP"
}

# --- network, hostnames -------------------------------------------------------------------------

network_up() {
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    [[ $(ip addr show dev "$BRIDGE") == *"inet $HEAD_ADDR/24"* ]] || ip addr add "$HEAD_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    local i name
    for i in $(seq "$NODES"); do
        name=$(node_name "$i")
        [[ -e /run/netns/$name ]] || ip netns add "$name"
        ip -n "$name" link set lo up
        if ! ip link show "$name-h" >/dev/null 2>&1; then
            ip link add "$name-h" type veth peer name eth0 netns "$name"
        fi
        ip link set "$name-h" master "$BRIDGE" up
        [[ $(ip -n "$name" addr show dev eth0) == *"inet $(node_addr "$i")/24"* ]] || ip -n "$name" addr add "$(node_addr "$i")/24" dev eth0
        ip -n "$name" link set eth0 up
    done
}

hostnames_up() {
    if ! mountpoint -q "$UTS_DIR"; then
        mkdir -p "$UTS_DIR"
        mount --bind "$UTS_DIR" "$UTS_DIR"
        mount --make-private "$UTS_DIR"
    fi
    local i name file
    for name in "$HEAD" $(for i in $(seq "$NODES"); do node_name "$i"; done); do
        file=$(uts_file "$name")
        if ! [[ $(nsenter --uts="$file" hostname 2>/dev/null) == "$name" ]]; then
            touch "$file"
            unshare --uts="$file" hostname "$name"
        fi
    done
    local entries kept
    entries=$(printf '%s %s %s\n' "$HEAD_ADDR" "$HEAD" "$HOSTS_TAG"
              for i in $(seq "$NODES"); do printf '%s %s %s\n' "$(node_addr "$i")" "$(node_name "$i")" "$HOSTS_TAG"; done)
    kept=$(grep -vF "$HOSTS_TAG" /etc/hosts || true)
    # /etc/hosts may be a bind mount: rewrite it in place, never replace the file.
    printf '%s\n%s\n' "$kept" "$entries" > /etc/hosts
}

network_down() {
    local ns
    for ns in $(ip netns list | awk '/^fa-node[0-9]+/ {print $1}'); do
        ip netns delete "$ns"  # its eth0 goes with it, and so does the bridge side fa-node<i>-h
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
    if mountpoint -q "$UTS_DIR"; then
        local file
        for file in "$UTS_DIR"/*.uts; do
            [[ -e $file ]] || continue
            umount "$file" 2>/dev/null || true
        done
        umount "$UTS_DIR"
    fi
    rm -rf "$UTS_DIR"
    local kept
    kept=$(grep -vF "$HOSTS_TAG" /etc/hosts || true)
    printf '%s\n' "$kept" > /etc/hosts
}

# --- daemons --------------------------------------------------------------------------------------

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

stop_pidfile() {  # pid file
    [[ -f $1 ]] || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}

stop_node() {  # node name: every process in its network namespace (slurmd, job steps)
    [[ -e /run/netns/$1 ]] || return 0
    local pids
    pids=$(ip netns pids "$1")
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for _ in $(seq 50); do [[ -z $(ip netns pids "$1") ]] && break; sleep 0.1; done
    pids=$(ip netns pids "$1")
    # shellcheck disable=SC2086
    [[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
    rm -f "/run/slurmd-$1.pid"
}

slurmd_running() {  # node name
    local pidfile=/run/slurmd-$1.pid
    [[ -f $pidfile ]] && [[ " $(ip netns pids "$1" 2>/dev/null | tr '\n' ' ') " == *" $(cat "$pidfile") "* ]]
}

start_daemons() {
    mkdir -p "$STATE_DIR" "$LOG_DIR"
    if ! [[ $(scontrol ping 2>/dev/null) == *UP* ]]; then
        stop_pidfile /run/slurmctld.pid
        nsenter --uts="$(uts_file "$HEAD")" slurmctld
        for _ in $(seq 100); do [[ $(scontrol ping 2>/dev/null) == *UP* ]] && break; sleep 0.1; done
    fi
    local i name
    for i in $(seq "$NODES"); do
        name=$(node_name "$i")
        mkdir -p "$SPOOL_DIR/$name"
        if ! slurmd_running "$name"; then
            nsenter --net="/run/netns/$name" --uts="$(uts_file "$name")" slurmd -N "$name"
        fi
    done
}

wait_for_nodes() {
    local i name state up
    for _ in $(seq 150); do
        up=0
        for i in $(seq "$NODES"); do
            name=$(node_name "$i")
            state=$(sinfo -h -n "$name" -o %T 2>/dev/null | head -n1 || true)
            case $state in
                idle*|mixed*|allocated*|completing*) up=$((up + 1)) ;;
                down*|drain*) scontrol update NodeName="$name" State=RESUME 2>/dev/null || true ;;
            esac
        done
        if [[ $up -eq $NODES ]]; then
            echo "local_slurm.sh: $NODES nodes up: $(sinfo -h -N -o '%N=%T' | tr '\n' ' ')($CPUS CPUs each, partition debug, head $HEAD $HEAD_ADDR)"
            return 0
        fi
        sleep 0.2
    done
    echo "local_slurm.sh: not every node came up: $(sinfo -h -N -o '%N=%T' 2>/dev/null | tr '\n' ' '); see $LOG_DIR/" >&2
    exit 1
}

down() {
    local ns
    for ns in $(ip netns list | awk '/^fa-node[0-9]+/ {print $1}'); do stop_node "$ns"; done
    stop_pidfile /run/slurmctld.pid
    stop_pidfile /run/slurmd.pid  # the one-node cluster this script used to start
    network_down
    rm -rf "$STATE_DIR" "$SPOOL_DIR"
    rm -f "$CONF"
    stop_pidfile /run/munge/munged.pid
    echo "local_slurm.sh: cluster down"
}

up() {
    install_packages
    local wanted
    wanted=$(wanted_conf)
    if ! [[ -f $CONF && "$(cat "$CONF")" == "$wanted" ]]; then
        [[ -f $CONF ]] && down >/dev/null
        mkdir -p /etc/slurm
        printf '%s\n' "$wanted" > "$CONF"
    fi
    network_up
    hostnames_up
    start_munge
    start_daemons
    wait_for_nodes
}

case $ACTION in
    up) up ;;
    down) down ;;
    *) echo "local_slurm.sh: unknown action '$ACTION': use 'up [NODES]' or 'down'" >&2; exit 1 ;;
esac
