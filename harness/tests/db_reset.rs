//! Reset strategies against the stack's real Postgres: after a run that wrote
//! data, each one gives back exactly the prepared state (row counts and a
//! checksum of every table); snapshot refuses a database not marked
//! disposable and puts the database back after an interrupted run.

mod common;

use std::path::Path;
use std::time::Duration;

use common::stack::Stack;
use common::*;
use serde_json::Value;

const DATA: &str = r#"
seed = 7
days = 30
until = "2026-11-01"
[merchants]
count = 3
[customers]
per_merchant = 4
[payments]
per_customer = 25
currencies = ["USD", "EUR"]
[cards]
"4242424242424242" = 0.9
"4000000000000002" = 0.1
"#;

fn state(s: &Stack) -> Value {
    let o = s.cmd(&["db", "state", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn rows(state: &Value, table: &str) -> i64 {
    state
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no {table} in {state}"))["rows"]
        .as_i64()
        .unwrap()
}

/// A short payment run: creates a merchant and payments through the API.
fn write_run(s: &Stack, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "-s",
        "payment-confirm",
        "-t",
        "",
        "--vus",
        "2",
        "--duration",
        "2s",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ];
    let url = s.url();
    args[4] = &url;
    args.extend_from_slice(extra);
    s.cmd(&args)
}

fn assert_wrote(s: &Stack, out: &Path, before: &Value) {
    let o = write_run(s, out, &[]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let after = state(s);
    assert!(
        rows(&after, "public.payments") > rows(before, "public.payments"),
        "the run wrote payments"
    );
}

/// A 1 s health run with a database step before it, under extra environment.
fn health_with_reset(
    s: &Stack,
    out: &Path,
    run: &str,
    strategy: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    s.cmd_env(
        &[
            "run",
            "-s",
            "health",
            "-t",
            &s.url(),
            "--duration",
            "1s",
            "-q",
            "-o",
            out.to_str().unwrap(),
            "-r",
            run,
            "--reset",
            strategy,
        ],
        env,
    )
}

/// A 20 s payment run wrapped in a snapshot, to be cut short; output piped.
fn long_snapshot_run(s: &Stack, out: &Path, run: &str) -> std::process::Command {
    let mut c = s.command(&[
        "run",
        "-s",
        "payment-confirm",
        "-t",
        &s.url(),
        "--vus",
        "2",
        "--duration",
        "20s",
        "-q",
        "-o",
        out.to_str().unwrap(),
        "-r",
        run,
        "--reset",
        "snapshot",
    ]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

#[test]
fn every_strategy_restores_the_prepared_state() {
    let s = Stack::new("db");
    let o = s.cmd(&["up", "--fresh", "-q", "--timeout", "180s"]);
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let o = s.cmd(&["migrate", "--database-url", &s.db_url()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let dir = tempdir();
    let data = dir.path().join("data.toml");
    std::fs::write(&data, DATA).unwrap();
    let ids = dir.path().join("ids.csv");
    let o = s.cmd(&[
        "db",
        "seed",
        "--data",
        data.to_str().unwrap(),
        "--identities",
        ids.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("300 payments"), "{}", stdout(&o));
    let csv = std::fs::read_to_string(&ids).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // Seeding twice is refused, the data stays.
    let o = s.cmd(&["db", "seed", "--data", data.to_str().unwrap(), "-q"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("already holds generated data"),
        "{}",
        stderr(&o)
    );

    let o = s.cmd(&["db", "prepare"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let prepared = state(&s);
    assert_eq!(rows(&prepared, "public.payments"), 300);
    assert_eq!(rows(&prepared, "public.merchants"), 3);

    let out = dir.path().join("out");
    // template: a fresh copy; the app's pool survives (no failed request right after).
    assert_wrote(&s, &out, &prepared);
    let o = s.cmd(&["db", "reset", "--strategy", "template"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(state(&s), prepared);
    let o = write_run(&s, &out, &["-r", "after-template"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = read_json(&out.join("after-template_payment-confirm.json"));
    assert_eq!(
        r["metrics"]["http_req_failed"]["passes"], 0,
        "{}",
        r["errors"]
    );
    assert!(r["metrics"]["http_reqs"]["count"].as_u64().unwrap() > 10);

    // delete: the configured statements remove what runs wrote, the seeded rows stay.
    let o = s.cmd(&["db", "reset", "--strategy", "delete"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(state(&s), prepared);

    // truncate, both ways: every table but the migrations table empty.
    for how in ["truncate", "delete"] {
        assert_wrote(&s, &out, &prepared);
        let o = s.cmd(&["db", "reset", "--strategy", "truncate", "--empty-with", how]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let st = state(&s);
        for t in st.as_array().unwrap() {
            if t["table"] == "public._sqlx_migrations" {
                assert_eq!(t, &prepared[0], "migrations kept");
            } else {
                assert_eq!(t["rows"], 0, "{how}: {t}");
            }
        }
        let o = s.cmd(&["db", "reset", "--strategy", "template"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(state(&s), prepared);
    }

    // snapshot around a run: the run's writes are gone afterwards.
    let o = write_run(&s, &out, &["--reset", "snapshot", "-r", "snap"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(out.join("snap_payment-confirm.json").is_file());
    assert_eq!(state(&s), prepared);

    // Interrupted (SIGINT) mid-run: partial results, and the database is put back.
    let child = long_snapshot_run(&s, &out, "cut").spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let r = read_json(&out.join("cut_payment-confirm.json"));
    assert_eq!(r["interrupted"], true);
    assert!(r["metrics"]["http_reqs"]["count"].as_u64().unwrap() > 0);
    assert_eq!(state(&s), prepared, "restored after the interrupted run");

    // A run killed outright leaves its snapshot; the next snapshot run refuses, `db restore` puts it back.
    let mut child = long_snapshot_run(&s, &out, "killed").spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(state(&s), prepared, "the killed run wrote data");
    let o = write_run(&s, &out, &["--reset", "snapshot"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("loadtest db restore"), "{}", stderr(&o));
    let o = s.cmd(&["db", "restore"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(state(&s), prepared);
    let o = s.cmd(&["db", "restore"]);
    assert!(stdout(&o).contains("nothing to restore"), "{}", stdout(&o));

    // A database not marked disposable: snapshot, truncate and template refuse; nothing changes.
    assert_wrote(&s, &out, &prepared);
    let written = state(&s);
    let no = [("LOADTEST_DB_DISPOSABLE", "false")];
    let o = health_with_reset(&s, &out, "refused", "snapshot", &no);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not marked disposable"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("refused_health.json").exists(), "nothing ran");
    for strategy in ["truncate", "template"] {
        let o = s.cmd_env(&["db", "reset", "--strategy", strategy], &no);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("not marked disposable"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(state(&s), written, "a refused reset changes nothing");
    // ...while targeted deletes are allowed there.
    let o = s.cmd_env(&["db", "reset", "--strategy", "delete"], &no);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(state(&s), prepared);

    // Ctrl-C while a setup step hangs (a server that accepts and never answers): the snapshot is
    // put back all the same, exit 1, nothing left to restore.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("http://{}", hang.local_addr().unwrap());
    let sc = scenario_file(
        dir.path(),
        "hangs",
        "[options]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n\n\
         [[setup]]\nname = \"never answered\"\nmethod = \"GET\"\npath = \"/\"\n\n\
         [[steps]]\nname = \"x\"\nmethod = \"GET\"\npath = \"/\"\n",
    );
    assert_wrote(&s, &out, &prepared);
    let before_hang = state(&s);
    let mut c = s.command(&[
        "run",
        "-s",
        sc.to_str().unwrap(),
        "-t",
        &hang_url,
        "-o",
        out.to_str().unwrap(),
        "-r",
        "hang",
        "--reset",
        "snapshot",
    ]);
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("interrupted (Ctrl-C) during setup") && stderr(&o).contains("restored"),
        "{}",
        stderr(&o)
    );
    assert_eq!(state(&s), before_hang, "the snapshot was put back");
    let o = s.cmd(&["db", "restore"]);
    assert!(stdout(&o).contains("nothing to restore"), "{}", stdout(&o));
    drop(hang);
    let o = s.cmd(&["db", "reset", "--strategy", "delete"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // The disposable mark belongs to the database the settings file names (host, port, name), not
    // to whatever URL is given: another database on the same server, reached by flag or by
    // LOADTEST_DATABASE_URL, is refused until it is marked on its own.
    let other = format!("postgres://demo:demo@127.0.0.1:{}/prod_shared", s.db_port);
    make_shared_db(&s.db_url(), &other);
    let accounts = |s: &Stack| -> i64 {
        let o = s.cmd(&["db", "state", "--json", "--database-url", &other]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        rows(
            &serde_json::from_str(&stdout(&o)).unwrap(),
            "public.accounts",
        )
    };
    assert_eq!(accounts(&s), 1000);
    let by_flag = s.cmd(&[
        "db",
        "reset",
        "--strategy",
        "truncate",
        "--database-url",
        &other,
    ]);
    let by_env = s.cmd_env(
        &["db", "reset", "--strategy", "truncate"],
        &[("LOADTEST_DATABASE_URL", &other)],
    );
    let by_run = health_with_reset(
        &s,
        &out,
        "shared",
        "truncate",
        &[("LOADTEST_DATABASE_URL", &other)],
    );
    for o in [&by_flag, &by_env, &by_run] {
        assert_eq!(code(o), 2, "{}", stderr(o));
        assert!(
            stderr(o).contains("not marked disposable") && stderr(o).contains("prod_shared"),
            "{}",
            stderr(o)
        );
    }
    assert_eq!(
        accounts(&s),
        1000,
        "nothing of the shared database was touched"
    );
    // A template name that is not the harness's own database is never dropped: neither another
    // database (no mark of the harness on it) nor the live database itself.
    let cfg_dir = tempdir();
    for (template, want) in [
        ("prod_shared", "refusing to drop database `prod_shared`"),
        ("demo", "names the database itself"),
    ] {
        let cfg = cfg_dir.path().join(format!("{template}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[database]\nurl = \"{}\"\ndisposable = true\ntemplate = \"{template}\"\n",
                s.db_url()
            ),
        )
        .unwrap();
        let o = s.cmd(&["db", "prepare", "--config", cfg.to_str().unwrap()]);
        assert_ne!(code(&o), 0, "{}", stdout(&o));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
    assert_eq!(accounts(&s), 1000, "the other database is intact");
    assert_eq!(state(&s), prepared, "the live database is intact");

    // Marked explicitly, by host:port/name, it may be emptied.
    let mark = format!("127.0.0.1:{}/prod_shared", s.db_port);
    let o = s.cmd_env(
        &[
            "db",
            "reset",
            "--strategy",
            "truncate",
            "--database-url",
            &other,
        ],
        &[("LOADTEST_DB_DISPOSABLE", &mark)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(accounts(&s), 0);

    // A database name near Postgres's 63-byte limit: the template the harness derives from it
    // still fits, is found again, and a template reset puts the data back.
    let long = "a_database_name_long_enough_to_overflow_derived_names_xyz";
    let long_url = format!("postgres://demo:demo@127.0.0.1:{}/{long}", s.db_port);
    make_db(&s.db_url(), &long_url, long, 10);
    let mark = format!("127.0.0.1:{}/{long}", s.db_port);
    let env = [("LOADTEST_DB_DISPOSABLE", mark.as_str())];
    let o = s.cmd_env(&["db", "prepare", "--database-url", &long_url], &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = s.cmd_env(
        &[
            "db",
            "reset",
            "--strategy",
            "truncate",
            "--database-url",
            &long_url,
        ],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = s.cmd_env(
        &[
            "db",
            "reset",
            "--strategy",
            "template",
            "--database-url",
            &long_url,
        ],
        &env,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = s.cmd(&["db", "state", "--json", "--database-url", &long_url]);
    assert_eq!(
        rows(
            &serde_json::from_str(&stdout(&o)).unwrap(),
            "public.accounts"
        ),
        10,
        "{}",
        stdout(&o)
    );

    let o = s.cmd(&["down"]);
    assert_eq!(code(&o), 0);
}

/// A database next to the stack's with a table of 1000 rows: what a shared
/// environment holds and no reset may touch.
fn make_shared_db(admin_url: &str, url: &str) {
    make_db(admin_url, url, "prod_shared", 1000);
}

/// Database `name` at `url`, holding `accounts` with `n` rows.
fn make_db(admin_url: &str, url: &str, name: &str, n: u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(admin_url).await.unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{name}\""),
            format!("CREATE DATABASE \"{name}\""),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
        }
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text);
             INSERT INTO accounts SELECT g, 'owner ' || g FROM generate_series(1, {n}) g"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    });
}
