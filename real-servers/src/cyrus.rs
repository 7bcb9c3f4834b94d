//! Cyrus IMAP 3.6: the packaged `master` with the extracted `imapd`, users in a sasldb, the
//! admin in `admins` and `proxyservers` (so it may act as a user by SASL authzid), mailboxes
//! `user.<name>` created by the admin over IMAP.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::process::{Group, chown, run, write};
use crate::{Error, Kind, RealServer, Spec, client, root};

pub(crate) fn start(spec: &Spec<'_>) -> Result<Group, Error> {
    let d = spec.dir.display();
    for sub in ["config", "spool", "run/proc", "run/lock", "run/socket"] {
        std::fs::create_dir_all(spec.path(sub))?;
    }
    let admin = spec.admin.map(|(a, _)| a.as_str()).unwrap_or("");
    let imapd = format!(
        r#"configdirectory: {d}/config
proc_path: {d}/run/proc
mboxname_lockpath: {d}/run/lock
defaultpartition: default
partition-default: {d}/spool
altnamespace: no
unixhierarchysep: no
admins: {admin}
proxyservers: {admin}
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
servername: localhost
tls_server_cert: {cert}
tls_server_key: {key}
lmtpsocket: {d}/run/socket/lmtp
idlesocket: {d}/run/socket/idle
notifysocket: {d}/run/socket/notify
syslog_prefix: mailmig-cyrus
"#,
        cert = spec.cert.cert.display(),
        key = spec.cert.key.display(),
    );
    let conf = spec.path("imapd.conf");
    write(&conf, &imapd)?;
    let bin = root().join("cyrus/usr/lib/cyrus/bin/imapd");
    let master = format!(
        r#"START {{
  recover cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -C {c} -r"
}}
SERVICES {{
  imap  cmd="{bin} -C {c}" listen="127.0.0.1:{imap}" prefork=0
  imaps cmd="{bin} -s -C {c}" listen="127.0.0.1:{imaps}" prefork=0
}}
EVENTS {{
}}
DAEMON {{
}}
"#,
        c = conf.display(),
        bin = bin.display(),
        imap = spec.imap_port,
        imaps = spec.imaps_port,
    );
    write(&spec.path("cyrus.conf"), &master)?;
    let sasldb = spec.path("sasldb2");
    for (user, password) in spec.accounts() {
        let mut child = Command::new("/usr/sbin/saslpasswd2")
            .args(["-p", "-c", "-u", "localhost", "-f"])
            .arg(&sasldb)
            .arg(&user)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(password.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(Error::Start {
                kind: Kind::Cyrus,
                message: format!(
                    "saslpasswd2 {user}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
    }
    chown(Kind::Cyrus, "cyrus:mail", spec.dir)?;
    run(Kind::Cyrus, Command::new("chmod").arg("0640").arg(&sasldb))?;
    let mut cmd = Command::new("/usr/lib/cyrus/bin/master");
    cmd.arg("-C")
        .arg(&conf)
        .arg("-M")
        .arg(spec.path("cyrus.conf"))
        .arg("-p")
        .arg(spec.path("master.pid"));
    Group::spawn(cmd, &spec.path("master.log"))
}

/// The admin creates each user's mailbox, as an admin of a real Cyrus does.
pub(crate) async fn create_mailboxes(server: &RealServer) -> Result<(), Error> {
    let Some((admin, password)) = server.admin() else {
        return Err(Error::Start {
            kind: Kind::Cyrus,
            message: "Cyrus needs an admin to create the users' mailboxes".into(),
        });
    };
    let users: Vec<String> = server.users.iter().map(|(u, _)| u.clone()).collect();
    client::create_as_admin(Kind::Cyrus, server.imap_port, admin, password, &users).await
}
