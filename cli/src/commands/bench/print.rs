//! The human summary of a `wisp bench` run: the figures on labelled lines (scripts that want
//! them read `--json`), a table of both tenants per phase in a noisy-neighbour run, and the
//! audit's `pruned: N` and `lost: N` lines last.

use super::{Latency, PhaseReport, Summary, TenantStats};
use crate::output::{Output, render_table};

pub fn summary(out: &Output, s: &Summary) {
    let mix = if s.hostile.is_empty() {
        String::new()
    } else {
        format!(
            ", {:.0}% hostile ({})",
            s.hostile_mix * 100.0,
            s.hostile.join(",")
        )
    };
    let mode = if s.non_blocking { ", non-blocking" } else { "" };
    out.line(&format!(
        "bench: {} at {}, {} clients for {:.1} s{mode}{mix}",
        s.action, s.apihost, s.clients, s.duration_s
    ));
    let what = if s.non_blocking {
        "accepted"
    } else {
        "acknowledged"
    };
    out.line(&format!(
        "invokes:    {} {what} in {:.2} s = {:.0} invokes/s",
        s.invokes, s.elapsed_s, s.throughput
    ));
    let a = &s.answers;
    out.line(&format!(
        "answers:    {} ok, {} action errors, {} internal errors, {} accepted (202), {} other, \
         {} throttled (429), {} refused (no activation id), {} failed",
        a.ok,
        a.action_error,
        a.internal_error,
        a.accepted,
        a.other_acknowledged,
        a.throttled,
        a.refused,
        a.failed
    ));
    let line = |label: &str, l: &Latency| {
        out.line(&format!("{label}{}", percentiles(l)));
    };
    line("latency:    ", &s.latency_ms);
    if let Some(h) = &s.hostile_latency_ms {
        line("hostile:    ", h);
        for (name, counts) in &s.per_action {
            out.line(&format!("  {name}: {}", counts.describe()));
        }
    }
    if let Some(n) = &s.noisy {
        out.line(&format!(
            "noisy neighbour: {} by {} clients{} from {:.1} s on",
            n.action,
            n.clients,
            if n.non_blocking {
                " (non-blocking)"
            } else {
                ""
            },
            n.alone.duration_s
        ));
        let mut rows = Vec::new();
        for (label, phase) in [("alone", &n.alone), ("flood", &n.flood)] {
            rows.extend(phase_rows(label, phase));
        }
        let table = render_table(
            &[
                "PHASE",
                "TENANT",
                "ACTION",
                "INVOKES/S",
                "P50",
                "P90",
                "P99",
                "P99.9",
                "MAX",
                "ERRORS",
                "THROTTLED",
            ],
            rows,
        );
        for l in table.lines() {
            out.line(l.trim_end());
        }
    }
    audit_lines(out, "records:    ", &s.records);
    if let Some(n) = &s.noisy {
        audit_lines(out, "noisy:      ", &n.records);
    }
    out.line(&format!("pruned: {}", s.pruned));
    out.line(&format!("lost: {}", s.lost));
    let lost_ids = s
        .records
        .lost_ids
        .iter()
        .chain(s.noisy.iter().flat_map(|n| &n.records.lost_ids));
    for id in lost_ids {
        out.line(&format!("  lost {id}"));
    }
}

fn percentiles(l: &Latency) -> String {
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        l.p50, l.p90, l.p99, l.p99_9, l.max, l.samples
    )
}

fn phase_rows(label: &str, p: &PhaseReport) -> Vec<Vec<String>> {
    let row = |tenant: &str, t: &TenantStats| {
        let l = &t.latency_ms;
        let ms = |v: f64| format!("{v:.2}");
        vec![
            format!("{label} ({:.1} s)", p.duration_s),
            tenant.to_string(),
            t.action.clone(),
            format!("{:.0}", t.throughput),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p99_9),
            ms(l.max),
            t.errors.to_string(),
            t.throttled.to_string(),
        ]
    };
    let mut rows = vec![row("main", &p.main)];
    if let Some(n) = &p.noisy {
        rows.push(row("noisy", n));
    }
    rows
}

fn audit_lines(out: &Output, label: &str, r: &super::Audit) {
    let retention = match r.retention {
        Some(n) => format!(
            "the server keeps {n} records per namespace, so the newest {} had to have one",
            r.must_exist
        ),
        None => "the server does not report its retention, so every one had to have a record"
            .to_string(),
    };
    out.line(&format!(
        "{label}{} acknowledged, {} found, {} pruned, {} lost, {} unverified (checked in {:.1} s, \
         waiting up to {:.0} s for a record); {retention}",
        r.acknowledged, r.found, r.pruned, r.lost, r.unverified, r.seconds, r.patience_s
    ));
}
