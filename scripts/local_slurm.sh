#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, from Debian's slurm-wlm and munge,
# for the tests and for trying profiles/slurm without a cluster.
#
#   scripts/local_slurm.sh start    # idempotent; prints the line to export SLURM_CONF
#   scripts/local_slurm.sh status   # what runs, sinfo
#   scripts/local_slurm.sh stop     # stops the daemons it started (by their PID files)
#
#   eval "$(scripts/local_slurm.sh start)"   # then: snakemake --profile profiles/slurm
#
# Needs root (the daemons run as root) and `apt-get install slurm-wlm munge`.
# Everything lives under $MERGELAB_SLURM_DIR (default /tmp/mergelab-slurm): config,
# munge key and socket, state, logs, PID files, and the fake GPUs: gres entries
# whose device files are symlinks to /dev/null, so that `--gpus=k` is scheduled
# and counted and SLURM sets CUDA_VISIBLE_DEVICES, without a GPU. The one file
# outside it is the symlink /etc/slurm/slurm.conf -> that config (srun in a job
# reads the default path); start refuses to replace a real one, stop removes it.
#
# Settings (environment): MERGELAB_SLURM_DIR, MERGELAB_SLURM_GPUS (4),
# MERGELAB_SLURM_PORT (6917; slurmd uses the next port), MERGELAB_SLURM_MEM_MB
# (the machine's memory less 1 GiB).
set -euo pipefail

DIR=${MERGELAB_SLURM_DIR:-/tmp/mergelab-slurm}
GPUS=${MERGELAB_SLURM_GPUS:-4}
PORT=${MERGELAB_SLURM_PORT:-6917}
CONF=$DIR/slurm.conf
# srun inside a job (how the Snakemake executor starts the work) drops SLURM_CONF
# and reads the default path: link it to this cluster's config.
ETC_CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)

die() { echo "local_slurm: $*" >&2; exit 1; }

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
    mkdir -p "$DIR"/{state,spool,log,run,dev}
    local cpus mem i
    cpus=$(nproc)
    mem=${MERGELAB_SLURM_MEM_MB:-$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 1024 ))}
    for ((i = 0; i < GPUS; i++)); do ln -sfn /dev/null "$DIR/dev/gpu$i"; done
    cat > "$CONF" <<EOF
# Written by scripts/local_slurm.sh: one node, $GPUS fake GPUs, no accounting.
ClusterName=mergelab
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/run/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# Finished jobs stay visible to squeue and scontrol for a day: the executor's status
# command without accounting, and the tests count every job a run made, however long it took.
MinJobAge=86400
SchedulerParameters=sched_interval=1
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:$GPUS State=UNKNOWN
PartitionName=gpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
    if ((GPUS > 0)); then
        echo "NodeName=$NODE Name=gpu File=$DIR/dev/gpu[0-$((GPUS - 1))]" > "$DIR/gres.conf"
    else
        : > "$DIR/gres.conf"
    fi
    if [[ ! -s $DIR/munge.key ]]; then
        dd if=/dev/urandom of="$DIR/munge.key" bs=1 count=1024 status=none
    fi
    chmod 0400 "$DIR/munge.key"
    chmod 0700 "$DIR"
}

start() {
    [[ $(id -u) == 0 ]] || die "needs root (the daemons run as root)"
    for bin in munged slurmctld slurmd sinfo; do
        command -v "$bin" >/dev/null || die "$bin not found: apt-get install slurm-wlm munge"
    done
    export SLURM_CONF=$CONF
    if ! alive "$DIR/run/munged.pid"; then
        write_config
        munged --force --key-file="$DIR/munge.key" --socket="$DIR/run/munge.socket" \
            --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
            --seed-file="$DIR/run/munged.seed"
    fi
    [[ -f $CONF ]] || write_config
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then
        :
    elif [[ -e $ETC_CONF || -L $ETC_CONF ]]; then
        die "$ETC_CONF exists and is not this cluster's: refusing to replace another SLURM's config"
    else
        mkdir -p "$(dirname "$ETC_CONF")"
        ln -s "$CONF" "$ETC_CONF"
    fi
    alive "$DIR/run/slurmctld.pid" || slurmctld -f "$CONF"
    alive "$DIR/run/slurmd.pid" || slurmd -f "$CONF" -N "$NODE"
    # Wait (bounded) until the node takes jobs.
    local i state=""
    for ((i = 0; i < 60; i++)); do
        state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -1 || true)
        case $state in idle* | mix* | alloc*) break ;; esac
        sleep 0.5
    done
    case $state in
        idle* | mix* | alloc*) ;;
        *) die "node $NODE is not up (state '${state:-none}'); see $DIR/log/" ;;
    esac
    echo "export SLURM_CONF=$CONF"
}

stop() {
    local name pid i
    for name in slurmd slurmctld munged; do
        if alive "$DIR/run/$name.pid"; then
            pid=$(cat "$DIR/run/$name.pid")
            kill "$pid"
            for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$DIR/run/$name.pid"
    done
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then rm -f "$ETC_CONF"; fi
    # Forget jobs and the node state: the next start is a fresh cluster.
    rm -rf "$DIR/state" "$DIR/spool"
}

status() {
    local name
    for name in munged slurmctld slurmd; do
        if alive "$DIR/run/$name.pid"; then echo "$name: running ($(cat "$DIR/run/$name.pid"))"
        else echo "$name: stopped"; fi
    done
    if alive "$DIR/run/slurmctld.pid"; then SLURM_CONF=$CONF sinfo; fi
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
