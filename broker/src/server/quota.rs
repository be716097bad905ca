//! Client quotas at the connection (docs/security.md, Quotas): after a request is
//! handled, its produce bytes, fetch bytes and handling time count against the quotas
//! that apply to the connection's user and client id. An over-quota client gets the
//! throttle time in its response and the connection reads nothing more from it until
//! that time has passed (KIP-219), so one feed's spike cannot starve the others.

use std::time::{Duration, Instant};

use kafka_protocol::messages::ResponseKind;

use super::Broker;
use crate::security::quotas::{self, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};
use crate::security::throttle::Measure;

/// What one request used.
pub struct Usage {
    pub produce_bytes: usize,
    pub fetch_bytes: usize,
    pub handling: Duration,
}

/// The longest wait the request's usage earns its connection (zero when no quota
/// applies or the client is under its quotas).
pub fn throttle(broker: &Broker, user: &str, client_id: &str, usage: &Usage) -> Duration {
    let state = broker.security.store.current();
    if state.quotas.is_empty() {
        return Duration::ZERO;
    }
    let now = Instant::now();
    let measures = [
        (
            Measure::ProduceBytes,
            PRODUCER_BYTE_RATE,
            usage.produce_bytes as f64,
        ),
        (
            Measure::FetchBytes,
            CONSUMER_BYTE_RATE,
            usage.fetch_bytes as f64,
        ),
        (
            Measure::RequestPercent,
            REQUEST_PERCENTAGE,
            usage.handling.as_secs_f64() * 100.0,
        ),
    ];
    measures
        .into_iter()
        .filter(|(m, _, value)| *value > 0.0 || *m == Measure::RequestPercent)
        .filter_map(|(measure, key, value)| {
            let (quota, holder) = quotas::applicable(&state.quotas, user, client_id, key)?;
            let wait = broker
                .security
                .throttler
                .record(measure, &holder, value, quota, now);
            if !wait.is_zero() {
                broker
                    .metrics
                    .throttled
                    .get_or_create(&crate::metrics::QuotaLabel { quota: key })
                    .inc();
            }
            Some(wait)
        })
        .max()
        .unwrap_or_default()
}

/// Record bytes in a Fetch response.
pub fn fetch_bytes(body: &ResponseKind) -> usize {
    match body {
        ResponseKind::Fetch(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
            .sum(),
        _ => 0,
    }
}

/// Tells the client how long it is throttled, in the responses that have the field.
pub fn set_throttle(body: &mut ResponseKind, wait: Duration) {
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    macro_rules! throttled {
        ($($kind:ident),* $(,)?) => {
            match body {
                $(ResponseKind::$kind(r) => r.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    throttled!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        DescribeConfigs,
        AlterConfigs,
        CreatePartitions,
        DeleteGroups,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        OffsetDelete,
        DescribeCluster,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        DescribeClientQuotas,
        AlterClientQuotas,
    );
}
