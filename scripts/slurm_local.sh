#!/usr/bin/env bash
# A one-node Slurm on this machine, to try the cluster path (hydra/launcher=slurm) without a
# cluster, and for the tests marked `slurm`.
#
#   bash scripts/slurm_local.sh start    # install Slurm if missing, configure, start, wait for idle
#   bash scripts/slurm_local.sh status   # one line: up (node state) or down; exit 0 when up
#   bash scripts/slurm_local.sh stop     # stop every daemon it started
#
# Runs as root (as CI does). The node has this machine's real cores and memory; no cgroups
# (proctrack/linuxproc, task/none). Accounting goes through slurmdbd to a local MariaDB, as on a
# real cluster: submitit follows its jobs with `sacct`, and without it a cancelled job would look
# queued for ever. Idempotent: `start` on a running Slurm only checks it, `stop` on a stopped one
# does nothing. When it cannot, it says why in one line and exits non-zero.
set -uo pipefail

CONF_DIR=/etc/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
PARTITION=${SLURM_LOCAL_PARTITION:-local}
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}
DAEMONS="slurmd slurmctld slurmdbd mariadbd munged"

fail() { echo "slurm_local: $*" >&2; exit 1; }

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n1; }

wait_for() {  # wait_for <what> <command...>: retry the command for WAIT_S seconds
    local what=$1; shift
    for _ in $(seq 1 "$WAIT_S"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    fail "$what did not answer in ${WAIT_S}s (see $LOG_DIR)"
}

install_packages() {
    local tool missing=0
    for tool in slurmctld slurmd slurmdbd munged mariadbd; do
        command -v "$tool" >/dev/null || missing=1
    done
    [ "$missing" = 0 ] && return 0
    [ "$(id -u)" = 0 ] || fail "installing Slurm needs root (run as root, or install slurm-wlm slurmdbd munge mariadb-server)"
    command -v apt-get >/dev/null || fail "Slurm is not installed and there is no apt-get to install slurm-wlm slurmdbd munge mariadb-server"
    { DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server; } \
        >/tmp/slurm_local_apt.log 2>&1 \
        || fail "apt-get install slurm-wlm slurmdbd munge mariadb-server failed (see /tmp/slurm_local_apt.log)"
}

write_config() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
    cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by scripts/slurm_local.sh: one node, this machine.
ClusterName=transferlab
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits cred_expire + 1 s before it may start again (Slurm default 120 s).
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Look at pending jobs every second or two (defaults 30 s and 60 s): a requeued job starts as soon
# as its begin time has passed, instead of at the next periodic pass.
SchedulerParameters=bf_interval=1,sched_interval=2
MpiDefault=none
JobRequeue=1
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
# SIGKILL 5 s after the SIGTERM of a cancel, requeue or time limit (Slurm default 30 s).
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF_DIR/slurmdbd.conf" <<EOF
# Written by scripts/slurm_local.sh: accounting in the local MariaDB, over its socket, as root.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
EOF
    chmod 600 "$CONF_DIR/slurmdbd.conf"
}

start_munge() {
    pgrep -x munged >/dev/null && return 0
    [ -s /etc/munge/munge.key ] || mungekey -c >/dev/null 2>&1 || fail "no munge key, and mungekey could not make one"
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
}

start_accounting() {
    if ! pgrep -x mariadbd >/dev/null; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null 2>&1 \
            || fail "mariadb-install-db could not create the database folder"
        nohup mariadbd --user=mysql --bind-address=127.0.0.1 >"$LOG_DIR/mariadbd.log" 2>&1 &
    fi
    wait_for MariaDB mariadb -e 'select 1'
    pgrep -x slurmdbd >/dev/null || /usr/sbin/slurmdbd || fail "slurmdbd did not start (see $LOG_DIR/slurmdbd.log)"
    wait_for slurmdbd sacctmgr -n list cluster
}

cancel_leftover_jobs() {
    # Slurm was down, so no job it lists can still have processes: these came back from the saved
    # state of an earlier start (a machine stopped mid-sweep) and would hold the node's cores.
    local jobs
    wait_for slurmctld squeue -h
    jobs=$(squeue -h -o '%i' | xargs)
    [ -z "$jobs" ] && return 0
    # shellcheck disable=SC2086
    scancel $jobs || fail "could not cancel the jobs left from an earlier start: $jobs"
    echo "slurm_local: cancelled jobs left from an earlier start: $jobs"
}

start() {
    case "$(node_state)" in
        idle|mixed|allocated) echo "slurm_local: already up (node $(node_state))"; return 0 ;;
    esac
    install_packages
    write_config
    start_munge
    start_accounting
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld -i || fail "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd || fail "slurmd did not start (see $LOG_DIR/slurmd.log)"
    cancel_leftover_jobs
    local state=""
    for _ in $(seq 1 "$WAIT_S"); do
        state=$(node_state)
        if [ "$state" = idle ]; then
            echo "slurm_local: up, node $(hostname -s) idle in partition $PARTITION ($(nproc) CPUs)"
            return 0
        fi
        case "$state" in down*|drain*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 ;; esac
        sleep 1
    done
    fail "node not idle after ${WAIT_S}s (state '${state:-none}'; see $LOG_DIR)"
}

running() {
    local name
    for name in $DAEMONS; do pgrep -x "$name" >/dev/null && echo "$name"; done
}

stop() {
    local name left=""
    for name in $DAEMONS; do pkill -x "$name" 2>/dev/null; done
    for _ in $(seq 1 "$WAIT_S"); do
        left=$(running)
        [ -z "$left" ] && break
        sleep 0.5
    done
    [ -z "$left" ] || fail "still running after stop: $(echo "$left" | tr '\n' ' ')"
    echo "slurm_local: stopped"
}

status() {
    local state
    state=$(node_state)
    if [ -n "$state" ]; then
        echo "slurm_local: up (node $state)"
    else
        echo "slurm_local: down"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) fail "unknown command '${1:-}'; choose one of: start, stop, status" ;;
esac
