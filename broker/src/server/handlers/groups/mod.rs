//! Consumer group APIs, by family. Each translates requests into calls on the group
//! coordinator (`coordination::groups`) and its answers into responses.
//!
//! - [`coordinator`]: FindCoordinator, which broker coordinates a group
//! - [`classic`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup (the classic protocol)
//! - [`offsets`]: OffsetCommit, OffsetFetch, OffsetDelete
//! - [`admin`]: DescribeGroups, ListGroups, DeleteGroups
//! - [`kip848`]: ConsumerGroupHeartbeat, ConsumerGroupDescribe (KIP-848)

pub mod admin;
pub mod classic;
pub mod coordinator;
pub mod kip848;
pub mod offsets;

use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// The error code of a result (0: none).
fn code(r: Result<(), ResponseError>) -> i16 {
    r.err().map_or(0, |e| e.code())
}

fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}
