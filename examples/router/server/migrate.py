"""Applies the diesel migration folders (migrations/<version>_<name>/up.sql) the
way `diesel migration run` does, recording versions in
__diesel_schema_migrations. The image runs it before the server when the team
migrates at start (MIGRATIONS_DIR, DATABASE_URL)."""

import os
import sys

import psycopg2

root = os.environ.get("MIGRATIONS_DIR", "/app/migrations")
conn = psycopg2.connect(os.environ["DATABASE_URL"])
with conn, conn.cursor() as cur:
    cur.execute(
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations ("
        "version VARCHAR(50) PRIMARY KEY NOT NULL, "
        "run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    cur.execute("SELECT version FROM __diesel_schema_migrations")
    done = {r[0] for r in cur.fetchall()}
for name in sorted(os.listdir(root), key=lambda n: n.split("_")[0].replace("-", "")):
    version = name.split("_")[0].replace("-", "")
    if version in done or not os.path.isfile(os.path.join(root, name, "up.sql")):
        continue
    with conn, conn.cursor() as cur:
        cur.execute(open(os.path.join(root, name, "up.sql")).read())
        cur.execute("INSERT INTO __diesel_schema_migrations (version) VALUES (%s)", (version,))
    print("applied", name, file=sys.stderr)
