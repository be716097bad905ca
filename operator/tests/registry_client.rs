//! The schema registry client against a fake registry on a loopback port: the calls it
//! makes (compatibility first, then the schema, Confluent's content type, the subject
//! escaped in the path) and how it reads refusals and silence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::Router;
use sluice_operator::http;
use sluice_operator::registry::{register, Registration, RegistryError, CONTENT_TYPE};

const TIMEOUT: Duration = Duration::from_secs(5);

type Seen = Arc<Mutex<Vec<String>>>;

fn record(seen: &Seen, what: String, headers: &HeaderMap, body: &str) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    seen.lock()
        .unwrap()
        .push(format!("{what} [{content_type}] {body}"));
}

/// A registry that knows subject `dns-value` (id 41) and refuses anything for
/// `strict-value` as incompatible.
async fn fake_registry() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/config/{subject}",
            put(
                |State(seen): State<Seen>,
                 Path(subject): Path<String>,
                 headers: HeaderMap,
                 body: String| async move {
                    record(&seen, format!("PUT config {subject}"), &headers, &body);
                    (StatusCode::OK, body)
                },
            ),
        )
        .route(
            "/subjects/{subject}/versions",
            post(
                |State(seen): State<Seen>,
                 Path(subject): Path<String>,
                 headers: HeaderMap,
                 body: String| async move {
                    record(&seen, format!("POST versions {subject}"), &headers, &body);
                    if subject == "strict-value" {
                        (
                            StatusCode::CONFLICT,
                            r#"{"error_code":409,"message":"field query removed"}"#.to_string(),
                        )
                    } else {
                        (StatusCode::OK, r#"{"id":41}"#.to_string())
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn registration(subject: &str, compatibility: Option<&'static str>) -> Registration {
    Registration {
        subject: subject.into(),
        schema_type: "JSON",
        schema: r#"{"type":"object"}"#.into(),
        compatibility,
    }
}

#[tokio::test]
async fn sets_the_compatibility_then_registers_the_schema() {
    let (addr, seen) = fake_registry().await;
    let id = register(
        &http::client(),
        &addr,
        &registration("dns-value", Some("BACKWARD")),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(id, 41);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!(r#"PUT config dns-value [{CONTENT_TYPE}] {{"compatibility":"BACKWARD"}}"#),
            format!(
                r#"POST versions dns-value [{CONTENT_TYPE}] {{"schema":"{{\"type\":\"object\"}}","schemaType":"JSON"}}"#
            ),
        ]
    );

    // Without a compatibility level only the schema is sent; a subject with a slash is
    // one path segment.
    seen.lock().unwrap().clear();
    register(
        &http::client(),
        &addr,
        &registration("ocsf/dns-value", None),
        TIMEOUT,
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("POST versions ocsf/dns-value "),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_conflict_is_a_rejection_with_the_registry_message() {
    let (addr, _) = fake_registry().await;
    let err = register(
        &http::client(),
        &addr,
        &registration("strict-value", None),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Rejected { status: 409, message, .. } if message == "field query removed"),
        "{err:?}"
    );
}

#[tokio::test]
async fn no_listener_is_unreachable() {
    let port = sluice_testkit::free_port();
    let err = register(
        &http::client(),
        &format!("127.0.0.1:{port}"),
        &registration("dns-value", None),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
}
