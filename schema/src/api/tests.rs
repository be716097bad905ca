//! Routing of each endpoint, with Confluent's status codes and error codes.

use serde_json::{json, Value};

use super::*;

/// A client over a registry that keeps the new states, as the broker's CAS loop would.
#[derive(Default)]
struct Client {
    reg: Registry,
}

impl Client {
    fn call(&mut self, method: &str, target: &str, body: Value) -> (u16, Value) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (resp, next) = route(
            &self.reg,
            &ApiRequest {
                method,
                path,
                query,
                body: &body,
            },
        );
        if let Some(n) = next {
            assert_ne!(n, self.reg, "a new state must differ");
            self.reg = n;
        }
        (resp.status, resp.body)
    }

    fn code(&mut self, method: &str, target: &str, body: Value) -> i64 {
        let (_, b) = self.call(method, target, body);
        b["error_code"].as_i64().unwrap_or(0)
    }
}

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string","default":""}]}"#;
const BAD: &str = r#"{"type":"record","name":"R","fields":[{"name":"c","type":"string"}]}"#;

#[test]
fn register_read_and_list() {
    let mut c = Client::default();
    assert_eq!(c.call("GET", "/", Value::Null), (200, json!({})));
    assert_eq!(
        c.call("POST", "/subjects/t-value/versions", json!({"schema": V1})),
        (200, json!({"id": 1}))
    );
    // Idempotent: no new state.
    let (resp, next) = route(
        &c.reg,
        &ApiRequest {
            method: "POST",
            path: "/subjects/t-value/versions",
            query: "",
            body: json!({"schema": V1}).to_string().as_bytes(),
        },
    );
    assert_eq!((resp.status, next), (200, None));
    assert_eq!(
        c.call(
            "POST",
            "/subjects/t-value/versions",
            json!({"schema": V2, "schemaType": "AVRO"})
        )
        .1,
        json!({"id": 2})
    );
    let js = r#"{"type":"object"}"#;
    assert_eq!(
        c.call(
            "POST",
            "/subjects/j/versions",
            json!({"schema": js, "schemaType": "JSON"})
        )
        .1,
        json!({"id": 3})
    );

    assert_eq!(
        c.call("GET", "/schemas/ids/1", Value::Null),
        (200, json!({"schema": V1}))
    );
    assert_eq!(
        c.call("GET", "/schemas/ids/3?subject=j", Value::Null).1,
        json!({"schema": js, "schemaType": "JSON"})
    );
    assert_eq!(
        c.call("GET", "/schemas/ids/3/schema", Value::Null).1,
        json!({"type": "object"})
    );
    assert_eq!(
        c.call("GET", "/schemas/ids/1/subjects", Value::Null).1,
        json!(["t-value"])
    );
    assert_eq!(
        c.call("GET", "/schemas/ids/2/versions", Value::Null).1,
        json!([{"subject": "t-value", "version": 2}])
    );
    assert_eq!(c.code("GET", "/schemas/ids/99", Value::Null), 40403);
    assert_eq!(c.call("GET", "/schemas/ids/x", Value::Null).0, 404);
    assert_eq!(
        c.call("GET", "/schemas/types", Value::Null).1,
        json!(["AVRO", "JSON"])
    );

    assert_eq!(
        c.call("GET", "/subjects", Value::Null).1,
        json!(["j", "t-value"])
    );
    assert_eq!(
        c.call("GET", "/subjects?subjectPrefix=t-", Value::Null).1,
        json!(["t-value"])
    );
    assert_eq!(
        c.call("GET", "/subjects/t-value/versions", Value::Null).1,
        json!([1, 2])
    );
    let v2 = json!({"subject": "t-value", "version": 2, "id": 2, "schema": V2});
    assert_eq!(
        c.call("GET", "/subjects/t-value/versions/latest", Value::Null)
            .1,
        v2
    );
    assert_eq!(
        c.call("GET", "/subjects/t-value/versions/-1", Value::Null)
            .1,
        v2
    );
    assert_eq!(
        c.call("GET", "/subjects/t-value/versions/2", Value::Null).1,
        v2
    );
    assert_eq!(
        c.call("GET", "/subjects/t-value/versions/1/schema", Value::Null)
            .1["name"],
        "R"
    );
    assert_eq!(
        c.call(
            "GET",
            "/subjects/t-value/versions/1/referencedby",
            Value::Null
        )
        .1,
        json!([])
    );
    assert_eq!(
        c.code("GET", "/subjects/t-value/versions/7", Value::Null),
        40402
    );
    assert_eq!(
        c.code("GET", "/subjects/t-value/versions/0", Value::Null),
        42202
    );
    assert_eq!(c.code("GET", "/subjects/nope/versions", Value::Null), 40401);
    assert_eq!(
        c.code("GET", "/subjects/nope/versions/1", Value::Null),
        40401
    );
}

#[test]
fn subject_names_are_percent_decoded() {
    let mut c = Client::default();
    c.call(
        "POST",
        "/subjects/a%2Fb%20c/versions",
        json!({"schema": V1}),
    );
    assert_eq!(c.call("GET", "/subjects", Value::Null).1, json!(["a/b c"]));
    assert_eq!(
        c.call("GET", "/subjects/a%2Fb%20c/versions", Value::Null).1,
        json!([1])
    );
}

#[test]
fn register_errors() {
    let mut c = Client::default();
    c.call("POST", "/subjects/s/versions", json!({"schema": V1}));
    let (status, body) = c.call("POST", "/subjects/s/versions", json!({"schema": BAD}));
    assert_eq!((status, body["error_code"].clone()), (409, json!(409)));
    let (status, body) = c.call(
        "POST",
        "/subjects/s/versions",
        json!({"schema": "{\"type\":\"recrd\"}"}),
    );
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    assert!(body["message"].as_str().unwrap().contains("AVRO"), "{body}");
    let (status, body) = c.call(
        "POST",
        "/subjects/s/versions",
        json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}),
    );
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    assert!(body["message"].as_str().unwrap().contains("PROTOBUF"));
    let refs = json!({"schema": V1, "references": [{"name": "x", "subject": "y", "version": 1}]});
    assert_eq!(c.code("POST", "/subjects/s/versions", refs), 42201);
    assert_eq!(c.code("POST", "/subjects/s/versions", json!({})), 42201);
    // A body that is not JSON: Confluent's JSON parse error, 400.
    let (resp, next) = route(
        &c.reg,
        &ApiRequest {
            method: "POST",
            path: "/subjects/s/versions",
            query: "",
            body: b"{nope",
        },
    );
    assert_eq!(
        (resp.status, resp.body["error_code"].clone(), next),
        (400, json!(400), None)
    );
}

#[test]
fn lookup_under_subject() {
    let mut c = Client::default();
    c.call("POST", "/subjects/s/versions", json!({"schema": V1}));
    let (status, body) = c.call("POST", "/subjects/s", json!({"schema": V1}));
    assert_eq!(
        (status, body),
        (
            200,
            json!({"subject": "s", "id": 1, "version": 1, "schema": V1})
        )
    );
    assert_eq!(c.code("POST", "/subjects/s", json!({"schema": V2})), 40403);
    assert_eq!(c.code("POST", "/subjects/t", json!({"schema": V1})), 40401);
}

#[test]
fn deletes_soft_then_permanent() {
    let mut c = Client::default();
    c.call("POST", "/subjects/s/versions", json!({"schema": V1}));
    c.call("POST", "/subjects/s/versions", json!({"schema": V2}));
    assert_eq!(
        c.code(
            "DELETE",
            "/subjects/s/versions/1?permanent=true",
            Value::Null
        ),
        40407
    );
    assert_eq!(
        c.call("DELETE", "/subjects/s/versions/1", Value::Null),
        (200, json!(1))
    );
    assert_eq!(
        c.code("DELETE", "/subjects/s/versions/1", Value::Null),
        40406
    );
    assert_eq!(
        c.call("GET", "/subjects/s/versions", Value::Null).1,
        json!([2])
    );
    assert_eq!(
        c.call("GET", "/subjects/s/versions?deleted=true", Value::Null)
            .1,
        json!([1, 2])
    );
    assert_eq!(
        c.call("GET", "/subjects/s/versions/1?deleted=true", Value::Null)
            .1["id"],
        1
    );
    assert_eq!(
        c.call(
            "DELETE",
            "/subjects/s/versions/1?permanent=true",
            Value::Null
        ),
        (200, json!(1))
    );
    assert_eq!(
        c.code("DELETE", "/subjects/s?permanent=true", Value::Null),
        40405
    );
    assert_eq!(
        c.call("DELETE", "/subjects/s", Value::Null),
        (200, json!([2]))
    );
    assert_eq!(c.code("DELETE", "/subjects/s", Value::Null), 40404);
    assert_eq!(c.call("GET", "/subjects", Value::Null).1, json!([]));
    assert_eq!(
        c.call("GET", "/subjects?deleted=true", Value::Null).1,
        json!(["s"])
    );
    // The soft-deleted schema still answers by id.
    assert_eq!(c.call("GET", "/schemas/ids/2", Value::Null).0, 200);
    assert_eq!(
        c.call("DELETE", "/subjects/s?permanent=true", Value::Null),
        (200, json!([2]))
    );
    assert_eq!(c.code("DELETE", "/subjects/s", Value::Null), 40401);
    assert_eq!(c.code("GET", "/schemas/ids/2", Value::Null), 40403);
}

#[test]
fn compatibility_endpoint() {
    let mut c = Client::default();
    c.call("POST", "/subjects/s/versions", json!({"schema": V1}));
    let path = "/compatibility/subjects/s/versions/latest";
    assert_eq!(
        c.call("POST", path, json!({"schema": V2})).1,
        json!({"is_compatible": true})
    );
    assert_eq!(
        c.call("POST", path, json!({"schema": BAD})).1,
        json!({"is_compatible": false})
    );
    let (_, body) = c.call(
        "POST",
        &format!("{path}?verbose=true"),
        json!({"schema": BAD}),
    );
    assert_eq!(body["is_compatible"], false);
    assert!(
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("oldSchemaVersion: 1")),
        "{body}"
    );
    assert_eq!(
        c.call(
            "POST",
            "/compatibility/subjects/s/versions",
            json!({"schema": BAD})
        )
        .1,
        json!({"is_compatible": false})
    );
    assert_eq!(
        c.code(
            "POST",
            "/compatibility/subjects/s/versions/5",
            json!({"schema": V2})
        ),
        40402
    );
    assert_eq!(
        c.code(
            "POST",
            "/compatibility/subjects/s/versions/zero",
            json!({"schema": V2})
        ),
        42202
    );
    // No subject yet: anything is compatible with its latest.
    assert_eq!(
        c.call(
            "POST",
            "/compatibility/subjects/new/versions/latest",
            json!({"schema": BAD})
        )
        .1,
        json!({"is_compatible": true})
    );
    assert_eq!(c.code("POST", path, json!({"schema": "{"})), 42201);
    let (_, body) = c.call(
        "POST",
        &format!("{path}?verbose=true"),
        json!({"schema": "{"}),
    );
    assert_eq!(body["is_compatible"], false);
}

#[test]
fn config_endpoints() {
    let mut c = Client::default();
    assert_eq!(
        c.call("GET", "/config", Value::Null).1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        c.call("PUT", "/config", json!({"compatibility": "full"})).1,
        json!({"compatibility": "FULL"})
    );
    assert_eq!(
        c.call("GET", "/config", Value::Null).1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(c.code("GET", "/config/s", Value::Null), 40408);
    assert_eq!(
        c.call("GET", "/config/s?defaultToGlobal=true", Value::Null)
            .1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        c.call("PUT", "/config/s", json!({"compatibility": "NONE"}))
            .1,
        json!({"compatibility": "NONE"})
    );
    assert_eq!(
        c.call("GET", "/config/s", Value::Null).1,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        c.code("PUT", "/config/s", json!({"compatibility": "SIDEWAYS"})),
        42203
    );
    assert_eq!(c.call("PUT", "/config/s", Value::Null).0, 400);
    // The subject level applies: NONE lets an incompatible schema in.
    c.call("POST", "/subjects/s/versions", json!({"schema": V1}));
    assert_eq!(
        c.call("POST", "/subjects/s/versions", json!({"schema": BAD}))
            .1,
        json!({"id": 2})
    );
    assert_eq!(
        c.call("DELETE", "/config/s", Value::Null).1,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(c.code("DELETE", "/config/s", Value::Null), 40401);
    assert_eq!(
        c.call("DELETE", "/config", Value::Null).1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        c.call("GET", "/config", Value::Null).1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
}

#[test]
fn mode_unknown_paths_and_methods() {
    let mut c = Client::default();
    assert_eq!(
        c.call("GET", "/mode", Value::Null).1,
        json!({"mode": "READWRITE"})
    );
    assert_eq!(
        c.call("GET", "/nowhere", Value::Null),
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    assert_eq!(
        c.call("GET", "/subjects/s/versions/1/else", Value::Null).0,
        404
    );
    assert_eq!(c.call("PATCH", "/subjects", Value::Null).0, 405);
    assert_eq!(c.code("PUT", "/subjects/s/versions", Value::Null), 405);
}

#[test]
fn percent_decoding_and_queries() {
    assert_eq!(params::percent_decode("a%2fb%zz%4"), "a/b%zz%4");
    let q = params::Query::parse("deleted=TRUE&subjectPrefix=a%2Bb+c&permanent");
    assert!(q.flag("deleted"));
    assert!(!q.flag("permanent"));
    assert_eq!(q.get("subjectPrefix"), Some("a+b c"));
}
