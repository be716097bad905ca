//! The schema registry's REST API over HTTP, on the broker's HTTP port at Confluent's
//! paths (`/subjects`, `/schemas/ids/{id}`, `/config`, `/compatibility`, ...), so any
//! Confluent client takes `http://<broker>:<http port>` as its registry URL. Every broker
//! answers; the registry itself is `governance::registry`.

use axum::body::Bytes;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sluice_schema::api::ApiRequest;

use crate::governance::SchemaRegistry;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub(super) async fn answer(
    registry: &SchemaRegistry,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let request = ApiRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        body: &body,
    };
    let response = registry.answer(&request).await;
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        response.body.to_string(),
    )
        .into_response()
}
