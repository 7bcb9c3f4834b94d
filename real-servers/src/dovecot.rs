//! Dovecot 2.3: users and master users (the admin) in passwd-files, maildir homes owned by
//! `mail`, LOGIN as `user<SEP>admin` and SASL PLAIN with an authorization identity.

use std::process::Command;

use crate::process::{Group, chown, write};
use crate::{Error, Kind, Spec};

pub(crate) fn start(spec: &Spec<'_>) -> Result<Group, Error> {
    let d = spec.dir.display();
    let passwd = |accounts: &[(String, String)]| {
        accounts
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}::::::\n"))
            .collect::<String>()
    };
    write(&spec.path("users"), &passwd(spec.users))?;
    let masters: Vec<(String, String)> = spec.admin.cloned().into_iter().collect();
    write(&spec.path("masters"), &passwd(&masters))?;
    for sub in ["run", "state", "home"] {
        std::fs::create_dir_all(spec.path(sub))?;
    }
    chown(Kind::Dovecot, "mail:mail", &spec.path("home"))?;
    let conf = format!(
        r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = {sep}
mail_location = maildir:~/Maildir
first_valid_uid = 8
mail_uid = mail
mail_gid = mail
passdb {{
  driver = passwd-file
  args = {d}/masters
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users
}}
userdb {{
  driver = static
  args = home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
"#,
        cert = spec.cert.cert.display(),
        key = spec.cert.key.display(),
        sep = spec.master_separator,
        imap = spec.imap_port,
        imaps = spec.imaps_port,
    );
    let conf = format!("{conf}{}", spec.dovecot_settings);
    let path = spec.path("dovecot.conf");
    write(&path, &conf)?;
    let mut cmd = Command::new("/usr/sbin/dovecot");
    cmd.arg("-F").arg("-c").arg(&path);
    Group::spawn(cmd, &spec.path("dovecot-stdout.log"))
}
