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
