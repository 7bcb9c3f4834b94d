//! Courier-IMAP 5: the extracted `imaplogin`/`imapd` under the packaged `couriertcpd`, accounts in
//! a userdb served by `authdaemond`, the admin in the group `administrators`, the users listed in
//! the shared-folder index so the admin reads them as `#shared.<user>`. Courier's paths
//! (`/etc/courier`, `/run/courier`) are compiled in, so each instance runs in a mount namespace
//! of its own with the fixture's folders bound over them.

use std::process::Command;

use crate::process::{Group, chown, run, write};
use crate::{Error, Kind, Spec, root};

pub(crate) fn start(spec: &Spec<'_>) -> Result<Group, Error> {
    let d = spec.dir.display();
    for sub in ["etc/shared", "run/authdaemon", "home"] {
        std::fs::create_dir_all(spec.path(sub))?;
    }
    write(
        &spec.path("etc/authdaemonrc"),
        "authmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=1\n\
         authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
    )?;
    let pem = format!(
        "{}{}",
        std::fs::read_to_string(&spec.cert.key)?,
        std::fs::read_to_string(&spec.cert.cert)?
    );
    write(&spec.path("etc/imapd.pem"), &pem)?;
    let mut index = String::new();
    let mut accounts = String::new();
    for (user, password) in spec.accounts() {
        let home = spec.path(&format!("home/{user}"));
        std::fs::create_dir_all(&home)?;
        run(
            Kind::Courier,
            Command::new("/usr/bin/maildirmake").arg(home.join("Maildir")),
        )?;
        let is_admin = spec.admin.is_some_and(|(a, _)| *a == user);
        accounts.push_str(&format!(
            "account '{user}' '{password}' '{home}' {admin}\n",
            home = home.display(),
            admin = if is_admin { "admin" } else { "user" }
        ));
        if !is_admin {
            index.push_str(&format!("{user}\t8\t8\t{}\n", home.display()));
        }
    }
    write(&spec.path("etc/shared/index"), &index)?;
    chown(Kind::Courier, "mail:mail", &spec.path("home"))?;
    let imaplogin = root().join("courier/usr/lib/courier/courier/imaplogin");
    let imapd = root().join("courier/usr/bin/imapd");
    // The accounts go into the namespace's own /etc/courier/userdb, then authdaemond and the
    // two listeners start; the script's process group is the server.
    let script = format!(
        r#"set -e
mount --bind {d}/etc /etc/courier
mount --bind {d}/run /run/courier
account() {{
  userdb -f /etc/courier/userdb "$1" set home="$3" uid=8 gid=8 mail="$3/Maildir"
  printf '%s\n' "$2" | userdbpw -md5 | userdb -f /etc/courier/userdb "$1" set systempw
  if [ "$4" = admin ]; then userdb -f /etc/courier/userdb "$1" set options=group=administrators; fi
}}
{accounts}chmod 700 /etc/courier/userdb
makeuserdb -f /etc/courier/userdb
/usr/lib/courier/courier-authlib/authdaemond &
sleep 0.3
export IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
export IMAP_CAPABILITY_TLS="$IMAP_CAPABILITY AUTH=PLAIN"
export IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_SHAREDINDEXFILE=/etc/courier/shared/index
export IMAP_STARTTLS=YES IMAP_TLS_REQUIRED=0 COURIERTLS=/usr/bin/couriertls
export TLS_CERTFILE=/etc/courier/imapd.pem TLS_VERIFYPEER=NONE
export IMAP_USELOCKS=1 IMAP_UMASK=022 MAILDIRPATH=Maildir IMAP_TRASHFOLDERNAME=Trash
TCPD="/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup"
$TCPD {imaps} /usr/bin/couriertls -server -tcpd {imaplogin} {imapd} Maildir &
echo $! > {d}/imaps.pid
exec $TCPD {imap} {imaplogin} {imapd} Maildir
"#,
        imap = spec.imap_port,
        imaps = spec.imaps_port,
        imaplogin = imaplogin.display(),
        imapd = imapd.display(),
    );
    let path = spec.path("start.sh");
    write(&path, &script)?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh"])
        .arg(&path);
    Ok(Group::spawn(cmd, &spec.path("courier.log"))?.also_stop(spec.path("imaps.pid")))
}
