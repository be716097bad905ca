//! `sluice evidence` as a user runs it: the binary against a local HTTP server standing
//! in for a broker's `/v1/evidence`, checking what it prints and how it exits.

mod common;

use common::{
    query_param, report, run, stderr, stdout, Answer, FakeServer, FINDING, FROM, FROM_MS, TO, TO_MS,
};
use sluice_schema::evidence::Report;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A broker that knows the topics `clean` and `dns-events` (with a finding), answers 404
/// for `missing` and 500 for `broken`.
fn broker() -> FakeServer {
    FakeServer::start(|target| {
        if !target.starts_with("/v1/evidence?") {
            return Answer::text("404 Not Found", "no such path");
        }
        match query_param(target, "topic").as_deref() {
            Some("clean") => Answer::json(
                "200 OK",
                serde_json::to_string(&report("clean", false)).unwrap(),
            ),
            Some("dns-events") => Answer::json(
                "200 OK",
                serde_json::to_string(&report("dns-events", true)).unwrap(),
            ),
            Some("broken") => {
                Answer::text("500 Internal Server Error", "lake catalog unavailable\n")
            }
            _ => Answer::json(
                "404 Not Found",
                r#"{"error": "unknown topic missing"}"#.into(),
            ),
        }
    })
}

/// `sluice evidence` on `topic` over the usual window [FROM, TO).
fn evidence(broker: &str, topic: &str, extra: &[&str]) -> std::process::Output {
    evidence_over(broker, topic, FROM, TO, extra)
}

/// `sluice evidence` on `topic` over the window `from`..`to`, as given on the command line.
fn evidence_over(
    broker: &str,
    topic: &str,
    from: &str,
    to: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "evidence", "--broker", broker, "--topic", topic, "--from", from, "--to", to,
    ];
    args.extend_from_slice(extra);
    run(SLUICE, &args, None)
}

#[test]
fn prints_the_table_and_exits_2_when_the_report_has_findings() {
    let server = broker();
    let out = evidence(&server.url(), "dns-events", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", stderr(&out));
    assert!(
        text.starts_with("Evidence report\n  Topic      dns-events\n  Table      security.dns\n"),
        "{text}"
    );
    assert!(
        text.contains("  Window     2026-12-01T10:00:00Z .. 2026-12-01T11:00:00Z\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  PARTITION  FIRST  LAST  RECORDS  TABLE ROWS  TABLE POSITION  NODE\n\
             \x20         0      0    99      100          90              90     1\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("Findings (1)\n  - {FINDING}\n")),
        "{text}"
    );
    assert_eq!(stderr(&out), "");
    // The window went to the broker in epoch milliseconds.
    let targets = server.targets();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(query_param(&targets[0], "from"), Some(FROM_MS.to_string()));
    assert_eq!(query_param(&targets[0], "to"), Some(TO_MS.to_string()));
}

#[test]
fn json_output_round_trips_and_exits_0_without_findings() {
    let server = broker();
    let out = evidence(&server.url(), "clean", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: Report = serde_json::from_str(&stdout(&out)).expect("stdout is a report");
    assert_eq!(printed, report("clean", false));
}

#[test]
fn markdown_output_and_epoch_millisecond_times() {
    let server = broker();
    let out = evidence_over(
        &server.url(),
        "clean",
        &FROM_MS.to_string(),
        &TO_MS.to_string(),
        &["--output", "markdown"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        text.starts_with("## Evidence report\n\n| Field | Value |\n| --- | --- |\n"),
        "{text}"
    );
    assert!(text.ends_with("### Findings\n\nno findings\n"), "{text}");
}

#[test]
fn an_error_answer_is_quoted_and_exits_1() {
    let server = broker();
    let out = evidence(&server.url(), "missing", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: the broker at {} answered 404 Not Found",
            server.url()
        )),
        "{err}"
    );
    assert!(err.trim_end().ends_with(": unknown topic missing"), "{err}");

    let out = evidence(&server.url(), "broken", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("answered 500 Internal Server Error"), "{err}");
    assert!(
        err.trim_end().ends_with(": lake catalog unavailable"),
        "{err}"
    );
}

#[test]
fn a_refused_connection_is_a_clear_error() {
    // Bound, then released: nothing listens there.
    let port = sluice_testkit::net::free_port();
    let out = evidence(&format!("127.0.0.1:{port}"), "clean", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: no answer from the broker at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn a_reversed_window_is_refused_before_asking_the_broker() {
    let server = broker();
    let out = evidence_over(&server.url(), "clean", TO, FROM, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: --from (2026-12-01T11:00:00Z) must be before --to (2026-12-01T10:00:00Z): the window is [from, to)\n"
    );
    assert!(server.targets().is_empty());
}

#[test]
fn usage_errors_exit_1_so_that_2_always_means_findings() {
    // --topic needs --broker.
    let out = run(
        SLUICE,
        &["evidence", "--topic", "t", "--from", FROM, "--to", TO],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--broker"), "{}", stderr(&out));
    // A time that is neither RFC 3339 nor milliseconds.
    let out = run(
        SLUICE,
        &[
            "evidence", "--broker", "b:1", "--topic", "t", "--from", "noon", "--to", TO,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"noon\" is neither an RFC 3339 time"),
        "{}",
        stderr(&out)
    );
    // Help is not an error.
    let out = run(SLUICE, &["evidence", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("--feed <FEED>"), "{}", stdout(&out));
}
