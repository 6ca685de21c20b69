#!/usr/bin/env bash
# Stop the daemons tests/cluster/slurm_up.sh started (munged, slurmctld, slurmd), by their pids.
set -uo pipefail
STATE=$(realpath -m "${1:-/tmp/causalxai-slurm}")
[[ -f "$STATE/pids" ]] || { echo "slurm_down.sh: nothing started in $STATE"; exit 0; }
pids=$(cat "$STATE/pids")
kill $pids 2>/dev/null
for _ in $(seq 20); do
    kill -0 $pids 2>/dev/null || break
    sleep 0.5
done
kill -9 $pids 2>/dev/null
rm -f "$STATE/pids"
if [[ -f "$STATE/links" ]]; then
    while read -r link; do rm -f "$link"; done <"$STATE/links"
    rm -f "$STATE/links"
fi
echo "slurm_down.sh: stopped $(echo $pids)"
