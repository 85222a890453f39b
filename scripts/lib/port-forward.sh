# `kubectl port-forward` to a Service (or a pod) of the deployed system, for the
# scripts that check it from outside (k8s-smoke.sh, test-cluster.sh).
# Sourced, not run; the caller's `die` reports failures and
# `stop_port_forwards` (run it on exit) ends them.

PF_PIDS=()
stop_port_forwards() {
    for pid in ${PF_PIDS[@]+"${PF_PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
}

# port_forward SERVICE REMOTE_PORT: starts the forward in the background
# and sets PF_ADDR to the local address. Not run in $(...), so the PID
# lands in this shell's PF_PIDS. SERVICE may name another resource
# (deploy/task-api: one of its pods).
port_forward() {
    local svc=$1 remote=$2 local_port log
    case $svc in */*) ;; *) svc=svc/$svc ;; esac
    local_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    log=$(mktemp)
    kubectl -n "${NAMESPACE:-todo}" port-forward "$svc" "$local_port:$remote" >"$log" 2>&1 &
    PF_PIDS+=($!)
    for _ in $(seq 1 50); do
        if grep -q "Forwarding from" "$log"; then
            PF_ADDR="127.0.0.1:$local_port"
            return 0
        fi
        sleep 0.2
    done
    cat "$log" >&2
    die "port-forward to $svc did not come up"
}
