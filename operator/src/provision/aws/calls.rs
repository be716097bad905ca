//! An SDK interceptor on every AWS client of the provider: it counts the calls per
//! operation (and, when asked, logs them in order), and can fail a chosen changing call,
//! before it is sent or after AWS carried it out, to prove that a reconcile interrupted
//! anywhere resumes cleanly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::CloudCallLabel;

/// True for an operation that changes something (everything but Get, Head, List and
/// Describe).
pub fn is_mutating(operation: &str) -> bool {
    !["Get", "Head", "List", "Describe"]
        .iter()
        .any(|p| operation.starts_with(p))
}

/// One call: `service:Operation`, e.g. `s3:CreateBucket`.
pub type Call = String;

/// When an injected fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// The request is never sent: nothing changed.
    BeforeSend,
    /// AWS carried the request out, but the operator sees an error.
    AfterSend,
}

#[derive(Debug, Default)]
struct State {
    counts: BTreeMap<Call, u64>,
    /// `Some` while recording.
    log: Option<Vec<Call>>,
    /// Changing calls seen since the fault was armed, and the fault.
    mutating_seen: usize,
    fault: Option<(usize, FaultPoint)>,
    /// The call that fails after it was sent.
    fail_after_send: Option<Call>,
}

/// The interceptor (cheap to clone: all clones share their counts).
#[derive(Clone, Debug, Default)]
pub struct CallLog {
    state: Arc<Mutex<State>>,
    /// `sluice_operator_cloud_calls_total{call}`, when the process exports metrics.
    metric: Option<Family<CloudCallLabel, Counter>>,
}

impl CallLog {
    /// A log that also counts every call in the operator's metrics.
    pub fn with_metric(metric: Family<CloudCallLabel, Counter>) -> CallLog {
        CallLog {
            metric: Some(metric),
            ..CallLog::default()
        }
    }

    /// A log that also records every call in order (tests).
    pub fn recording() -> CallLog {
        let log = CallLog::default();
        log.state.lock().expect("call log").log = Some(Vec::new());
        log
    }

    /// The calls since the last `take` (recording logs only).
    pub fn take(&self) -> Vec<Call> {
        let mut s = self.state.lock().expect("call log");
        s.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Calls per operation since the process started.
    pub fn counts(&self) -> BTreeMap<Call, u64> {
        self.state.lock().expect("call log").counts.clone()
    }

    /// Fails the `n`th changing call from now on (1-based), once.
    pub fn fail_mutating_call(&self, n: usize, point: FaultPoint) {
        let mut s = self.state.lock().expect("call log");
        s.mutating_seen = 0;
        s.fault = Some((n, point));
    }

    fn operation(cfg: &ConfigBag) -> Call {
        match cfg.load::<Metadata>() {
            Some(m) => format!("{}:{}", service_prefix(m.service()), m.name()),
            None => "unknown:unknown".into(),
        }
    }
}

/// The IAM-style prefix of a service's calls.
fn service_prefix(service: &str) -> String {
    match service.to_ascii_lowercase().as_str() {
        "s3" => "s3".into(),
        "iam" => "iam".into(),
        "ec2" => "ec2".into(),
        "sts" => "sts".into(),
        other => other.replace(' ', ""),
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "SluiceCallLog"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let call = Self::operation(cfg);
        if let Some(metric) = &self.metric {
            metric
                .get_or_create(&CloudCallLabel { call: call.clone() })
                .inc();
        }
        let mut s = self.state.lock().expect("call log");
        *s.counts.entry(call.clone()).or_insert(0) += 1;
        if let Some(log) = s.log.as_mut() {
            log.push(call.clone());
        }
        let operation = call.split_once(':').map(|(_, o)| o).unwrap_or(&call);
        if is_mutating(operation) && s.fault.is_some() {
            s.mutating_seen += 1;
            if let Some((n, point)) = s.fault {
                if s.mutating_seen == n {
                    s.fault = None;
                    match point {
                        FaultPoint::BeforeSend => {
                            return Err(format!("injected fault before sending {call}").into())
                        }
                        FaultPoint::AfterSend => s.fail_after_send = Some(call),
                    }
                }
            }
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let call = Self::operation(cfg);
        let mut s = self.state.lock().expect("call log");
        if s.fail_after_send.as_ref() == Some(&call) {
            s.fail_after_send = None;
            return Err(format!("injected fault after {call} was carried out").into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_mutating;

    #[test]
    fn reads_are_not_mutating() {
        for op in [
            "GetRole",
            "HeadBucket",
            "ListObjectVersions",
            "DescribeVpcEndpoints",
        ] {
            assert!(!is_mutating(op), "{op}");
        }
        for op in [
            "CreateBucket",
            "PutRolePolicy",
            "DeleteVpcEndpoints",
            "TagRole",
        ] {
            assert!(is_mutating(op), "{op}");
        }
    }
}
