#!/usr/bin/env bash
# tuneflow's asynchronous workers on a real, one-node SLURM: Debian's slurmctld + slurmd + munge, on
# loopback only, inside a network namespace this script creates (nothing listens outside it). Needs root
# and `apt-get install -y slurmd slurmctld slurm-client munge`; Python with tuneflow[slurm] installed.
#
#   sudo benchmarks/slurm_one_node.sh [PYTHON]      # prints what it ran and the study's trials
#
# Four runs: (1) 2 workers through submitit's SLURM executor (one sbatch array), exactly n_trials;
# (2) the same with one worker scancel'ed mid-trial: its trial is retried from its heartbeat by the other;
# (3) a relative SQLite path refused in one line; (4) throughput with 1 and 2 workers: 16 trials of 2 s
# (20 epochs of 0.1 s waiting, no pruning, so every trial costs the same), trials per minute over the
# study's span (first trial's start to last trial's end, from Optuna) and idle slot time. Without slurmdbd, `sacct` sees no job: submitit then
# learns a job ended from its result file, and a scancel'ed job is given up once the study is done.
set -euo pipefail
PYTHON=${1:-python3}
if [ "${TUNEFLOW_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env TUNEFLOW_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
# Slurm resolves addresses with AI_ADDRCONFIG, which wants one address besides 127.0.0.1: a second one on
# this namespace's loopback (it reaches nothing); the daemons bind 127.0.0.1 only (NoInAddrAny).
ip address add 10.254.254.1/32 dev lo
WORK=$(mktemp -d /tmp/tuneflow-slurm-XXXXXX)
chmod 755 "$WORK"
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT
mkdir -p "$WORK"/{state,spool,munge,log,project}

# munge: a key of this run, its socket in this run's folder.
mungekey -c -k "$WORK/munge/munge.key" >/dev/null 2>&1 || dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge/munge.key"
SOCKET="$WORK/munge/munge.socket"
munged --force --key-file="$WORK/munge/munge.key" --socket="$SOCKET" --pid-file="$WORK/munged.pid" \
  --log-file="$WORK/log/munged.log" --seed-file="$WORK/munge/seed"

CPUS=$(nproc)
cat > "$WORK/slurm.conf" <<EOF
ClusterName=tuneflow
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
AccountingStorageType=accounting_storage/none
CommunicationParameters=NoInAddrAny
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$WORK/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N localhost
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
echo "== $(date -u +%FT%TZ) one-node SLURM $(sinfo -V) in a network namespace: $(sinfo -h -o '%P %D %c %T')"
ip -brief address

cd "$WORK/project"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
STUDY_ARGS=(+arch=quadratic -m params.seconds_per_epoch=0.1 tracking.log_model=false hydra/sweeper/pruner=none
            "hydra.sweeper.root_dir=$WORK/project/mlruns" hydra.sweeper.workers.engine=slurm hydra.sweeper.workers.n=2
            +hydra.sweeper.workers.slurm.timeout_min=30)

trials() {
  "$PYTHON" - "$WORK/project/mlruns/optuna.db" "$1" <<'PY'
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[2], storage=f"sqlite:///{sys.argv[1]}")
for t in study.trials:
    retry = t.system_attrs.get("failed_trial")
    print(f"  trial {t.number}: {t.state.name}" + (f" (retry of {retry})" if retry is not None else ""))
states = [t.state.name for t in study.trials]
print(f"  {states.count('COMPLETE')} COMPLETE, {states.count('FAIL')} FAIL, {len(states)} trials")
PY
}

echo "== 1. two asynchronous workers, one sbatch array, n_trials=6"
began=$(date +%s)
"$PYTHON" -m tuneflow "${STUDY_ARGS[@]}" hydra.sweeper.n_trials=6 hydra.sweeper.study_name=slurm-two 2>&1 | grep -v "^\s*$" | tail -6
echo "  exit ${PIPESTATUS[0]} after $(( $(date +%s) - began )) s"
trials slurm-two

echo "== 2. the same, one worker scancel'ed mid-trial (heartbeats every 2 s)"
"$PYTHON" -m tuneflow "${STUDY_ARGS[@]}" hydra.sweeper.n_trials=6 hydra.sweeper.study_name=slurm-kill \
  hydra.sweeper.heartbeat_interval=2 > "$WORK/log/kill.out" 2>&1 &
driver=$!
victim=""
for _ in $(seq 240); do
  victim=$("$PYTHON" - "$WORK/project/mlruns/optuna.db" <<'PY' 2>/dev/null || true
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="slurm-kill", storage=f"sqlite:///{sys.argv[1]}")
print(next((t.number for t in study.trials if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2), ""))
PY
)
  [ -n "$victim" ] && break
  sleep 1
done
workers_dir=$(ls -td "$WORK"/project/multirun/*/*/.workers | head -1)
log=$(grep -l "trial $victim started in this worker" "$workers_dir"/*_log.out | head -1)
task=$(basename "$log" | cut -d_ -f1,2)
echo "  trial $victim in training in array task $task; squeue: $(squeue -h -o '%i %T' | tr '\n' ' ')"
echo "  scancel $task"
scancel "$task"
set +e; wait $driver; code=$?; set -e
grep -v "^\s*$" "$WORK/log/kill.out" | grep -E "worker|study|error" | tail -6
echo "  exit $code"
trials slurm-kill

echo "== 3. a relative SQLite path on SLURM"
set +e
"$PYTHON" -m tuneflow +arch=quadratic -m hydra.sweeper.workers.engine=slurm 2>&1 | tail -2
echo "  exit ${PIPESTATUS[0]}"

echo "== 4. throughput: 16 trials of 2 s, 1 and 2 workers (one sbatch array each)"
span() {
  "$PYTHON" - "$WORK/project/mlruns/optuna.db" "$1" "$2" <<'PY'
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[2], storage=f"sqlite:///{sys.argv[1]}")
done = [t for t in study.trials if t.state.name == "COMPLETE"]
span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
slots = int(sys.argv[3])
print(f"  {slots} worker(s): {len(done)} trials in {span:.1f} s = {60 * len(done) / span:.1f} trials/min, "
      f"idle slot time {slots * span - busy:.1f} s")
PY
}
THROUGHPUT_ARGS=(+arch=quadratic -m params.seconds_per_epoch=0.1 tracking.log_model=false hydra/sweeper/pruner=none
                 "hydra.sweeper.root_dir=$WORK/project/mlruns" hydra.sweeper.workers.engine=slurm
                 +hydra.sweeper.workers.slurm.timeout_min=30 hydra.sweeper.n_trials=16)
for n in 1 2; do
  "$PYTHON" -m tuneflow "${THROUGHPUT_ARGS[@]}" hydra.sweeper.workers.n=$n hydra.sweeper.study_name=slurm-rate-$n \
    > "$WORK/log/rate-$n.out" 2>&1 || { echo "  $n worker(s): exit $?"; tail -3 "$WORK/log/rate-$n.out"; }
  span slurm-rate-$n $n
done
