#!/usr/bin/env bash
# A class on several replicas: REPLICAS `streamlit run` processes of the app on free local ports,
# and HAProxy in front of them on PORT, with deploy/haproxy.cfg's `server` lines replaced by one
# per replica. Ctrl-C (or SIGTERM) stops them all. `make class REPLICAS=N PORT=P` runs it.
#
#   REPLICAS=2 PORT=8501 bash deploy/class.sh
#
# Every replica runs with this script's environment (GPT2VIZ_MODEL, GPT2VIZ_RECORDING_BUDGET_MB, ...),
# plus GPT2VIZ_PUBLIC_URL when it is unset: http://<this machine's network address>:PORT, so that
# share links name HAProxy's address, not a replica's (which listens on 127.0.0.1 only).
# Also read: PYTHON (default .venv/bin/python), HAPROXY (default: haproxy on the PATH, else
# /usr/sbin/haproxy), GPT2VIZ_BIND (HAProxy's address, default every address on PORT) and
# CLASS_RUN_DIR (the rendered config and each replica's log; default a new folder under /tmp,
# kept after the class for reading).
set -euo pipefail
cd "$(dirname "$0")/.."

replicas=${REPLICAS:-2}
port=${PORT:-8501}
python=${PYTHON:-.venv/bin/python}
haproxy=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
export GPT2VIZ_BIND=${GPT2VIZ_BIND:-:$port}
say() { echo "gpt2viz class: $*"; }

[[ $replicas =~ ^[1-9][0-9]*$ ]] || { say "REPLICAS must be a whole number above 0, not '$replicas'" >&2; exit 2; }
[ -x "$haproxy" ] || { say "haproxy is missing: apt-get install haproxy (make class does)" >&2; exit 2; }

# PORT must be free (checked on every address, as HAProxy binds it); the replicas get ports the
# system hands out, held together so that they differ from each other and from PORT.
ports=$("$python" - "$port" "$replicas" <<'EOF'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
front = socket.socket()
try:
    front.bind(("", port))
except OSError as e:
    sys.exit(f"gpt2viz class: port {port} is taken ({e.strerror}): choose another with PORT=")
held = [socket.socket() for _ in range(n)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))
EOF
)
read -r -a ports <<<"$ports"

if [ -z "${GPT2VIZ_PUBLIC_URL:-}" ]; then  # the address the app's share links take (app/share.py)
    host=$("$python" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.1", 9))  # sends nothing: asks which address this machine would send from
print(s.getsockname()[0])' 2>/dev/null) || host=
    if [[ -n $host && $host != 127.* ]]; then export GPT2VIZ_PUBLIC_URL="http://$host:$port"; fi
fi

run=${CLASS_RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/gpt2viz-class.XXXXXX")}
mkdir -p "$run"
pids=()

stop() {
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 100); do  # up to 10 s to finish, then killed
            alive=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            ((alive)) || break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait || true
    fi
    say "stopped (the config and the replicas' logs are in $run)"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The config: deploy/haproxy.cfg without its `server` lines (the backend is its last section),
# then one line per replica.
grep -v '^[[:space:]]*server[[:space:]]' deploy/haproxy.cfg >"$run/haproxy.cfg"
for i in $(seq "$replicas"); do
    p=${ports[i-1]}
    # no file watcher: the code does not change during a class, and N of them watching the tree
    # cost inotify watches (and tell every browser "source file changed" if someone edits it)
    "$python" -m streamlit run streamlit_app.py --server.headless true --server.port "$p" \
        --server.address 127.0.0.1 --server.fileWatcherType none >"$run/replica-r$i.log" 2>&1 &
    pids+=($!)
    say "replica r$i on 127.0.0.1:$p (pid $!, log $run/replica-r$i.log)"
    printf '    server r%d 127.0.0.1:%d cookie r%d\n' "$i" "$p" "$i" >>"$run/haproxy.cfg"
done
"$haproxy" -c -q -f "$run/haproxy.cfg"

healthy() (  # an HTTP GET of the replica's health endpoint answers 200 (bash's /dev/tcp, no curl)
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET /_stcore/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    read -r -t 5 _ status _ <&3
    [ "$status" = 200 ]
)
for i in $(seq "$replicas"); do
    until healthy "${ports[i-1]}" 2>/dev/null; do
        kill -0 "${pids[i-1]}" 2>/dev/null || { say "replica r$i exited: see $run/replica-r$i.log" >&2; exit 1; }
        sleep 0.5
    done
done

"$haproxy" -db -f "$run/haproxy.cfg" &
haproxy_pid=$!
pids+=("$haproxy_pid")
say "HAProxy (pid $haproxy_pid) on $GPT2VIZ_BIND: students open ${GPT2VIZ_PUBLIC_URL:-http://<this machine>:$port}/ (here: http://localhost:$port/)"
say "$replicas replicas, each browser pinned to one by the gpt2viz_replica cookie; Ctrl-C stops them all"
wait "$haproxy_pid"  # a replica that dies leaves the others serving; HAProxy ending ends the class
