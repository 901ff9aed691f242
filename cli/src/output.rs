//! What the CLI prints: tables for lists, pretty JSON for documents and results, `ok:` lines,
//! and errors as one line on stderr.
//!
//! Colours go through `anstream`, which strips them when the stream is not a terminal (or when
//! `NO_COLOR` is set), so pipes and scripts always see plain text. `--json` turns every command's
//! output into JSON (lists as arrays) for scripts.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use comfy_table::{Attribute, Cell, ContentArrangement, Table, presets};
use serde_json::Value;

const OK: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)))
    .bold();
const ERR: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
    .bold();
const NOTE: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)))
    .bold();

/// How this invocation prints (the global `--json` flag).
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Pretty JSON on stdout (always JSON, whatever `--json` says: documents and results).
    pub fn value(&self, v: &Value) {
        let mut out = anstream::stdout();
        let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
        let _ = writeln!(out, "{text}");
    }

    /// `ok: message` on stdout — suppressed under `--json`, where `json` is printed instead.
    pub fn ok(&self, message: &str, json: impl FnOnce() -> Value) {
        if self.json {
            self.value(&json());
        } else {
            let mut out = anstream::stdout();
            let _ = writeln!(out, "{OK}ok:{OK:#} {message}");
        }
    }

    /// A plain line on stdout (not under `--json`).
    pub fn line(&self, text: &str) {
        let mut out = anstream::stdout();
        let _ = writeln!(out, "{text}");
    }

    /// A table of `rows` under `headers`, or under `--json` the `json` array.
    pub fn table(&self, headers: &[&str], rows: Vec<Vec<String>>, json: impl FnOnce() -> Value) {
        if self.json {
            self.value(&json());
            return;
        }
        let mut out = anstream::stdout();
        let _ = write!(out, "{}", render_table(headers, rows));
    }
}

/// The table as text: a bold header (on a terminal only), columns separated by spaces.
pub fn render_table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            headers
                .iter()
                .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
        );
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        table.force_no_tty();
    }
    for row in rows {
        table.add_row(row);
    }
    // No borders: columns separated by two spaces, the first flush left.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut text = table
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}

/// `note: message` on stderr.
pub fn note(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{NOTE}note:{NOTE:#} {message}");
}

/// `error: cause: cause: ...` on stderr, on one line.
pub fn print_error(err: &anyhow::Error) {
    let text = one_line(err);
    let mut out = anstream::stderr();
    let _ = writeln!(out, "{ERR}error:{ERR:#} {text}");
}

/// An error and its cause chain as one line (`a: b: c`), with repeats and newlines removed.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_print_on_one_line_without_repeats() {
        let inner = anyhow::anyhow!("connection refused\nfor real");
        let err = inner
            .context("cannot list actions")
            .context("cannot list actions");
        assert_eq!(
            one_line(&err),
            "cannot list actions: connection refused for real"
        );
    }

    #[test]
    fn tables_have_aligned_columns() {
        let text = render_table(
            &["NAME", "KIND"],
            vec![
                vec!["/guest/hello".into(), "wasm".into()],
                vec!["/guest/x".into(), "sequence".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[1].find("wasm").unwrap();
        assert_eq!(lines[2].find("sequence").unwrap(), col);
    }
}
