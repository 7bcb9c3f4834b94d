//! mailmig beside its peers, Dovecot to Dovecot over loopback TLS (`scripts/peers.sh`).
//!
//! Starts a real Dovecot source (maildir) and a real Dovecot target (mdbox, fsync off) with
//! the real-server fixtures, seeds the source with three workloads, then runs, interleaved and
//! `--reps` times each: mailmig into the IMAP target, mbsync (Debian's isync), Dovecot's own
//! `doveadm backup` (dsync over imapc), a bare pipelined LITERAL+ APPEND client (the target's
//! limit), mailmig into its embedded tenant, and a bare pipelined `UID FETCH 1:*` (the
//! source's limit). Every copy into the target is read back and checked message by message
//! (bytes, flags, internal dates, order); the medians go in a Markdown table with ratios.
//! Each copy goes to fresh target users, so no run sees another's mail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use engine::imap::{ImapSettings, ImapStream, Security, connect};
use fake_imap::generate::{GeneratorConfig, generate};
use real_servers::RealServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

const PASSWORD: &str = "pw";
const ADMIN: (&str, &str) = ("mailadmin", "adminpw");
const DOMAIN: &str = "bench.test";

/// A message with what a copy must keep.
#[derive(Clone)]
struct Mail {
    raw: Vec<u8>,
    flags: Vec<String>,
    date: DateTime<Utc>,
}

struct Workload {
    name: &'static str,
    key: &'static str,
    users: usize,
    count: usize,
    size: usize,
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "10,000 x 4 KB, one user",
        key: "w4k",
        users: 1,
        count: 10_000,
        size: 4096,
    },
    Workload {
        name: "200 x 1 MB, one user",
        key: "w1m",
        users: 1,
        count: 200,
        size: 1024 * 1024,
    },
    Workload {
        name: "20 users x 500 x 20 KB, 20 at once",
        key: "w20",
        users: 20,
        count: 500,
        size: 20 * 1024,
    },
];

/// The tools, in the table's order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Mailmig,
    Mbsync,
    AppendRef,
    /// MULTIAPPEND of 250 messages a command, pipelined (the server stores each in one transaction).
    MultiRef,
    Dsync,
    Tenant,
    FetchRef,
    /// mailmig on the 20-user workload, one user at a time.
    MailmigSerial,
}

const TOOLS: [Tool; 7] = [
    Tool::Mailmig,
    Tool::Mbsync,
    Tool::AppendRef,
    Tool::MultiRef,
    Tool::Dsync,
    Tool::Tenant,
    Tool::FetchRef,
];

impl Tool {
    fn named(name: &str) -> Option<Tool> {
        Some(match name {
            "mailmig" => Tool::Mailmig,
            "mbsync" => Tool::Mbsync,
            "append" => Tool::AppendRef,
            "multiappend" => Tool::MultiRef,
            "dsync" => Tool::Dsync,
            "tenant" => Tool::Tenant,
            "fetch" => Tool::FetchRef,
            "serial" => Tool::MailmigSerial,
            _ => return None,
        })
    }

    fn title(self) -> &'static str {
        match self {
            Tool::Mailmig => "mailmig (IMAP target)",
            Tool::Mbsync => "mbsync",
            Tool::AppendRef => "pipelined APPEND alone",
            Tool::MultiRef => "MULTIAPPEND alone (the target's limit)",
            Tool::Dsync => "Dovecot's dsync",
            Tool::Tenant => "mailmig into the embedded tenant",
            Tool::FetchRef => "FETCH alone (the source's limit)",
            Tool::MailmigSerial => "mailmig, one user at a time",
        }
    }
}

struct Env {
    source: RealServer,
    target: RealServer,
    mailmig: PathBuf,
    dir: tempfile::TempDir,
    /// Per workload, per user: the messages seeded.
    mail: Vec<Vec<Vec<Mail>>>,
    reps: usize,
    scale: usize,
    only: Option<Vec<Tool>>,
    /// Where to keep a `perf record` of each timed mailmig run, when asked for.
    perf: Option<PathBuf>,
    /// Where to keep each timed mailmig run's standard error (with `MAILMIG_LOG` set, a
    /// timeline of its commands), when asked for.
    logs: Option<PathBuf>,
}

fn source_user(w: &Workload, i: usize) -> String {
    format!("{}s{i}", w.key)
}

fn target_user(w: &Workload, tool: Tool, rep: usize, i: usize) -> String {
    format!("{}{:?}{rep}t{i}", w.key, tool).to_ascii_lowercase()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("peers: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut reps = 3;
    let mut scale = 1;
    let mut mailmig = None;
    let mut only: Option<Vec<Tool>> = None;
    let mut workload: Option<String> = None;
    let mut perf = None;
    let mut logs = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).ok_or("--reps N")?,
            // Every workload's message count divided by this (a quick check of the harness).
            "--scale-down" => {
                scale = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--scale-down N")?
            }
            "--mailmig" => mailmig = args.next().map(PathBuf::from),
            // Only these tools (mailmig,mbsync,append,multiappend,dsync,tenant,fetch,serial).
            "--only" => {
                let list = args.next().ok_or("--only TOOL,...")?;
                let mut tools = Vec::new();
                for name in list.split(',') {
                    tools.push(Tool::named(name).ok_or(format!("no tool {name:?}"))?);
                }
                only = Some(tools);
            }
            // Only this workload (w4k, w1m, w20).
            "--workload" => workload = Some(args.next().ok_or("--workload KEY")?),
            // Record each timed mailmig run with `perf record --call-graph dwarf` into this
            // directory, with its standard error (its times then include perf's overhead).
            "--perf" => perf = Some(PathBuf::from(args.next().ok_or("--perf DIR")?)),
            // Keep each timed mailmig run's standard error in this directory (no perf).
            "--logs" => logs = Some(PathBuf::from(args.next().ok_or("--logs DIR")?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mailmig = mailmig.ok_or("--mailmig PATH (the mailmig binary) is needed")?;
    for tool in ["mbsync", "doveadm"] {
        if which(tool).is_none() {
            return Err(format!(
                "{tool} is not installed (scripts/peers.sh installs it)"
            ));
        }
    }
    let mut source = RealServer::dovecot().admin(ADMIN.0, ADMIN.1);
    let mut target = RealServer::dovecot()
        .admin(ADMIN.0, ADMIN.1)
        .dovecot_settings("mail_location = mdbox:~/mdbox\nmail_fsync = never")
        // dsync wants both locations' separators named.
        .dovecot_settings("namespace inbox {\n  inbox = yes\n  separator = /\n}");
    for w in &WORKLOADS {
        for i in 0..w.users {
            source = source.user(&source_user(w, i), PASSWORD);
            for rep in 0..reps {
                for tool in TOOLS.iter().chain(&[Tool::MailmigSerial]) {
                    target = target.user(&target_user(w, *tool, rep, i), PASSWORD);
                }
            }
        }
    }
    let source = source.start().await.map_err(|e| e.to_string())?;
    let target = target.start().await.map_err(|e| e.to_string())?;
    let mut env = Env {
        source,
        target,
        mailmig,
        dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        mail: Vec::new(),
        reps,
        scale,
        only,
        perf,
        logs,
    };
    seed(&mut env).await?;
    let mut rows = Vec::new();
    for (wi, w) in WORKLOADS.iter().enumerate() {
        if workload.as_ref().is_none_or(|k| k == w.key) {
            rows.push(measure(&env, wi, w).await?);
        }
    }
    print_table(&rows);
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .chain([
            Path::new("/usr/sbin").join(tool),
            Path::new("/usr/bin").join(tool),
        ])
        .find(|p| p.exists())
}

async fn seed(env: &mut Env) -> Result<(), String> {
    for (wi, w) in WORKLOADS.iter().enumerate() {
        let config = GeneratorConfig {
            min_size: w.size,
            max_size: w.size,
            ..GeneratorConfig::default()
        };
        let mut users = Vec::new();
        for i in 0..w.users {
            let user = source_user(w, i);
            let generated: Vec<Mail> =
                generate(&config, 7 + wi as u64, &user, "INBOX", w.count / env.scale)
                    .into_iter()
                    .map(|g| Mail {
                        raw: g.raw,
                        flags: g.flags.iter().map(|f| f.to_string()).collect(),
                        date: g.internal_date.to_utc(),
                    })
                    .collect();
            let started = Instant::now();
            let mut s = session(&env.source, &user, PASSWORD).await?;
            append_all(&mut s, "INBOX", &generated, false).await?;
            eprintln!(
                "peers: seeded {user} with {} messages in {:.2} s",
                generated.len(),
                started.elapsed().as_secs_f64()
            );
            // What the source holds is the truth a copy is checked against (a server may
            // change an internal date it was given, e.g. one in the future).
            let mut held = env.source.mailbox(&user).await.map_err(|e| e.to_string())?;
            held.retain(|m| m.folder == "INBOX");
            held.sort_by_key(|m| m.uid);
            users.push(
                held.into_iter()
                    .map(|m| Mail {
                        raw: m.raw,
                        flags: m.flags,
                        date: m.internal_date,
                    })
                    .collect(),
            );
        }
        env.mail.push(users);
    }
    Ok(())
}

/// One workload's medians: per tool, the seconds and what the check of the copy found; and
/// the no-op re-syncs.
struct Row {
    name: &'static str,
    times: Vec<(Tool, f64, String)>,
    noop: Vec<(Tool, f64)>,
}

async fn measure(env: &Env, wi: usize, w: &Workload) -> Result<Row, String> {
    let mut samples: Vec<(Tool, Vec<f64>, String)> = Vec::new();
    let mut noop: Vec<(Tool, Vec<f64>)> = Vec::new();
    let mut tools: Vec<Tool> = TOOLS.to_vec();
    if w.users > 1 {
        tools.push(Tool::MailmigSerial);
    }
    if let Some(only) = &env.only {
        tools.retain(|t| only.contains(t));
    }
    for rep in 0..env.reps {
        for &tool in &tools {
            // A peer that hangs (a real server can) is reported, not waited for forever.
            let Ok(copied) =
                tokio::time::timeout(Duration::from_secs(120), copy(env, w, tool, rep)).await
            else {
                let tail = |log: String| {
                    let lines: Vec<&str> = log.lines().collect();
                    lines[lines.len().saturating_sub(15)..].join("\n")
                };
                return Err(format!(
                    "{} on {} did not finish within 120 s\nthe target's log ends:\n{}\nthe source's log ends:\n{}",
                    tool.title(),
                    w.key,
                    tail(env.target.log()),
                    tail(env.source.log())
                ));
            };
            let (secs, again) = copied?;
            if let Some(again) = again {
                eprintln!(
                    "peers: {} {} rep {rep}: no-op re-sync {again:.2} s",
                    w.key,
                    tool.title()
                );
            }
            let check = verify(env, wi, w, tool, rep).await?;
            eprintln!(
                "peers: {} {} rep {rep}: {secs:.2} s, {check}",
                w.key,
                tool.title()
            );
            match samples.iter_mut().find(|(t, ..)| *t == tool) {
                Some((_, s, c)) => {
                    s.push(secs);
                    if check != "exact" {
                        *c = check;
                    }
                }
                None => samples.push((tool, vec![secs], check)),
            }
            if let Some(again) = again {
                match noop.iter_mut().find(|(t, _)| *t == tool) {
                    Some((_, s)) => s.push(again),
                    None => noop.push((tool, vec![again])),
                }
            }
        }
    }
    Ok(Row {
        name: w.name,
        times: samples
            .into_iter()
            .map(|(t, s, c)| (t, median(s), c))
            .collect(),
        noop: noop.into_iter().map(|(t, s)| (t, median(s))).collect(),
    })
}

fn median(mut s: Vec<f64>) -> f64 {
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

/// One copy by `tool`: its seconds, and for the first workload a no-op re-sync's.
async fn copy(
    env: &Env,
    w: &Workload,
    tool: Tool,
    rep: usize,
) -> Result<(f64, Option<f64>), String> {
    let noop = w.key == "w4k";
    match tool {
        Tool::Mailmig | Tool::Tenant | Tool::MailmigSerial => {
            mailmig(env, w, tool, rep, noop).await
        }
        Tool::Mbsync => {
            let configs = (0..w.users)
                .map(|i| mbsync_config(env, w, rep, i))
                .collect::<Result<Vec<_>, _>>()?;
            let mbsync = || {
                configs.iter().map(|c| {
                    let mut cmd = Command::new("mbsync");
                    cmd.arg("-q").arg("-c").arg(c).arg("-a");
                    cmd
                })
            };
            twice(mbsync, noop).await
        }
        Tool::Dsync => twice(|| (0..w.users).map(|i| dsync(env, w, rep, i)), noop).await,
        Tool::AppendRef | Tool::MultiRef => {
            let wi = WORKLOADS
                .iter()
                .position(|x| x.key == w.key)
                .expect("a workload");
            let started = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..w.users {
                let user = format!("{}*{}", target_user(w, tool, rep, i), ADMIN.0);
                let mail = &env.mail[wi][i];
                tasks.push(async move {
                    let mut s = session(&env.target, &user, ADMIN.1).await?;
                    append_all(&mut s, "INBOX", mail, tool == Tool::MultiRef).await
                });
            }
            for r in futures::future::join_all(tasks).await {
                r?;
            }
            Ok((started.elapsed().as_secs_f64(), None))
        }
        Tool::FetchRef => {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..w.users {
                let user = source_user(w, i);
                tasks.push(async move {
                    let mut s = session(&env.source, &user, PASSWORD).await?;
                    fetch_all(&mut s).await
                });
            }
            for r in futures::future::join_all(tasks).await {
                r?;
            }
            Ok((started.elapsed().as_secs_f64(), None))
        }
    }
}

/// The seconds of the peer's commands run at once, and with `again`, of a second run (the
/// no-op re-sync).
async fn twice<I: Iterator<Item = Command>>(
    cmds: impl Fn() -> I,
    again: bool,
) -> Result<(f64, Option<f64>), String> {
    let secs = parallel(cmds()).await?;
    let again = match again {
        true => Some(parallel(cmds()).await?),
        false => None,
    };
    Ok((secs, again))
}

/// Runs the commands at once; the seconds until the last ended.
async fn parallel(cmds: impl Iterator<Item = Command>) -> Result<f64, String> {
    let started = Instant::now();
    let mut children = Vec::new();
    for mut c in cmds {
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        children.push(c.spawn().map_err(|e| e.to_string())?);
    }
    for c in children {
        let o = c.wait_with_output().await.map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!(
                "a peer failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn mbsync_config(env: &Env, w: &Workload, rep: usize, i: usize) -> Result<PathBuf, String> {
    let dir = env.dir.path().join(format!("mbsync-{}-{rep}-{i}", w.key));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // `localhost`: mbsync checks the certificate's DNS names only (not its IP address).
    let config = format!(
        "IMAPAccount src\nHost localhost\nPort {sport}\nUser {suser}\nPass {PASSWORD}\nSSLType IMAPS\nCertificateFile {sca}\n\n\
         IMAPStore src\nAccount src\n\n\
         IMAPAccount dst\nHost localhost\nPort {tport}\nUser {tuser}*{admin}\nPass {apw}\nSSLType IMAPS\nCertificateFile {tca}\n\n\
         IMAPStore dst\nAccount dst\n\n\
         Channel c\nFar :src:\nNear :dst:\nPatterns *\nCreate Near\nSync Pull\nSyncState {state}/\n",
        sport = env.source.imaps_port(),
        suser = source_user(w, i),
        sca = env.source.ca_file().display(),
        tport = env.target.imaps_port(),
        tuser = target_user(w, Tool::Mbsync, rep, i),
        admin = ADMIN.0,
        apw = ADMIN.1,
        tca = env.target.ca_file().display(),
        state = dir.display(),
    );
    let path = dir.join("mbsyncrc");
    write(&path, &config)?;
    Ok(path)
}

fn dsync(env: &Env, w: &Workload, rep: usize, i: usize) -> Command {
    let mut cmd = Command::new("doveadm");
    cmd.arg("-c")
        .arg(env.target.dir().join("dovecot.conf"))
        .args(["-o", "imapc_host=127.0.0.1"])
        .arg("-o")
        .arg(format!("imapc_port={}", env.source.imaps_port()))
        .args(["-o", "imapc_ssl=imaps"])
        .arg("-o")
        .arg(format!("imapc_user={}", source_user(w, i)))
        .arg("-o")
        .arg(format!("imapc_password={PASSWORD}"))
        .arg("-o")
        .arg(format!(
            "ssl_client_ca_file={}",
            env.source.ca_file().display()
        ))
        .args(["-o", "imapc_features=rfc822.size fetch-headers"])
        .args(["-o", "mail_prefetch_count=20"])
        .args(["backup", "-R", "-u"])
        .arg(target_user(w, Tool::Dsync, rep, i))
        .arg("imapc:");
    cmd
}

/// mailmig through its command line, as an admin runs it: a state, the target, the endpoint,
/// a batch of the workload's users, then `run --until-idle` timed (and again after
/// `--sync-now`, for the no-op re-sync).
async fn mailmig(
    env: &Env,
    w: &Workload,
    tool: Tool,
    rep: usize,
    noop: bool,
) -> Result<(f64, Option<f64>), String> {
    let dir = env
        .dir
        .path()
        .join(format!("mailmig-{}-{tool:?}-{rep}", w.key));
    let state = dir.join("state");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pw = dir.join("target.pw");
    write(&pw, ADMIN.1)?;
    let mut csv = String::from("EmailAddress,UserName,Password\n");
    let mut tenant = format!("[tenant]\naccepted_domains = [\"{DOMAIN}\"]\n");
    for i in 0..w.users {
        let t = target_user(w, tool, rep, i);
        csv.push_str(&format!("{t}@{DOMAIN},{},{PASSWORD}\n", source_user(w, i)));
        tenant.push_str(&format!("[[mailboxes]]\naddress = \"{t}@{DOMAIN}\"\n"));
    }
    write(&dir.join("users.csv"), &csv)?;
    write(&dir.join("tenant.toml"), &tenant)?;
    let recording = dir.join("perf.data");
    let cli = |args: Vec<String>| {
        let state = state.clone();
        let recording = recording.clone();
        async move {
            let mut command = match &env.perf {
                Some(keep) if args[0] == "run" => {
                    let mut c = Command::new("perf");
                    c.args([
                        "record",
                        "-q",
                        "-F",
                        "1000",
                        "--call-graph",
                        "dwarf,32768",
                        "-o",
                    ])
                    .arg(&recording)
                    .arg("--")
                    .arg(&env.mailmig);
                    let _ = std::fs::create_dir_all(keep);
                    c
                }
                _ => Command::new(&env.mailmig),
            };
            let o = command
                .arg("--state-dir")
                .arg(&state)
                .args(&args)
                .output()
                .await
                .map_err(|e| e.to_string())?;
            if (env.perf.is_some() || env.logs.is_some()) && args[0] == "run" {
                write(
                    &recording.with_extension("log"),
                    &String::from_utf8_lossy(&o.stderr),
                )?;
            }
            if !o.status.success() {
                return Err(format!(
                    "mailmig {args:?}: {}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Ok::<(), String>(())
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    if tool == Tool::Tenant {
        let t = dir.join("tenant.toml");
        cli(s(&[
            "target",
            "set",
            "--embedded",
            "--config",
            t.to_str().unwrap_or(""),
        ]))
        .await?;
    } else {
        let port = env.target.imaps_port().to_string();
        let ca = env.target.ca_file().display().to_string();
        let pw = pw.display().to_string();
        cli(s(&[
            "target",
            "set",
            "--imap",
            "--remote-server",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "ssl",
            "--ca-file",
            &ca,
            "--username-format",
            "{local}*mailadmin",
            "--password-file",
            &pw,
        ]))
        .await?;
    }
    let port = env.source.imaps_port().to_string();
    let ca = env.source.ca_file().display().to_string();
    let max = if tool == Tool::MailmigSerial {
        "1".to_string()
    } else {
        w.users.to_string()
    };
    cli(s(&[
        "endpoint",
        "new",
        "--imap",
        "--name",
        "src",
        "--remote-server",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        "ssl",
        "--ca-file",
        &ca,
        "--max-concurrent-migrations",
        &max,
        "--max-concurrent-incremental-syncs",
        &max,
    ]))
    .await?;
    let csv = dir.join("users.csv").display().to_string();
    cli(s(&[
        "batch",
        "new",
        "--name",
        "B",
        "--source-endpoint",
        "src",
        "--csv",
        &csv,
        "--autostart",
    ]))
    .await?;
    let started = Instant::now();
    cli(s(&["run", "--until-idle"])).await?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(keep) = &env.perf {
        let to = keep.join(format!("{}-{tool:?}-{rep}.data", w.key));
        std::fs::rename(&recording, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        let log = to.with_extension("log");
        std::fs::rename(recording.with_extension("log"), &log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
    }
    let keep_log = |name: String| -> Result<(), String> {
        match &env.logs {
            Some(keep) => {
                std::fs::create_dir_all(keep).map_err(|e| e.to_string())?;
                let to = keep.join(name);
                std::fs::rename(recording.with_extension("log"), &to)
                    .map_err(|e| format!("{}: {e}", to.display()))
            }
            None => Ok(()),
        }
    };
    if env.perf.is_none() {
        keep_log(format!("{}-{tool:?}-{rep}.log", w.key))?;
    }
    let again = if noop {
        cli(s(&["batch", "set", "B", "--sync-now"])).await?;
        let started = Instant::now();
        cli(s(&["run", "--until-idle"])).await?;
        let secs = started.elapsed().as_secs_f64();
        if env.perf.is_none() {
            keep_log(format!("{}-{tool:?}-{rep}-noop.log", w.key))?;
        }
        Some(secs)
    } else {
        None
    };
    Ok((secs, again))
}

/// A tenant mailbox's Inbox in import order, as the IMAP check reads a target folder.
fn tenant_inbox(tenant: &fake_target::Tenant, address: &str) -> Result<Vec<Mail>, String> {
    let items = tenant
        .items(address, Some("Inbox"))
        .map_err(|e| format!("{address}: {e}"))?;
    items
        .into_iter()
        .map(|i| {
            Ok(Mail {
                raw: tenant
                    .item_bytes(address, &i.id)
                    .map_err(|e| format!("{address} {}: {e}", i.id))?
                    .to_vec(),
                flags: i.flags,
                date: i.received_time,
            })
        })
        .collect()
}

fn tenant_flags(imap: &[String]) -> Vec<String> {
    let flags: Vec<&str> = imap.iter().map(String::as_str).collect();
    fake_target::ItemFlags::from_imap(&flags).to_imap()
}

/// What the target holds for each user of this copy, against the source: `exact` (every byte,
/// flag and internal date, in the source's order), or what differs.
async fn verify(
    env: &Env,
    wi: usize,
    w: &Workload,
    tool: Tool,
    rep: usize,
) -> Result<String, String> {
    if tool == Tool::FetchRef {
        return Ok("read only".into());
    }
    let tenant = if tool == Tool::Tenant {
        let db = env
            .dir
            .path()
            .join(format!("mailmig-{}-{tool:?}-{rep}", w.key))
            .join("state/tenant.sqlite");
        let clock = std::sync::Arc::new(fake_target::SystemClock);
        Some(fake_target::Tenant::open(&db, clock).map_err(|e| format!("{}: {e}", db.display()))?)
    } else {
        None
    };
    let (mut bytes, mut flags, mut dates, mut count, mut tuid) = (0, 0, 0, 0, 0);
    for i in 0..w.users {
        let user = target_user(w, tool, rep, i);
        let held = match &tenant {
            Some(t) => tenant_inbox(t, &format!("{user}@{DOMAIN}"))?,
            None => {
                let mut held = env.target.mailbox(&user).await.map_err(|e| e.to_string())?;
                held.retain(|m| m.folder == "INBOX");
                held.sort_by_key(|m| m.uid);
                held.into_iter()
                    .map(|m| Mail {
                        raw: m.raw,
                        flags: m.flags,
                        date: m.internal_date,
                    })
                    .collect()
            }
        };
        let want = &env.mail[wi][i];
        if held.len() != want.len() {
            count += want.len().abs_diff(held.len());
        }
        for (g, m) in want.iter().zip(&held) {
            // The tenant keeps the flags Exchange has (read, flagged, answered, ...), not
            // every IMAP keyword: a copy is checked against what it can hold.
            let g = &match tenant {
                Some(_) => Mail {
                    raw: g.raw.clone(),
                    flags: tenant_flags(&g.flags),
                    date: g.date,
                },
                None => g.clone(),
            };
            if g.raw != m.raw {
                if m.raw.windows(8).any(|w| w == b"X-TUID: ") {
                    tuid += 1;
                }
                if bytes == 0 {
                    let at = g.raw.iter().zip(&m.raw).position(|(a, b)| a != b);
                    eprintln!(
                        "peers: {user}: the first other message differs at byte {at:?} ({} vs {} bytes): {:?}",
                        g.raw.len(),
                        m.raw.len(),
                        String::from_utf8_lossy(&m.raw[..m.raw.len().min(120)])
                    );
                }
                bytes += 1;
            }
            let mut a = g.flags.clone();
            let mut b = m.flags.clone();
            a.sort();
            b.sort();
            if a != b {
                flags += 1;
            }
            if g.date != m.date {
                dates += 1;
            }
        }
    }
    let mut out = Vec::new();
    if count > 0 {
        out.push(format!("{count} missing or extra"));
    }
    if bytes > 0 {
        out.push(format!("{bytes} with other bytes or order"));
    }
    if tuid > 0 {
        out.push(format!("{tuid} with an X-TUID header added"));
    }
    if flags > 0 {
        out.push(format!("{flags} with other flags"));
    }
    if dates > 0 {
        out.push(format!("{dates} with other internal dates"));
    }
    Ok(if out.is_empty() {
        "exact".into()
    } else {
        out.join(", ")
    })
}

/// A logged-in connection over TLS, as `user`.
async fn session(server: &RealServer, user: &str, password: &str) -> Result<ImapStream, String> {
    let mut settings = ImapSettings::new("127.0.0.1", server.imaps_port(), Security::Ssl);
    settings.ca_file = Some(server.ca_file().to_path_buf());
    let connected = connect(&settings, Duration::from_secs(15))
        .await
        .map_err(|e| e.to_string())?;
    let mut s = connected.client.into_stream().ok_or("no stream")?;
    let line = format!("l LOGIN \"{user}\" \"{password}\"\r\n");
    send(&mut s, line.as_bytes()).await?;
    let reply = read_tagged(&mut s, b"l ").await?;
    if !reply.starts_with("l OK") {
        return Err(format!("login as {user}: {reply}"));
    }
    Ok(s)
}

/// Writes a command and flushes it: TLS may hold written bytes until a flush, and a client
/// that then waits for the reply waits forever (the reference sessions' hang).
async fn send(s: &mut ImapStream, bytes: &[u8]) -> Result<(), String> {
    s.write_all(bytes).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())
}

/// Reads to the line that starts with `tag`; returns it.
async fn read_tagged(s: &mut ImapStream, tag: &[u8]) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"\r\n") {
            let last = buf[..buf.len() - 2]
                .windows(2)
                .rposition(|w| w == b"\r\n")
                .map_or(0, |p| p + 2);
            if buf[last..].starts_with(tag) {
                return Ok(String::from_utf8_lossy(&buf[last..]).trim().to_string());
            }
        }
        if buf.len() > 1 << 20 {
            buf.drain(..buf.len() - 4096);
        }
    }
}

/// Pipelined LITERAL+ APPENDs of every message (flags and internal date kept), written while
/// the completions are read; fails on any NO or BAD.
async fn append_all(
    s: &mut ImapStream,
    mailbox: &str,
    mail: &[Mail],
    multi: bool,
) -> Result<(), String> {
    let (mut r, mut w) = tokio::io::split(s);
    if multi {
        // Written while the completions are read (a refusal ends the command early).
        let writer = async move {
            for (k, group) in mail.chunks(250).enumerate() {
                let mut out = format!("a{k} APPEND \"{mailbox}\"").into_bytes();
                for m in group {
                    let date = m.date.format("%d-%b-%Y %H:%M:%S +0000");
                    let flags = m.flags.join(" ");
                    out.extend_from_slice(
                        format!(" ({flags}) \"{date}\" {{{}+}}\r\n", m.raw.len()).as_bytes(),
                    );
                    out.extend_from_slice(&m.raw);
                }
                out.extend_from_slice(b"\r\n");
                w.write_all(&out).await.map_err(|e| e.to_string())?;
            }
            w.flush().await.map_err(|e| e.to_string())
        };
        let want = mail.chunks(250).count();
        let reader = async move {
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            let mut done = 0;
            while done < want {
                let n = r.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the target closed the connection".to_string());
                }
                got.extend_from_slice(&buf[..n]);
                while let Some(p) = got.windows(2).position(|w| w == b"\r\n") {
                    let line: Vec<u8> = got.drain(..p + 2).collect();
                    let text = String::from_utf8_lossy(&line);
                    if text.starts_with('a') {
                        if text.split(' ').nth(1).is_none_or(|s| s != "OK") {
                            return Err(format!("MULTIAPPEND refused: {}", text.trim()));
                        }
                        done += 1;
                    }
                }
            }
            Ok(())
        };
        let (a, b) = tokio::join!(writer, reader);
        return a.and(b);
    }
    let writer = async move {
        let mut out = Vec::with_capacity(128 * 1024);
        for (i, m) in mail.iter().enumerate() {
            let date = m.date.format("%d-%b-%Y %H:%M:%S +0000");
            out.extend_from_slice(
                format!(
                    "a{i} APPEND \"{mailbox}\" ({}) \"{date}\" {{{}+}}\r\n",
                    m.flags.join(" "),
                    m.raw.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&m.raw);
            out.extend_from_slice(b"\r\n");
            if out.len() >= 64 * 1024 {
                w.write_all(&out).await.map_err(|e| e.to_string())?;
                out.clear();
            }
        }
        w.write_all(&out).await.map_err(|e| e.to_string())?;
        w.flush().await.map_err(|e| e.to_string())
    };
    let reader = async move {
        let mut done = 0;
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        while done < mail.len() {
            let n = r.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the target closed the connection".to_string());
            }
            pending.extend_from_slice(&chunk[..n]);
            while let Some(p) = pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = pending.drain(..p + 2).collect();
                if line.first() == Some(&b'a') {
                    let text = String::from_utf8_lossy(&line);
                    if text.split(' ').nth(1).is_none_or(|s| s != "OK") {
                        return Err(format!("APPEND refused: {}", text.trim()));
                    }
                    done += 1;
                }
            }
        }
        Ok(())
    };
    let (a, b) = tokio::join!(writer, reader);
    a.and(b)
}

/// `UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])` of INBOX, read to its end.
async fn fetch_all(s: &mut ImapStream) -> Result<(), String> {
    send(s, b"e EXAMINE INBOX\r\n").await?;
    read_tagged(s, b"e ").await?;
    send(
        s,
        b"zq9 UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])\r\n",
    )
    .await?;
    let reply = read_tagged(s, b"zq9 ").await?;
    if !reply.starts_with("zq9 OK") {
        return Err(format!("FETCH: {reply}"));
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    let mut header = "| workload |".to_string();
    let mut rule = "|---|".to_string();
    for t in TOOLS {
        header.push_str(&format!(" {} |", t.title()));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    let time = |r: &Row, t: Tool| r.times.iter().find(|x| x.0 == t).map(|x| x.1);
    for r in rows {
        let mut line = format!("| {} |", r.name);
        for t in TOOLS {
            line.push_str(&match time(r, t) {
                Some(s) => format!(" {s:.2} s |"),
                None => " - |".into(),
            });
        }
        println!("{line}");
    }
    if let Some(first) = rows.first() {
        let mut line = "| no-op re-sync of the first row |".to_string();
        for t in TOOLS {
            line.push_str(&match first.noop.iter().find(|x| x.0 == t) {
                Some((_, s)) => format!(" {s:.2} s |"),
                None => " - |".into(),
            });
        }
        println!("{line}");
    }
    println!();
    for r in rows {
        let get = |t| time(r, t).unwrap_or(f64::NAN);
        let m = get(Tool::Mailmig);
        println!(
            "- {}: mailmig at {:.2}x the pipelined-APPEND rate ({:.2}x the MULTIAPPEND rate), {:.2}x mbsync's speed, {:.2}x dsync's; into the tenant at {:.2}x the FETCH rate",
            r.name,
            get(Tool::AppendRef) / m,
            get(Tool::MultiRef) / m,
            get(Tool::Mbsync) / m,
            get(Tool::Dsync) / m,
            get(Tool::FetchRef) / get(Tool::Tenant),
        );
        if let Some(serial) = time(r, Tool::MailmigSerial) {
            println!(
                "  - 20 at once {m:.2} s against one at a time {serial:.2} s ({:.2}x faster)",
                serial / m
            );
        }
        for (t, _, check) in &r.times {
            if !matches!(t, Tool::FetchRef | Tool::Tenant) {
                println!("  - {}: {check}", t.title());
            }
        }
    }
}
