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
# A live class (GPT2VIZ_TEACHER_KEY set) on more than one replica shares its state through Redis
# (app/class_store.py): unless GPT2VIZ_CLASS_STORE already names one (redis://host:port/db), the
# script starts Debian's redis-server on 127.0.0.1:REDIS_PORT (default 6379), keeping nothing on disk
# (a round's guesses live only in its memory), and gives the replicas GPT2VIZ_CLASS_STORE for it.
# With REDIS_PORT unset and a Redis already answering on 6379 (Debian's service), it uses that one.
set -euo pipefail
cd "$(dirname "$0")/.."

replicas=${REPLICAS:-2}
port=${PORT:-8501}
python=${PYTHON:-.venv/bin/python}
# at most 2 malloc arenas for each replica's many threads (gpt2viz/cli.py, MALLOC_ARENAS)
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
haproxy=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
export GPT2VIZ_BIND=${GPT2VIZ_BIND:-:$port}
say() { echo "gpt2viz class: $*"; }

[[ $replicas =~ ^[1-9][0-9]*$ ]] || { say "REPLICAS must be a whole number above 0, not '$replicas'" >&2; exit 2; }
[ -x "$haproxy" ] || { say "haproxy is missing: apt-get install haproxy (make class does)" >&2; exit 2; }
redis_answers() (  # a Redis on 127.0.0.1:$1 answers PING (bash's /dev/tcp, no client)
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3
    [ "${reply%$'\r'}" = +PONG ]
)
redis_port=  # set when this script starts the class's Redis
if [[ -n ${GPT2VIZ_TEACHER_KEY:-} && $replicas -gt 1 && -z ${GPT2VIZ_CLASS_STORE:-} && -z ${REDIS_PORT:-} ]] &&
        redis_answers 6379 2>/dev/null; then
    # Debian's package starts a system Redis on 6379 where systemd runs: the class uses it (its keys
    # all start gpt2viz:class:) rather than refuse the port
    export GPT2VIZ_CLASS_STORE="redis://127.0.0.1:6379/0"
    say "a Redis already answers on 127.0.0.1:6379: the live class keeps its state there (set REDIS_PORT= to start one of its own)"
elif [[ -n ${GPT2VIZ_TEACHER_KEY:-} && $replicas -gt 1 && -z ${GPT2VIZ_CLASS_STORE:-} ]]; then
    redis_port=${REDIS_PORT:-6379}
    redis=$(command -v redis-server || echo /usr/bin/redis-server)
    [[ $redis_port =~ ^[1-9][0-9]{0,4}$ ]] && ((redis_port < 65536)) ||
        { say "REDIS_PORT must be a port number (1 to 65535), not '$redis_port'" >&2; exit 2; }
    [ -x "$redis" ] || { say "redis-server is missing: apt-get install redis-server (make class does)" >&2; exit 2; }
fi

# PORT must be free (checked on every address, as HAProxy binds it), and so must the Redis port on
# 127.0.0.1 when the script starts Redis; the replicas get ports the system hands out, held together
# so that they differ from each other and from those.
ports=$("$python" - "$port" "$replicas" "$redis_port" <<'EOF'
import socket, sys
port, n, redis_port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
front = socket.socket()
try:
    front.bind(("", port))
except OSError as e:
    sys.exit(f"gpt2viz class: port {port} is taken ({e.strerror}): choose another with PORT=")
if redis_port:
    redis = socket.socket()
    try:
        redis.bind(("127.0.0.1", int(redis_port)))
    except OSError as e:
        sys.exit(f"gpt2viz class: port {redis_port} for the class's Redis is taken ({e.strerror}): choose "
                 "another with REDIS_PORT=, or set GPT2VIZ_CLASS_STORE=redis://host:port/db to a Redis "
                 "that runs already")
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
    say "stopped (the config and the logs are in $run)"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$redis_port" ]; then
    "$redis" --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$run/redis.log" 2>&1 &
    pids+=($!)
    redis_pid=$!
    deadline=$((SECONDS + 10))
    until redis_answers "$redis_port" 2>/dev/null; do
        kill -0 "$redis_pid" 2>/dev/null || { say "redis-server exited: see $run/redis.log" >&2; exit 1; }
        ((SECONDS < deadline)) || {
            say "redis-server did not answer PING on 127.0.0.1:$redis_port within 10 s: see $run/redis.log" >&2
            exit 1
        }
        sleep 0.1
    done
    export GPT2VIZ_CLASS_STORE="redis://127.0.0.1:$redis_port/0"
    say "Redis for the live class on 127.0.0.1:$redis_port (pid $redis_pid, nothing kept on disk, log $run/redis.log)"
elif [[ -n ${GPT2VIZ_TEACHER_KEY:-} && $replicas -gt 1 ]]; then
    say "the replicas share the live class through the Redis that GPT2VIZ_CLASS_STORE names"
fi

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
