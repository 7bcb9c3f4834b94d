//! The IMAP migration CSV (exchange-migration.md §3): whole-file rejections with Exchange's
//! messages, per-row errors that leave the other rows going, and the admin-login form of each
//! UserName. Every error names the physical line in the file (the header is line 1).
//! Passwords never appear in any output: `CsvRow`'s Debug hides them.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

pub const MAX_ROWS: usize = 50_000;
/// 10 MB per file.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

const REQUIRED: [&str; 3] = ["EmailAddress", "UserName", "Password"];
const OPTIONAL: [&str; 1] = ["UserRoot"];

/// A whole-file rejection: nothing of the file is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The line the problem is on, when there is one.
    pub line: Option<u64>,
    pub message: String,
}

/// A row that cannot be migrated; the other rows go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowError {
    pub line: u64,
    pub email_address: String,
    pub column: Option<String>,
    pub message: String,
}

/// Which admin-login form a UserName is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "form",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum UserNameForm {
    /// `Domain/Admin/User` (Exchange IMAP).
    Exchange {
        domain: String,
        admin: String,
        user: String,
    },
    /// `User<SEP>Admin` (Dovecot and other SASL servers).
    Dovecot {
        user: String,
        admin: String,
        separator: char,
    },
    /// `#user@domain#Admin#`.
    Mirapoint { user: String, admin: String },
    /// The admin itself, with the user's place in the shared tree (Courier, Oracle).
    Courier { admin: String, user_root: String },
    /// The user's own credentials.
    Plain { user: String },
}

impl UserNameForm {
    pub fn name(&self) -> &'static str {
        match self {
            UserNameForm::Exchange { .. } => "Exchange",
            UserNameForm::Dovecot { .. } => "Dovecot",
            UserNameForm::Mirapoint { .. } => "Mirapoint",
            UserNameForm::Courier { .. } => "Courier",
            UserNameForm::Plain { .. } => "Plain",
        }
    }

    /// Recognises the form; `separator` is the server's master-user separator.
    pub fn recognise(user_name: &str, user_root: Option<&str>, separator: char) -> Self {
        if let Some(root) = user_root.filter(|r| !r.is_empty()) {
            return UserNameForm::Courier {
                admin: user_name.to_string(),
                user_root: root.to_string(),
            };
        }
        if let Some(inner) = user_name
            .strip_prefix('#')
            .and_then(|s| s.strip_suffix('#'))
            && let Some((user, admin)) = inner.split_once('#')
            && user.contains('@')
            && !admin.is_empty()
            && !admin.contains('#')
        {
            return UserNameForm::Mirapoint {
                user: user.to_string(),
                admin: admin.to_string(),
            };
        }
        let parts: Vec<&str> = user_name.split('/').collect();
        if parts.len() == 3 && parts.iter().all(|p| !p.is_empty()) {
            return UserNameForm::Exchange {
                domain: parts[0].to_string(),
                admin: parts[1].to_string(),
                user: parts[2].to_string(),
            };
        }
        if let Some((user, admin)) = user_name.rsplit_once(separator)
            && !user.is_empty()
            && !admin.is_empty()
        {
            return UserNameForm::Dovecot {
                user: user.to_string(),
                admin: admin.to_string(),
                separator,
            };
        }
        UserNameForm::Plain {
            user: user_name.to_string(),
        }
    }
}

/// One valid row.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CsvRow {
    pub line: u64,
    pub email_address: String,
    pub user_name: String,
    #[serde(skip)]
    pub password: String,
    pub user_root: Option<String>,
    pub form: UserNameForm,
}

impl fmt::Debug for CsvRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvRow")
            .field("line", &self.line)
            .field("email_address", &self.email_address)
            .field("user_name", &self.user_name)
            .field("password", &"<hidden>")
            .field("user_root", &self.user_root)
            .field("form", &self.form)
            .finish()
    }
}

/// A parsed file: the rows that can be migrated and the rows that cannot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParsedCsv {
    pub rows: Vec<CsvRow>,
    pub errors: Vec<RowError>,
    /// Unknown columns that were ignored (allowed).
    pub ignored_columns: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct CsvOptions {
    pub allow_unknown_columns: bool,
    /// The source's master-user separator, for recognising Dovecot forms.
    pub separator: char,
    /// Addresses already in other batches (lower case), with the batch name.
    pub existing: HashMap<String, String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            allow_unknown_columns: false,
            separator: '*',
            existing: HashMap::new(),
        }
    }
}

fn reject(line: Option<u64>, message: impl Into<String>) -> Rejection {
    Rejection {
        line,
        message: message.into(),
    }
}

/// Whether the bytes look like UTF-16 without a byte order mark: text whose every other byte
/// is NUL (UTF-8 takes NULs, so it would otherwise parse as garbage columns).
fn looks_like_utf16(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(512)];
    let nuls = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let half = sample.len() / 2;
    half >= 4 && (nuls(0) * 10 >= half * 9 || nuls(1) * 10 >= half * 9)
}

/// A value as an error message may show it: control characters (a terminal escape, a NUL)
/// written as escapes, never sent raw to a terminal.
pub fn shown(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect()
    } else {
        s.to_string()
    }
}

/// Text from the file's bytes: UTF-8 (BOM optional) or UTF-16 with a BOM. Lines may end in
/// CRLF, LF or CR alone.
fn decode(bytes: &[u8]) -> Result<String, Rejection> {
    let text = decode_bytes(bytes)?;
    // Old Mac line ends (CR alone) count as line ends, so every line has its own number.
    Ok(if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    })
}

fn decode_bytes(bytes: &[u8]) -> Result<String, Rejection> {
    let utf16 = |le: bool| {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| {
                let pair = [c[0], *c.get(1).unwrap_or(&0)];
                if le {
                    u16::from_le_bytes(pair)
                } else {
                    u16::from_be_bytes(pair)
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|_| {
            reject(
                None,
                "The CSV file has a UTF-16 byte order mark but isn't valid UTF-16.",
            )
        })
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            std::str::from_utf8(rest).map(str::to_string).map_err(|e| {
                reject(
                    None,
                    format!(
                        "The CSV file isn't valid UTF-8 (byte {}).",
                        e.valid_up_to() + 3
                    ),
                )
            })
        }
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        _ if looks_like_utf16(bytes) => Err(reject(
            None,
            "The CSV file isn't UTF-8: it looks like UTF-16 without a byte order mark. Save it \
             as UTF-8 (or as UTF-16 with a byte order mark) and try again.",
        )),
        _ => std::str::from_utf8(bytes).map(str::to_string).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64
                + 1;
            reject(
                Some(line),
                format!(
                    "Line {line}: the CSV file isn't UTF-8. Save it as UTF-8 (or another Unicode \
                     encoding with a byte order mark) and try again."
                ),
            )
        }),
    }
}

/// A plausible SMTP address: local@domain, 1..=1024 characters, no spaces.
pub fn is_smtp_address(s: &str) -> bool {
    if s.is_empty() || s.len() > 1024 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && !local.starts_with('.')
        && !local.ends_with('.')
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
}

/// Control characters a field may not hold: all but the line breaks and tabs a quoted CSV
/// field can carry (NUL, escape sequences, ... never reach a server or a terminal).
fn refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

fn padded(s: &str) -> bool {
    s.trim() != s
}

/// Parses and validates a CSV file.
pub fn parse(bytes: &[u8], options: &CsvOptions) -> Result<ParsedCsv, Rejection> {
    if bytes.len() > MAX_BYTES {
        return Err(reject(
            None,
            "The CSV file is larger than 10 MB. Please divide the file into two or more files and \
             submit them separately.",
        ));
    }
    let text = decode(bytes)?;
    if text.trim().is_empty() {
        return Err(reject(None, "Upload file can't be empty"));
    }
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = loop {
        match records.next() {
            None => return Err(reject(None, "Upload file can't be empty")),
            Some(Err(e)) => return Err(csv_error(e)),
            Some(Ok(r)) if r.iter().all(|f| f.trim().is_empty()) => continue,
            Some(Ok(r)) => break r,
        }
    };
    // Physical lines from byte offsets (csv's own line counter is not per physical line),
    // counted incrementally: records come in order.
    let mut counted = (0usize, 1u64);
    let mut line_of = |pos: Option<&::csv::Position>| -> u64 {
        let byte = pos.map_or(0, |p| p.byte() as usize).min(text.len());
        let (from, mut line) = counted;
        line += text.as_bytes()[from.min(byte)..byte]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        counted = (byte, line);
        // A record "starts" at the blank lines before it; skip to its first non-blank line.
        for l in text[byte..].split('\n') {
            if l.trim().is_empty() {
                line += 1;
            } else {
                break;
            }
        }
        line
    };
    let header_line = line_of(header.position());
    // Column positions, matched case-insensitively.
    let mut columns: HashMap<&'static str, usize> = HashMap::new();
    let mut unknown = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.trim();
        let known = REQUIRED
            .iter()
            .chain(OPTIONAL.iter())
            .find(|k| k.eq_ignore_ascii_case(name));
        match known {
            Some(k) => {
                if columns.insert(k, i).is_some() {
                    return Err(reject(
                        Some(header_line),
                        format!(
                            "Column \"{k}\" appears more than once in the CSV file (line {header_line})."
                        ),
                    ));
                }
            }
            None => unknown.push(name.to_string()),
        }
    }
    // A file separated by ';' or tabs reads as one column holding every name.
    if columns.is_empty()
        && let Some(sep) = [';', '\t']
            .into_iter()
            .find(|sep| header.len() == 1 && unknown.first().is_some_and(|u| u.contains(*sep)))
    {
        let name = if sep == ';' { "semicolons" } else { "tabs" };
        return Err(reject(
            Some(header_line),
            format!(
                "The header row (line {header_line}) is separated by {name}, not commas. Save the \
                 file as comma-separated values (CSV) with the columns EmailAddress, UserName and \
                 Password."
            ),
        ));
    }
    // A missing required column comes before unknown ones: `Email` is a missing EmailAddress.
    for required in REQUIRED {
        if !columns.contains_key(required) {
            let near = unknown
                .iter()
                .find(|u| {
                    let u = u.to_ascii_lowercase();
                    !u.is_empty() && required.to_ascii_lowercase().contains(&u)
                        || u.contains(&required.to_ascii_lowercase())
                })
                .map(|u| format!(" (the column \"{u}\" is not \"{required}\")"))
                .unwrap_or_default();
            return Err(reject(
                Some(header_line),
                format!(
                    "Column \"{required}\" is missing from the CSV file{near}. The first row must be \
                     a header row with the columns EmailAddress, UserName and Password."
                ),
            ));
        }
    }
    let mut ignored = Vec::new();
    for name in unknown {
        if options.allow_unknown_columns {
            ignored.push(name);
        } else {
            return Err(reject(
                Some(header_line),
                format!(
                    "Column \"{name}\" isn't recognized (line {header_line}). Remove it, or \
                     allow unknown columns (--allow-unknown-columns; in Exchange, \
                     -AllowUnknownColumnsInCsv)."
                ),
            ));
        }
    }
    let expected = header.len();
    let mut parsed = ParsedCsv {
        ignored_columns: ignored,
        ..ParsedCsv::default()
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut data_rows = 0usize;
    for record in records {
        let record = record.map_err(csv_error)?;
        let line = line_of(record.position());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue; // a blank line, or one made only of commas
        }
        data_rows += 1;
        if data_rows > MAX_ROWS {
            return Err(reject(
                Some(line),
                "The CSV file contains more than 50,000 rows. Please divide the file into two or \
                 more files and submit them separately.",
            ));
        }
        if record.len() != expected {
            return Err(reject(
                Some(line),
                format!(
                    "Row {line} has the wrong number of columns. Expected number: {expected}. \
                     Actual number: {}. Please correct the CSV file and try again.",
                    record.len()
                ),
            ));
        }
        let get = |name: &str| columns.get(name).map(|&i| record[i].to_string());
        let email = get("EmailAddress").unwrap_or_default();
        let user_name = get("UserName").unwrap_or_default();
        let password = get("Password").unwrap_or_default();
        let user_root = get("UserRoot");
        let error = |column: Option<&str>, message: String| RowError {
            line,
            email_address: email.clone(),
            column: column.map(str::to_string),
            message,
        };
        let row_error = if email.trim().is_empty() {
            Some(error(
                Some("EmailAddress"),
                format!("Line {line}: EmailAddress is empty."),
            ))
        } else if !is_smtp_address(&email) {
            Some(error(
                Some("EmailAddress"),
                format!(
                    "Line {line}: EmailAddress \"{}\" isn't a valid SMTP address.",
                    shown(&email)
                ),
            ))
        } else if user_name.trim().is_empty() {
            Some(error(
                Some("UserName"),
                format!("Line {line}: UserName is empty."),
            ))
        } else if user_name.chars().any(refused_control) {
            Some(error(
                Some("UserName"),
                format!(
                    "Line {line}: UserName holds a control character (\"{}\").",
                    shown(&user_name)
                ),
            ))
        } else if password.is_empty() {
            Some(error(
                Some("Password"),
                format!("Line {line}: Password is empty."),
            ))
        } else if password.chars().count() > 256 {
            Some(error(
                Some("Password"),
                format!("Line {line}: Password is longer than 256 characters."),
            ))
        } else if password.contains('\0') {
            // Nothing can carry a NUL to an IMAP server.
            Some(error(
                Some("Password"),
                format!("Line {line}: Password holds a NUL character."),
            ))
        } else if padded(&password) {
            Some(error(
                Some("Password"),
                format!("Line {line}: Password must not begin or end with white space."),
            ))
        } else if let Some(root) = user_root.as_deref().filter(|r| r.chars().count() > 1024) {
            let _ = root;
            Some(error(
                Some("UserRoot"),
                format!("Line {line}: UserRoot is longer than 1024 characters."),
            ))
        } else if user_root
            .as_deref()
            .is_some_and(|r| r.chars().any(refused_control))
        {
            Some(error(
                Some("UserRoot"),
                format!("Line {line}: UserRoot holds a control character."),
            ))
        } else if user_root.as_deref().is_some_and(padded) {
            Some(error(
                Some("UserRoot"),
                format!("Line {line}: UserRoot must not begin or end with white space."),
            ))
        } else if let Some(first) = seen.get(&email.to_ascii_lowercase()) {
            Some(error(
                Some("EmailAddress"),
                format!("Line {line}: {email} is already on line {first} of this file."),
            ))
        } else {
            options
                .existing
                .get(&email.to_ascii_lowercase())
                .map(|batch| {
                    error(
                        Some("EmailAddress"),
                        format!("Line {line}: {email} is already in migration batch \"{batch}\"."),
                    )
                })
        };
        seen.entry(email.to_ascii_lowercase()).or_insert(line);
        match row_error {
            Some(e) => parsed.errors.push(e),
            None => parsed.rows.push(CsvRow {
                line,
                form: UserNameForm::recognise(&user_name, user_root.as_deref(), options.separator),
                email_address: email.clone(),
                user_name,
                password,
                user_root: user_root.filter(|r| !r.is_empty()),
            }),
        }
    }
    Ok(parsed)
}

fn csv_error(e: ::csv::Error) -> Rejection {
    let line = e.position().map(|p| p.line());
    let message = match line {
        Some(l) => format!("Line {l}: the CSV file can't be read: {e}"),
        None => format!("The CSV file can't be read: {e}"),
    };
    reject(line, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> ParsedCsv {
        parse(text.as_bytes(), &CsvOptions::default()).unwrap()
    }

    fn rejected(text: &[u8]) -> Rejection {
        parse(text, &CsvOptions::default()).unwrap_err()
    }

    #[test]
    fn header_mistakes_are_named_for_what_they_are() {
        // `Email` is a missing EmailAddress, not an unknown column.
        let r = rejected(b"Email,UserName,Password\na@contoso.edu,a,p\n");
        assert!(
            r.message.starts_with("Column \"EmailAddress\" is missing from the CSV file (the column \"Email\" is not \"EmailAddress\")."),
            "{}",
            r.message
        );
        // A semicolon-separated file says so.
        let r = rejected(b"EmailAddress;UserName;Password\na@contoso.edu;a;p\n");
        assert!(
            r.message.contains("separated by semicolons, not commas"),
            "{}",
            r.message
        );
        let r = rejected(b"EmailAddress\tUserName\tPassword\n");
        assert!(r.message.contains("separated by tabs"), "{}", r.message);
        // An unknown column names the flag that allows it.
        let r = rejected(b"EmailAddress,UserName,Password,Notes\n");
        assert!(
            r.message.contains("--allow-unknown-columns"),
            "{}",
            r.message
        );
    }

    #[test]
    fn json_field_names_are_camel_case_everywhere() {
        let p = ok("EmailAddress,UserName,Password\nnot-an-address,u,p\nb@contoso.edu,b,p\n");
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.contains("\"emailAddress\"") && json.contains("\"ignoredColumns\""),
            "{json}"
        );
        assert!(
            !json.contains("email_address") && !json.contains("ignored_columns"),
            "{json}"
        );
    }

    #[test]
    fn a_plain_file() {
        let p = ok("EmailAddress,UserName,Password\r\nterrya@contoso.edu,terry.adams,1091990\r\n");
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].line, 2);
        assert_eq!(
            p.rows[0].form,
            UserNameForm::Plain {
                user: "terry.adams".into()
            }
        );
        assert!(!format!("{:?}", p.rows[0]).contains("1091990"));
        assert!(!serde_json::to_string(&p).unwrap().contains("1091990"));
    }

    #[test]
    fn whole_file_rejections() {
        assert_eq!(rejected(b"").message, "Upload file can't be empty");
        assert_eq!(
            rejected(b"\xEF\xBB\xBF\r\n\r\n").message,
            "Upload file can't be empty"
        );
        let m = rejected(b"EmailAddress,UserName\na@contoso.edu,a\n");
        assert!(
            m.message
                .starts_with("Column \"Password\" is missing from the CSV file."),
            "{m}"
        );
        let m = rejected(b"EmailAddress,UserName,Password\na@contoso.edu,a\n");
        assert_eq!(m.line, Some(2));
        assert!(
            m.message.starts_with(
                "Row 2 has the wrong number of columns. Expected number: 3. Actual number: 2."
            ),
            "{m}"
        );
        let m = rejected(b"EmailAddress,UserName,Password,Extra\na@contoso.edu,a,p,x\n");
        assert!(m.message.contains("\"Extra\" isn't recognized"), "{m}");
        let m = rejected(b"EmailAddress,UserName,Password,emailaddress\n");
        assert!(m.message.contains("more than once"), "{m}");
        let m = rejected(b"EmailAddress,UserName,Password\na@contoso.edu,caf\xe9,p\n");
        assert_eq!(m.line, Some(2));
        assert!(m.message.contains("isn't UTF-8"), "{m}");
    }

    #[test]
    fn unknown_columns_allowed() {
        let o = CsvOptions {
            allow_unknown_columns: true,
            ..CsvOptions::default()
        };
        let p = parse(
            b"Extra,emailaddress,USERNAME,Password\nx,a@contoso.edu,a,p\n",
            &o,
        )
        .unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.ignored_columns, vec!["Extra"]);
    }

    #[test]
    fn bom_quoting_and_blank_lines() {
        let text = "\u{feff}EmailAddress,UserName,Password\n\n\"a@contoso.edu\",\"Adams, Terry\",\"p\"\"w,\nx\"\n,,\nb@contoso.edu,b,p\n";
        let p = parse(text.as_bytes(), &CsvOptions::default()).unwrap();
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].user_name, "Adams, Terry");
        assert_eq!(p.rows[0].password, "p\"w,\nx");
        assert_eq!(
            p.rows[0].line, 3,
            "physical lines: the header is line 1, a blank line 2"
        );
        assert_eq!(p.rows[1].line, 6, "the quoted newline took a line");
    }

    #[test]
    fn hostile_files_get_a_clear_answer() {
        // Old Mac line ends: every row has its own line number.
        let cr = b"EmailAddress,UserName,Password\ra@contoso.edu,a,pw\rb@contoso.edu,b, pw\r";
        let p = parse(cr, &CsvOptions::default()).unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].line, 2);
        assert_eq!(p.errors[0].line, 3, "{:?}", p.errors);
        // UTF-16 without a byte order mark.
        let utf16: Vec<u8> = "EmailAddress,UserName,Password\r\na@contoso.edu,a,pw\r\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let e = parse(&utf16, &CsvOptions::default()).unwrap_err();
        assert!(
            e.message.contains("UTF-16 without a byte order mark"),
            "{e:?}"
        );
        // NUL and terminal escapes in fields are refused, and never echoed raw.
        let bad = "EmailAddress,UserName,Password,UserRoot\n\
                   a@contoso.edu,te\u{0}rry,pw,\n\
                   b@contoso.edu,b,p\u{0}w,\n\
                   c\u{1b}[31m@contoso.edu,c,pw,\n\
                   d@contoso.edu,d,pw,/users/\u{1b}]0;x\n";
        let p = parse(bad.as_bytes(), &CsvOptions::default()).unwrap();
        assert!(p.rows.is_empty(), "{:?}", p.rows);
        let messages: Vec<&str> = p.errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages[0].contains("UserName holds a control character"),
            "{messages:?}"
        );
        assert!(messages[1].contains("Password holds a NUL"), "{messages:?}");
        assert!(
            messages[2].contains("isn't a valid SMTP address"),
            "{messages:?}"
        );
        assert!(
            messages[3].contains("UserRoot holds a control character"),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .all(|m| !m.contains('\u{1b}') && !m.contains('\0'))
        );
    }

    #[test]
    fn utf16_with_bom() {
        let text = "EmailAddress,UserName,Password\r\nzoë@contoso.edu,zoë,pw\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        let p = parse(&bytes, &CsvOptions::default()).unwrap();
        assert_eq!(p.rows[0].user_name, "zoë");
    }

    #[test]
    fn per_row_errors_leave_other_rows() {
        let text = "EmailAddress,UserName,Password,UserRoot\n\
            not-an-address,u,p,\n\
            ,u,p,\n\
            c@contoso.edu,,p,\n\
            d@contoso.edu,d,,\n\
            e@contoso.edu,e, padded,\n\
            f@contoso.edu,admin,p, /users/f\n\
            G@contoso.edu,g,p,\n\
            g@CONTOSO.edu,g2,p,\n\
            h@contoso.edu,h,p,\n";
        let p = ok(text);
        let lines: Vec<(u64, Option<&str>)> = p
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (2, Some("EmailAddress")),
                (3, Some("EmailAddress")),
                (4, Some("UserName")),
                (5, Some("Password")),
                (6, Some("Password")),
                (7, Some("UserRoot")),
                (9, Some("EmailAddress")),
            ]
        );
        assert!(
            p.errors[6].message.contains("already on line 8"),
            "{}",
            p.errors[6].message
        );
        assert!(
            p.errors.iter().all(|e| !e.message.contains("padded")),
            "no password in errors"
        );
        let emails: Vec<&str> = p.rows.iter().map(|r| r.email_address.as_str()).collect();
        assert_eq!(emails, vec!["G@contoso.edu", "h@contoso.edu"]);
    }

    #[test]
    fn long_values() {
        let long_pw = "p".repeat(257);
        let text = format!(
            "EmailAddress,UserName,Password\na@contoso.edu,a,{long_pw}\nb@contoso.edu,b,{}\n",
            "p".repeat(256)
        );
        let p = ok(&text);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.rows.len(), 1);
        let long_email = format!("{}@contoso.edu", "a".repeat(1100));
        let p = ok(&format!(
            "EmailAddress,UserName,Password\n{long_email},a,p\n"
        ));
        assert_eq!(p.errors.len(), 1);
    }

    #[test]
    fn already_in_another_batch() {
        let o = CsvOptions {
            existing: HashMap::from([("a@contoso.edu".to_string(), "Batch1".to_string())]),
            ..CsvOptions::default()
        };
        let p = parse(b"EmailAddress,UserName,Password\nA@contoso.edu,a,p\n", &o).unwrap();
        assert!(
            p.errors[0]
                .message
                .contains("already in migration batch \"Batch1\"")
        );
    }

    #[test]
    fn row_limit_is_fifty_thousand() {
        let mut text = String::from("EmailAddress,UserName,Password\n");
        for i in 0..MAX_ROWS {
            text.push_str(&format!("u{i}@contoso.edu,u{i},p\n"));
        }
        assert_eq!(ok(&text).rows.len(), MAX_ROWS);
        text.push_str("last@contoso.edu,last,p\n");
        let r = rejected(text.as_bytes());
        assert!(
            r.message
                .starts_with("The CSV file contains more than 50,000 rows."),
            "{r}"
        );
        assert_eq!(r.line, Some(50_002));
    }

    #[test]
    fn size_limit_is_ten_megabytes() {
        let mut text = String::from("EmailAddress,UserName,Password,UserRoot\n");
        let pad = "r".repeat(1000);
        let mut i = 0;
        while text.len() <= MAX_BYTES {
            text.push_str(&format!("u{i}@contoso.edu,u,p,{pad}\n"));
            i += 1;
        }
        assert!(
            rejected(text.as_bytes())
                .message
                .contains("larger than 10 MB")
        );
    }

    #[test]
    fn admin_forms() {
        let f = |u: &str, root: Option<&str>| UserNameForm::recognise(u, root, '*').name();
        assert_eq!(
            f("contoso-students/mailadmin/terry.adams", None),
            "Exchange"
        );
        assert_eq!(f("terry.adams*mailadmin", None), "Dovecot");
        assert_eq!(
            f("#terry.adams@contoso-students#mailadmin#", None),
            "Mirapoint"
        );
        assert_eq!(f("mailadmin", Some("/users/terry.adams")), "Courier");
        assert_eq!(f("terry.adams", None), "Plain");
        assert_eq!(
            UserNameForm::recognise("terry%admin", None, '%').name(),
            "Dovecot"
        );
    }
}
