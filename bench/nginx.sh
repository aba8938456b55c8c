# Sourced by the engine benchmarks: a local nginx (1 worker, fixed 200 JSON
# body on every path) on 127.0.0.1:$PORT, stopped by nginx_stop; with a
# certificate and key (nginx_start CERT KEY) it speaks TLS, HTTP/2 offered by ALPN.
# Needs WORK (a scratch folder) and PORT. Also the helpers the scripts share.

need() { command -v "$1" >/dev/null 2>&1; }
say() { printf '== %s\n' "$*" >&2; }
# user + sys seconds, and peak RSS in kB, from a /usr/bin/time -v report
cpu_of() { awk -F: '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.3f", u+s}' "$1"; }
rss_of() { awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$1"; }

nginx_start() { # [CERT KEY]
  local listen="listen 127.0.0.1:$PORT;" tls="" scheme=http
  if [ $# -eq 2 ]; then
    listen="listen 127.0.0.1:$PORT ssl http2;"
    tls="ssl_certificate $1; ssl_certificate_key $2; ssl_protocols TLSv1.2 TLSv1.3;"
    scheme=https
  fi
  mkdir -p "$WORK/nginx/logs"
  cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  server {
    $listen
    $tls
    location / {
      default_type application/json;
      return 200 '{"status":"ok"}';
    }
  }
}
CONF
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/start.log" &
  NGINX_PID=$!
  for _ in $(seq 50); do
    curl -skf "$scheme://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nginx did not start on 127.0.0.1:$PORT (see $WORK/nginx/start.log and $WORK/nginx/logs/error.log)" >&2
  cat "$WORK/nginx/start.log" >&2 || true
  return 1
}

nginx_stop() {
  [ -n "${NGINX_PID:-}" ] && kill "$NGINX_PID" 2>/dev/null || true
}
