//! Rendering shared by the commands: errors, psql-style tables, human sizes and times,
//! JSON; and the reports of more than one command (`lint_report`: lint's findings, which
//! trace also renders; `migration`: what a migration runs, for `migrate --plan` and
//! `sqlmigrate`; `trace_report`: trace's per-statement table).

pub(crate) mod ci_report;
pub(crate) mod json;
pub(crate) mod lint_report;
pub(crate) mod migration;
pub(crate) mod trace_report;

use std::fmt::Write as _;
use std::time::Duration;

/// Prints an error and its causes to stderr, one `error:` line plus `caused by:` lines.
pub(crate) fn error(e: &anyhow::Error) {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", json::to_string(value)?);
    Ok(())
}

/// A table in psql's aligned format: centred headers, ` | ` separators, `-+-` rule,
/// with an optional centred title line above.
pub(crate) fn psql_table(title: Option<&str>, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let total: usize = widths.iter().map(|w| w + 2).sum::<usize>() + widths.len().saturating_sub(1);
    let mut out = String::new();
    if let Some(title) = title {
        let pad = total.saturating_sub(title.chars().count()) / 2;
        let _ = writeln!(out, "{}{title}", " ".repeat(pad));
    }
    let line = |cells: Vec<String>| format!(" {} ", cells.join(" | ")).trim_end().to_string();
    let centred = headers
        .iter()
        .zip(&widths)
        .map(|(h, w)| {
            let left = (w - h.chars().count()) / 2;
            format!(
                "{}{h}{}",
                " ".repeat(left),
                " ".repeat(w - h.chars().count() - left)
            )
        })
        .collect();
    let _ = writeln!(out, "{}", line(centred));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    let _ = writeln!(out, "{}", rule.join("+"));
    for row in rows {
        let cells = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        let _ = writeln!(out, "{}", line(cells));
    }
    out
}

/// Bytes as pg_size_pretty prints them (bytes, kB, MB, GB, TB; 1024-based).
pub(crate) fn size(bytes: i64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 10.0 * 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", value.round() as i64, units[unit])
}

/// Seconds for people: `12.3s`, `0.04s`.
pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.1}s")
    }
}

/// Wall-clock time of day `HH:MM:SS` in the local time zone (what `date +%H:%M:%S`
/// prints), from Unix milliseconds.
pub(crate) fn clock(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as libc::time_t;
    // SAFETY: localtime_r only writes the tm we pass; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        let day = unix_ms / 1000 % 86_400;
        return format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60);
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Columns of the terminal on stdout; when stdout is not a terminal, `COLUMNS` if set,
/// else None (any width: a file or a pipe).
pub(crate) fn stdout_width() -> Option<usize> {
    use std::io::IsTerminal as _;
    if std::io::stdout().is_terminal()
        && let Some((terminal_size::Width(w), _)) =
            terminal_size::terminal_size_of(std::io::stdout())
    {
        return Some(usize::from(w));
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|w| *w > 0)
}

/// Whether stdout takes colour: a terminal, `NO_COLOR` unset (no-color.org) and a
/// `TERM` that is not `dumb`.
pub(crate) fn stdout_colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").ok().is_none_or(|t| t != "dumb")
}

/// An error that only sets the exit code: the command already printed what went wrong
/// (`pgcalm lint` exits 1 on findings, 2 on usage or parse errors).
#[derive(Debug)]
pub(crate) struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_psql_style_tables() {
        let t = psql_table(
            Some("Table \"public.t\""),
            &["Column", "Type"],
            &[
                vec!["id".into(), "bigint".into()],
                vec!["email".into(), "text".into()],
            ],
        );
        insta::assert_snapshot!(t, @r#"
        Table "public.t"
         Column |  Type
        --------+--------
         id     | bigint
         email  | text
        "#);
    }

    #[test]
    fn formats_sizes_and_seconds() {
        assert_eq!(size(8192), "8192 bytes");
        assert_eq!(size(651 * 1024 * 1024), "651 MB");
        assert_eq!(secs(Duration::from_millis(40)), "0.04s");
        assert_eq!(secs(Duration::from_millis(12_345)), "12.3s");
    }
}
