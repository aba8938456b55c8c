"""router: a small payments router, the example service of a team that is not
the harness's own. Python's standard HTTP server over Postgres (psycopg2),
calling a payment-processor service for each confirmed payment.

Settings come from the environment: DATABASE_URL, PROCESSOR_URL, ADMIN_API_KEY,
PORT (default 8080), POOL_SIZE (default 8).
"""

import json
import os
import secrets
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.pool

DB = psycopg2.pool.ThreadedConnectionPool(
    1, int(os.environ.get("POOL_SIZE", "8")), os.environ["DATABASE_URL"]
)
PROCESSOR = os.environ.get("PROCESSOR_URL", "http://payment-processor:9000")
ADMIN_KEY = os.environ.get("ADMIN_API_KEY", "test_admin")


def query(sql, args=(), one=False, write=False, retry=True):
    conn = DB.getconn()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description else []
        if write:
            conn.commit()
        else:
            conn.rollback()
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        # The server ended the session (a restart, a database swapped in
        # under us): drop the connection and try once on a new one.
        DB.putconn(conn, close=True)
        if not retry:
            raise
        return query(sql, args, one, write, retry=False)
    DB.putconn(conn)
    return (rows[0] if rows else None) if one else rows


def authorize(amount, currency):
    body = json.dumps({"amount": amount, "currency": currency}).encode()
    req = urllib.request.Request(
        PROCESSOR + "/authorize", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)["status"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return None

    def merchant(self):
        row = query(
            "SELECT merchant_id FROM api_keys WHERE api_key = %s",
            (self.headers.get("api-key", ""),),
            one=True,
        )
        return row[0] if row else None

    def do_GET(self):
        if self.path == "/health":
            query("SELECT 1", one=True)
            return self.reply(200, {"status": "ok"})
        if self.path.startswith("/payments/"):
            m = self.merchant()
            if not m:
                return self.reply(401, {"error": "unknown api key"})
            row = query(
                "SELECT payment_id, amount, currency, status FROM payments "
                "WHERE payment_id = %s AND merchant_id = %s",
                (self.path[len("/payments/"):], m),
                one=True,
            )
            if not row:
                return self.reply(404, {"error": "no such payment"})
            return self.reply(
                200,
                {"payment_id": row[0], "amount": row[1], "currency": row[2], "status": row[3]},
            )
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        b = self.body()
        if b is None:
            return self.reply(400, {"error": "the body is not JSON"})
        if self.path == "/accounts":
            if self.headers.get("api-key") != ADMIN_KEY:
                return self.reply(401, {"error": "admin key required"})
            mid = "mer_" + secrets.token_hex(8)
            key = "key_" + secrets.token_hex(16)
            query(
                "WITH m AS (INSERT INTO merchants (merchant_id, name) VALUES (%s, %s)) "
                "INSERT INTO api_keys (api_key, merchant_id) VALUES (%s, %s)",
                (mid, b.get("merchant_name", "merchant"), key, mid),
                write=True,
            )
            return self.reply(200, {"merchant_id": mid, "api_key": key})
        if self.path == "/payments":
            m = self.merchant()
            if not m:
                return self.reply(401, {"error": "unknown api key"})
            amount, currency = b.get("amount"), b.get("currency")
            if not isinstance(amount, int) or amount <= 0 or not currency:
                return self.reply(400, {"error": "amount and currency are required"})
            status = "requires_confirmation"
            if b.get("confirm"):
                status = "succeeded" if authorize(amount, currency) == "approved" else "failed"
            pid = "pay_" + secrets.token_hex(10)
            query(
                "INSERT INTO payments (payment_id, merchant_id, amount, currency, status) "
                "VALUES (%s, %s, %s, %s, %s)",
                (pid, m, amount, currency, status),
                write=True,
            )
            return self.reply(
                200, {"payment_id": pid, "amount": amount, "currency": currency, "status": status}
            )
        self.reply(404, {"error": "not found"})


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
