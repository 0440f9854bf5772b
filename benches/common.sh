# Shared by benches/run and benches/flood (sourced, not run): the set-up of a
# benchmark instance.

# wrk, installed with apt-get if missing.
ensure_wrk() {
  if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
  fi
}

# A fresh master key and service key (SERVICE_KEY), quiet logs, and the abuse
# limits lifted: a benchmark is a flood by design.
bench_env() {
  export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} RUST_LOG=warn
  export TENANT_JWT_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
  export SERVICE_KEY="bench-service-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export TENANT_JWT_SERVICE_KEYS="$SERVICE_KEY"
  export TENANT_JWT_LOGIN_LIMIT_PER_IP=100000000 TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT_IP=100000000
  export TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT=100000000 TENANT_JWT_INTROSPECTION_LIMIT_PER_KEY=100000000
  export TENANT_JWT_HASH_QUEUE=100000 TENANT_JWT_FAILED_VERIFICATION_LIMIT_PER_IP=100000000
}

# Waits up to 10 s for the instance at $1 to be ready; else shows its log ($2) and exits.
wait_ready() {
  for _ in $(seq 1 100); do
    curl -sf "$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "the instance at $1 did not become ready:" >&2
  cat "$2" >&2
  exit 1
}

# Creates tenant `bench` and its user `bench` through the instance at $1 and
# prints an access token of that user.
seed_bench_user() {
  curl -sf -X POST "$1/v1/tenants" -H "Authorization: Bearer $SERVICE_KEY" -H 'Content-Type: application/json' \
    -d '{"slug":"bench","name":"Benchmark"}' >/dev/null
  curl -sf -X POST "$1/v1/tenants/bench/users" -H "Authorization: Bearer $SERVICE_KEY" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench-password-1"}' >/dev/null
  curl -sf -X POST "$1/v1/tenants/bench/login" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench-password-1"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}

# Creates user $2 in tenant `bench` (through the instance at $1); prints an
# access token of theirs.
seed_bench_member() {
  curl -sf -X POST "$1/v1/tenants/bench/users" -H "Authorization: Bearer $SERVICE_KEY" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$2\",\"password\":\"bench-password-1\"}" >/dev/null
  curl -sf -X POST "$1/v1/tenants/bench/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$2\",\"password\":\"bench-password-1\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}

# Gives user $2 (default `bench`) of tenant `bench` (through the instance at
# $1) 10 roles of 20 patterns each, `r<i>` granting `area<i>:action<j>` and
# `area<i>:*`.
seed_bench_roles() {
  local user roles permissions
  user=$(curl -sf "$1/v1/tenants/bench/users" -H "Authorization: Bearer $SERVICE_KEY" |
    NAME="${2:-bench}" python3 -c 'import json, os, sys; print(next(u["id"] for u in json.load(sys.stdin)["users"] if u["username"] == os.environ["NAME"]))')
  for i in $(seq 0 9); do
    permissions=$(python3 -c "import json; print(json.dumps([f'area$i:action{j}' for j in range(19)] + ['area$i:*']))")
    curl -sf -X POST "$1/v1/tenants/bench/roles" -H "Authorization: Bearer $SERVICE_KEY" \
      -H 'Content-Type: application/json' -d "{\"name\":\"r$i\",\"permissions\":$permissions}" >/dev/null
  done
  roles=$(python3 -c 'import json; print(json.dumps([f"r{i}" for i in range(10)]))')
  curl -sf -X PUT "$1/v1/tenants/bench/users/$user/roles" -H "Authorization: Bearer $SERVICE_KEY" \
    -H 'Content-Type: application/json' -d "{\"roles\":$roles}" >/dev/null
}

# The wrk script that logs user `bench` in, written to $1.
# write_login_lua FILE [USERNAME [PASSWORD]]: a wrk script that logs in
# (by default as the bench user, with its password).
write_login_lua() {
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '{"username":"${2:-bench}","password":"${3:-bench-password-1}"}'
wrk.headers["Content-Type"] = "application/json"
LUA
}

# An awk function: a wrk latency ("812.00us", "3.41ms", "1.02s") in milliseconds.
WRK_MS='function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }'

# The hot routes benches/ratio and benches/profile measure, through the
# instance at $1, with wrk scripts written into $2: tenant `bench` with user
# `bench` (no role: the rows as before roles existed) and user `holder` (10
# roles of 20 patterns: the check, and introspection listing them), and a
# stored credential. Sets HOT_LABELS, HOT_SCRIPTS and HOT_PATHS, one entry
# per route, /healthz first.
hot_routes() {
  local url=$1 work=$2 token holder stored
  token=$(seed_bench_user "$url")
  holder=$(seed_bench_member "$url" holder)
  seed_bench_roles "$url" holder
  stored=$(curl -sf -X POST "$url/v1/service-credentials" -H "Authorization: Bearer $SERVICE_KEY" \
    -H 'Content-Type: application/json' -d '{"name":"hot routes","scopes":["introspect"]}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
  # file method bearer [body content-type]
  wrk_script() {
    {
      echo "wrk.method = \"$2\""
      echo "wrk.headers[\"Authorization\"] = \"Bearer $3\""
      if [ -n "${4:-}" ]; then
        echo "wrk.body = '$4'"
        echo "wrk.headers[\"Content-Type\"] = \"$5\""
      fi
    } >"$work/$1.lua"
  }
  : >"$work/healthz.lua"
  wrk_script me GET "$token"
  wrk_script introspect POST "$SERVICE_KEY" "token=$token" application/x-www-form-urlencoded
  wrk_script stored POST "$stored" "token=$token" application/x-www-form-urlencoded
  wrk_script holder POST "$SERVICE_KEY" "token=$holder" application/x-www-form-urlencoded
  wrk_script check POST "$SERVICE_KEY" \
    "{\"token\":\"$holder\",\"permissions\":[\"area9:action3\",\"area9:other:x\"]}" application/json
  HOT_LABELS=("GET /healthz" "GET /v1/me (bearer)" "GET /v1/forward-auth (bearer)"
    "POST /v1/introspect (root key)" "POST /v1/introspect (stored credential)"
    "POST /v1/introspect (root, 10 roles x 20)" "POST /v1/authz/check (10 roles x 20)")
  HOT_SCRIPTS=(healthz me me introspect stored holder check)
  HOT_PATHS=(/healthz /v1/me /v1/forward-auth /v1/introspect /v1/introspect /v1/introspect /v1/authz/check)
  HOT_SCRIPTS=("${HOT_SCRIPTS[@]/#/$work/}")
  HOT_SCRIPTS=("${HOT_SCRIPTS[@]/%/.lua}")
}

# Starts the binary $3 (default $BIN) on port $1 at default settings
# (bench_env's), on a fresh database and Redis prefix, logging to $2/log;
# sets PID. On exit every instance started so is stopped, its database
# dropped and its folder removed.
BENCH_PIDS=() BENCH_DATABASES=() BENCH_FOLDERS=()
start_instance() {
  local database="tenant_jwt_bench_$(date +%s%N)"
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$database"
  export TENANT_JWT_REDIS_PREFIX="tjbench:$(date +%s%N):"
  TENANT_JWT_LISTEN="127.0.0.1:$1" "${3:-$BIN}" serve >"$2/log" 2>&1 &
  PID=$!
  BENCH_PIDS+=("$PID") BENCH_DATABASES+=("$database") BENCH_FOLDERS+=("$2")
  trap stop_instances EXIT
  wait_ready "http://127.0.0.1:$1" "$2/log"
}

stop_instances() {
  local pid database
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  for database in "${BENCH_DATABASES[@]}"; do
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1
  done
  rm -rf "${BENCH_FOLDERS[@]}"
}
