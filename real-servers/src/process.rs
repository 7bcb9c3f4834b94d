//! Processes, ports, certificates and files shared by the three launchers.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::{Error, Kind, root};

/// A server's processes, in a process group of their own: stopped (TERM, then KILL) on drop.
pub(crate) struct Group {
    child: Child,
    /// Files naming processes that left the group (couriertcpd makes its own).
    pid_files: Vec<PathBuf>,
}

impl Group {
    /// Spawns `command` as the leader of a new process group, its output into `log`.
    pub(crate) fn spawn(mut command: Command, log: &Path) -> Result<Self, Error> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()?;
        Ok(Self {
            child,
            pid_files: Vec::new(),
        })
    }

    /// Also stops the process (and its group) whose pid this file will hold.
    pub(crate) fn also_stop(mut self, pid_file: PathBuf) -> Self {
        self.pid_files.push(pid_file);
        self
    }

    fn signal(&self, signal: &str) {
        let mut groups = vec![self.child.id().to_string()];
        for f in &self.pid_files {
            if let Ok(pid) = std::fs::read_to_string(f) {
                groups.push(pid.trim().to_string());
            }
        }
        for g in groups.iter().filter(|g| !g.is_empty()) {
            let _ = Command::new("kill")
                .args([signal, "--", &format!("-{g}"), g])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Children the leader left behind, and a leader that would not stop.
        self.signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The programs a kind needs, and root (the servers switch to their own system users).
pub(crate) fn check_can_run(kind: Kind) -> Result<(), Error> {
    let unavailable = |why: String| Err(Error::Unavailable(kind, why));
    let uid = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return unavailable("the fixtures run the servers as root".into());
    }
    let needed: Vec<PathBuf> = match kind {
        Kind::Dovecot => vec!["/usr/sbin/dovecot".into()],
        Kind::Cyrus => vec![
            "/usr/lib/cyrus/bin/master".into(),
            "/usr/sbin/saslpasswd2".into(),
            root().join("cyrus/usr/lib/cyrus/bin/imapd"),
        ],
        Kind::Courier => vec![
            "/usr/sbin/couriertcpd".into(),
            "/usr/bin/couriertls".into(),
            "/usr/lib/courier/courier-authlib/authdaemond".into(),
            "/usr/sbin/userdb".into(),
            "/usr/bin/maildirmake".into(),
            root().join("courier/usr/bin/imapd"),
            root().join("courier/usr/lib/courier/courier/imaplogin"),
        ],
    };
    if let Some(missing) = needed.iter().find(|p| !p.exists()) {
        return unavailable(format!("{} is missing", missing.display()));
    }
    let tool = if kind == Kind::Courier {
        "unshare"
    } else {
        "openssl"
    };
    if Command::new(tool).arg("--version").output().is_err() {
        return unavailable(format!("{tool} is missing"));
    }
    Ok(())
}

/// The servers' own users must reach the fixture's folder.
pub(crate) fn open_up(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Runs a command, turning a failure into a start error with its output.
pub(crate) fn run(kind: Kind, command: &mut Command) -> Result<String, Error> {
    let out = command.output().map_err(|e| Error::Start {
        kind,
        message: format!("{command:?}: {e}"),
    })?;
    if !out.status.success() {
        return Err(Error::Start {
            kind,
            message: format!(
                "{command:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A server certificate and its key.
pub(crate) struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate made the way most admins make one: `openssl req -x509`, which marks it
/// CA:TRUE, for `localhost` and 127.0.0.1.
pub(crate) fn self_signed_certificate(dir: &Path, kind: Kind) -> Result<Certificate, Error> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(
        kind,
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    Ok(Certificate { cert, key })
}

/// A port nothing listens on now (the server binds it right after).
pub(crate) fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Waits until the port greets (`* OK` on the plain port, or at least accepts for TLS).
pub(crate) async fn wait_for_port(port: u16, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let mut buf = [0u8; 64];
            // A plain port greets; a TLS port waits for the client's hello: accepting is enough.
            match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => return Ok(()),
                Err(_) => return Ok(()),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing answered on 127.0.0.1:{port} within {within:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every `*.log` of the fixture's folder, for a failing test's message.
pub(crate) fn read_logs(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                out.push_str(&format!("--- {}\n", p.display()));
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// Writes a file, creating its folder.
pub(crate) fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// `chown -R owner path`.
pub(crate) fn chown(kind: Kind, owner: &str, path: &Path) -> Result<(), Error> {
    run(kind, Command::new("chown").arg("-R").arg(owner).arg(path)).map(|_| ())
}
