//! A scripted Kubernetes API server: each test states, in order, the calls a reconcile
//! must make and what the server answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use sluice_operator::controller::cluster::{ClusterObserver, Observation, ObserveTarget};
use sluice_operator::controller::{Context, OperatorConfig};
use sluice_operator::metrics::Metrics;
use sluice_operator::registry::{Registration, RegistryError};
use tower_test::mock::{self, Handle, SendResponse};

type MockHandle = Handle<Request<Body>, Response<Body>>;

/// The API server side of a mocked client.
pub struct ApiServer {
    handle: MockHandle,
}

/// One request the reconcile made.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl Call {
    /// Answers with `status` and a JSON body.
    pub fn respond(self, status: StatusCode, body: Value) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        self.send.send_response(response);
    }

    /// Answers 200 with `body`.
    pub fn ok(self, body: Value) {
        self.respond(StatusCode::OK, body)
    }

    /// Answers a server-side apply by echoing the applied object (what the API server
    /// stores when nothing else owns the fields).
    pub fn echo(self) {
        let body = self.body.clone();
        self.ok(body)
    }

    /// Answers a status apply with `object` carrying the applied status.
    pub fn with_status_of(self, mut object: Value) {
        object["status"] = self.body["status"].clone();
        self.ok(object)
    }

    /// Answers with a Kubernetes `Status` error.
    pub fn fail(self, code: u16, reason: &str) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("mock: {reason}"), "reason": reason, "code": code,
        });
        self.respond(StatusCode::from_u16(code).unwrap(), status)
    }

    pub fn not_found(self) {
        self.fail(404, "NotFound")
    }

    /// What a real API server answers for a group/version it does not serve (discovery):
    /// a plain-text `404 page not found`, not a `Status` (found by the e2e suite).
    pub fn page_not_found(self) {
        let response = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(b"404 page not found\n".to_vec()))
            .unwrap();
        self.send.send_response(response);
    }

    /// True for a server-side apply by the operator.
    pub fn is_apply(&self) -> bool {
        self.method == Method::PATCH && self.query.contains("fieldManager=sluice-operator")
    }
}

impl ApiServer {
    /// The next request; fails the test when none comes within 10 s.
    pub async fn next(&mut self) -> Call {
        let (request, send) =
            tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
                .await
                .expect("the reconcile made no further API call within 10 s")
                .expect("the client was dropped");
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Call {
            method,
            path,
            query,
            body,
            send,
        }
    }

    /// The next request, which must be `method` on `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected API call (query {:?}, body {})",
            call.query,
            call.body
        );
        call
    }

    /// An Event POST; returns its body.
    pub async fn expect_event(&mut self, namespace: &str) -> Value {
        let call = self
            .expect(
                Method::POST,
                &format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
            )
            .await;
        let body = call.body.clone();
        call.echo();
        body
    }

    /// Asserts the reconcile makes no further call (waits briefly).
    pub async fn expect_silence(mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), self.handle.next_request()).await
        {
            panic!(
                "unexpected extra API call: {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}

/// Figures a test hands the cluster reconciler instead of scraping brokers: each
/// observe takes the next observation, the last one repeats. Drain, move and schema
/// registration requests are recorded in `calls` (`drain 2`, `undrain 2`,
/// `move dns-0 1`, `register dns-value JSON BACKWARD at <addr>`); a registration is
/// answered with `registry` (default: id 1).
pub struct FixedObserver {
    observations: Mutex<VecDeque<Observation>>,
    pub calls: Arc<Mutex<Vec<String>>>,
    pub registry: Mutex<Option<Result<i32, RegistryError>>>,
}

impl FixedObserver {
    pub fn new(observations: Vec<Observation>) -> Self {
        FixedObserver {
            observations: Mutex::new(observations.into()),
            calls: Arc::default(),
            registry: Mutex::new(None),
        }
    }
}

impl ClusterObserver for FixedObserver {
    fn observe<'a>(&'a self, _target: &'a ObserveTarget) -> BoxFuture<'a, Observation> {
        let mut queue = self.observations.lock().unwrap();
        let obs = if queue.len() > 1 {
            queue.pop_front().unwrap()
        } else {
            queue.front().cloned().unwrap_or_default()
        };
        Box::pin(async move { obs })
    }

    fn set_draining<'a>(
        &'a self,
        _metrics_addr: &'a str,
        node: i32,
        draining: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        let verb = if draining { "drain" } else { "undrain" };
        self.calls.lock().unwrap().push(format!("{verb} {node}"));
        Box::pin(async { Ok(()) })
    }

    fn move_partitions<'a>(
        &'a self,
        _bootstrap: &'a str,
        _security: &'a sluice_operator::kafka::ClientSecurity,
        moves: &'a [(String, i32, i32)],
    ) -> BoxFuture<'a, Result<Vec<String>, String>> {
        let mut calls = self.calls.lock().unwrap();
        for (t, p, to) in moves {
            calls.push(format!("move {t}-{p} {to}"));
        }
        Box::pin(async { Ok(Vec::new()) })
    }

    fn register_schema<'a>(
        &'a self,
        http_addr: &'a str,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<i32, RegistryError>> {
        self.calls.lock().unwrap().push(format!(
            "register {} {} {} at {http_addr}",
            registration.subject,
            registration.schema_type,
            registration.compatibility.unwrap_or("-")
        ));
        let answer = self.registry.lock().unwrap().clone().unwrap_or(Ok(1));
        Box::pin(async move { answer })
    }
}

/// A context whose schema registry answers `answer`; the third value records the
/// registrations.
pub fn context_with_registry(
    answer: Result<i32, RegistryError>,
) -> (Arc<Context>, ApiServer, Arc<Mutex<Vec<String>>>) {
    let observer = FixedObserver::new(vec![Observation::default()]);
    *observer.registry.lock().unwrap() = Some(answer);
    let calls = observer.calls.clone();
    let (ctx, api) = bare_context_with(Arc::new(observer));
    (Arc::new(ctx), api, calls)
}

/// A context over a sequence of observations; the third value records what the
/// reconciler asked the brokers to do.
pub fn context_observing(
    observations: Vec<Observation>,
) -> (Arc<Context>, ApiServer, Arc<Mutex<Vec<String>>>) {
    let observer = FixedObserver::new(observations);
    let calls = observer.calls.clone();
    let (ctx, api) = bare_context_with(Arc::new(observer));
    (Arc::new(ctx), api, calls)
}

/// A context whose client talks to the returned mock API server.
pub fn context(observation: Observation) -> (Arc<Context>, ApiServer) {
    let (ctx, api) = bare_context(observation);
    (Arc::new(ctx), api)
}

/// The same, with `provider` as the `aws` cloud provider.
pub fn context_with_aws(
    observation: Observation,
    provider: Arc<dyn sluice_operator::provision::CloudProvider>,
) -> (Arc<Context>, ApiServer) {
    let (ctx, api) = bare_context(observation);
    let providers = sluice_operator::provision::Providers {
        local: Arc::new(sluice_operator::provision::local::LocalProvider),
        aws: provider,
    };
    (Arc::new(ctx.with_providers(providers)), api)
}

fn bare_context(observation: Observation) -> (Context, ApiServer) {
    bare_context_with(Arc::new(FixedObserver::new(vec![observation])))
}

fn bare_context_with(observer: Arc<dyn ClusterObserver>) -> (Context, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let config = OperatorConfig {
        broker_image: "sluice-broker:test".into(),
        io_timeout: Duration::from_secs(5),
        ..OperatorConfig::default()
    };
    let ctx = Context::new(client, config, Metrics::default(), observer);
    (ctx, ApiServer { handle })
}
