//! report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched), so
//! it can be mailed, archived and opened anywhere.

use std::fmt::Write;

use engine::rehearsal::{Readiness, Rehearsal, UserRehearsal, explain};

use super::{duration, mib};

/// Text made safe inside HTML elements and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;color:#222;max-width:72em}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555} table{border-collapse:collapse;margin:.6em 0;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;font-size:.92em}
th{background:#f3f3f3} td.n{text-align:right;font-variant-numeric:tabular-nums}
.Ready{color:#17663a;font-weight:600} .Warning{color:#8a5a00;font-weight:600}
.Failed{color:#b00020;font-weight:600} .err{color:#b00020}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.4em} svg text{font-size:12px;font-family:inherit}
";

pub fn render(r: &Rehearsal) -> String {
    let t = &r.totals;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Migration rehearsal: {endpoint}</title><style>{STYLE}</style></head><body>\n\
         <h1>Migration rehearsal</h1>\n<p class=\"meta\">Endpoint <b>{endpoint}</b> ({server}), \
         CSV {csv}, {when}. Limits: {maxsize} a message, {cap} items a mailbox{excluded}. \
         The source was read only.</p>\n",
        endpoint = esc(&r.endpoint),
        server = esc(&r.server),
        csv = esc(r.csv.as_deref().unwrap_or("none (the whole organisation)")),
        when = r.generated_at.format("%Y-%m-%d %H:%M UTC"),
        maxsize = mib(r.limits.max_message_bytes),
        cap = r.limits.item_cap,
        excluded = if r.limits.exclude_folders.is_empty() {
            String::new()
        } else {
            format!(
                ", folders excluded: {}",
                esc(&r.limits.exclude_folders.join(", "))
            )
        },
    );
    if let Some(why) = &r.refusal {
        let _ = writeln!(
            h,
            "<p class=\"err\" id=\"refusal\"><b>The batch would be refused:</b> {}</p>",
            esc(why)
        );
    }
    let forecast = match &r.forecast {
        Some(f) => duration(f.seconds),
        None => "not measured".into(),
    };
    let _ = writeln!(
        h,
        "<div class=\"cards\" id=\"totals\">\
         <div class=\"card\"><b>{users}</b>users</div>\
         <div class=\"card\"><b class=\"Ready\">{ready}</b>ready</div>\
         <div class=\"card\"><b class=\"Warning\">{warning}</b>with warnings</div>\
         <div class=\"card\"><b class=\"Failed\">{failed}</b>would fail</div>\
         <div class=\"card\"><b>{to_copy}</b>messages to copy ({to_copy_bytes})</div>\
         <div class=\"card\"><b>{skipped}</b>items skipped</div>\
         <div class=\"card\"><b>{forecast}</b>forecast</div></div>",
        users = t.users,
        ready = t.ready,
        warning = t.warning,
        failed = t.failed,
        to_copy = t.to_copy_items,
        to_copy_bytes = mib(t.to_copy_bytes),
        skipped = t.skipped_items,
    );
    if let Some(f) = &r.forecast {
        let _ = writeln!(
            h,
            "<p>Forecast of the initial syncs: <b>{}</b> with {} users at once (the endpoint's \
             MaxConcurrentMigrations), at {:.0} messages/s and {:.0} KiB/s per user, measured by {} \
             ({} messages, {} in {:.1}s). Incremental syncs follow every 24 hours.</p>",
            duration(f.seconds),
            f.concurrency,
            f.rate.items_per_second,
            f.rate.bytes_per_second / 1024.0,
            if f.rate.method == "copy" {
                "a copy into a scratch tenant"
            } else {
                "a timed read at the source (the target's speed not included)"
            },
            f.rate.items,
            mib(f.rate.bytes),
            f.rate.elapsed_ms as f64 / 1000.0
        );
    }
    h.push_str(
        "<h2>Users</h2>\n<table id=\"users\"><thead><tr><th>Line</th><th>User</th>\
        <th>Status</th><th>Messages</th><th>Size</th><th>To copy</th><th>Skipped</th>\
        <th>Forecast</th><th>Error or warnings</th></tr></thead><tbody>\n",
    );
    for u in &r.users {
        user_row(&mut h, u);
    }
    h.push_str("</tbody></table>\n");
    h.push_str("<h2>Mailbox sizes</h2>\n");
    h.push_str(&bars(
        "sizes",
        r.users
            .iter()
            .filter_map(|u| Some((u.email_address.as_str(), u.survey.as_ref()?.bytes as f64)))
            .collect(),
        |b| mib(b as u64),
    ));
    if r.forecast.is_some() {
        h.push_str("<h2>Forecast by user</h2>\n");
        h.push_str(&bars(
            "forecast",
            r.users
                .iter()
                .filter_map(|u| Some((u.email_address.as_str(), u.forecast_seconds?)))
                .collect(),
            duration,
        ));
    }
    h.push_str("<h2>Skipped items</h2>\n");
    let mut any = false;
    for u in &r.users {
        let Some(s) = &u.survey else { continue };
        if s.skipped.is_empty() {
            continue;
        }
        any = true;
        let _ = write!(
            h,
            "<h3>{}</h3>\n<table class=\"skipped\"><thead><tr><th>Folder</th><th>Item</th>\
             <th>Kind</th><th>Size</th><th>Date</th><th>Detail</th></tr></thead><tbody>\n",
            esc(&u.email_address)
        );
        for k in &s.skipped {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td title=\"{}\">{}</td><td class=\"n\">{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                esc(&k.item.folder),
                esc(&k.item.item),
                esc(explain(k.item.reason)),
                k.item.reason,
                k.size.map(mib).unwrap_or_default(),
                k.date
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
                esc(&k.item.detail)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if !any {
        h.push_str("<p>None.</p>\n");
    }
    h.push_str("<h2>What the kinds mean</h2>\n<ul>\n");
    for reason in engine::sync::SkipReason::ALL {
        let _ = writeln!(h, "<li>{}</li>", esc(explain(reason)));
    }
    h.push_str("</ul>\n</body></html>\n");
    h
}

fn user_row(h: &mut String, u: &UserRehearsal) {
    let s = u.survey.as_ref();
    let num = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let notes = match &u.error {
        Some(e) => format!("<span class=\"err\">{}</span>", esc(e)),
        None => u
            .warnings
            .iter()
            .map(|w| esc(w))
            .collect::<Vec<_>>()
            .join("<br>"),
    };
    let status = match u.status {
        Readiness::Ready => "Ready",
        Readiness::Warning => "Warning",
        Readiness::Failed => "Failed",
    };
    let _ = writeln!(
        h,
        "<tr><td class=\"n\">{}</td><td>{}{}</td><td class=\"{status}\">{status}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td>{notes}</td></tr>",
        u.line,
        esc(&u.email_address),
        u.kind
            .map(|k| format!(" <small>({})</small>", k.name()))
            .unwrap_or_default(),
        num(s.map(|s| s.items.to_string())),
        num(s.map(|s| mib(s.bytes))),
        num(s.map(|s| s.to_copy_items.to_string())),
        num(s.map(|s| s.skipped.len().to_string())),
        num(u.forecast_seconds.map(duration)),
    );
}

/// A horizontal bar chart as inline SVG, one bar per user.
fn bars(id: &str, rows: Vec<(&str, f64)>, label: fn(f64) -> String) -> String {
    if rows.is_empty() {
        return "<p>No data.</p>\n".into();
    }
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let (name_w, bar_w, row_h) = (260.0, 420.0, 22.0);
    let height = rows.len() as f64 * row_h + 8.0;
    let mut s = format!(
        "<svg id=\"{id}\" role=\"img\" width=\"{}\" height=\"{height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n",
        name_w + bar_w + 120.0
    );
    for (i, (name, v)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let w = (v / max * bar_w).max(1.0);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{name_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"#3b73b9\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            name_w - 6.0,
            y + 14.0,
            esc(name),
            row_h - 6.0,
            name_w + w + 6.0,
            y + 14.0,
            esc(&label(*v))
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_in_names_is_shown_not_run() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("a\u{1b}[31mb"), "a\u{fffd}[31mb");
    }
}
