//! A scripted Kubernetes API server: each test states, in order, the calls a reconcile
//! must make and what the server answers.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use sluice_operator::controller::cluster::{ClusterObserver, Observation, ObserveTarget};
use sluice_operator::controller::{Context, OperatorConfig};
use sluice_operator::metrics::Metrics;
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

/// Figures a test hands the cluster reconciler instead of scraping brokers.
pub struct FixedObserver(pub Observation);

impl ClusterObserver for FixedObserver {
    fn observe<'a>(
        &'a self,
        _target: &'a ObserveTarget,
    ) -> futures::future::BoxFuture<'a, Observation> {
        let obs = self.0.clone();
        Box::pin(async move { obs })
    }
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
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let config = OperatorConfig {
        broker_image: "sluice-broker:test".into(),
        io_timeout: Duration::from_secs(5),
        ..OperatorConfig::default()
    };
    let ctx = Context::new(
        client,
        config,
        Metrics::default(),
        Arc::new(FixedObserver(observation)),
    );
    (ctx, ApiServer { handle })
}
