//! Tests of the group coordinator over a real engine on an in-memory bucket: which
//! groups it coordinates, durable commits and their replay, who may commit, the one
//! protocol per group id, deletion, expiry and compaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::classic::{GroupState, JoinOutcome, JoinRequest};
use super::kip848::Heartbeat;
use super::offsets::{CommittedOffset, OffsetChange, OffsetKey, OFFSETS_TOPIC};
use super::{ConsumerGroupTiming, GroupCoordinator};
use crate::coordination::testing::{self, fixture, Fixture};
use crate::storage::engine::Claim;
use crate::storage::StorageError;

const TIMING: ConsumerGroupTiming = ConsumerGroupTiming {
    session_timeout: Duration::from_secs(45),
    heartbeat_interval: Duration::from_secs(5),
};

fn claims(topic_id: Uuid, partitions: usize, epoch: i32) -> Vec<Claim> {
    (0..partitions as i32)
        .map(|partition| Claim {
            topic: OFFSETS_TOPIC.into(),
            topic_id,
            partition,
            epoch,
        })
        .collect()
}

/// A coordinator whose engine leads every offsets partition; none is loaded yet.
async fn coordinator(partitions: usize) -> (Fixture, Arc<GroupCoordinator>) {
    let f = fixture().await;
    let topic_id = Uuid::new_v4();
    for (_, r) in f.engine.take_over(claims(topic_id, partitions, 0)).await {
        r.unwrap();
    }
    let groups = GroupCoordinator::new(f.engine.clone(), topic_id, partitions, TIMING);
    (f, groups)
}

/// A group id held by offsets partition `p`.
fn group_in(groups: &GroupCoordinator, p: i32) -> String {
    (0..)
        .map(|i| format!("group-{i}"))
        .find(|g| groups.partition_for(g) == p)
        .unwrap()
}

fn commit(group: &str, topic: &str, partition: i32, offset: Option<i64>) -> OffsetChange {
    let key = OffsetKey {
        group: group.into(),
        topic: topic.into(),
        partition,
    };
    let value = offset.map(|offset| CommittedOffset {
        offset,
        leader_epoch: 1,
        metadata: Some("m".into()),
    });
    (key, value)
}

fn join_request(member_id: &str, session_timeout: Duration) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout,
        rebalance_timeout: Duration::from_secs(1),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"r"))],
    }
}

/// A first member joins `group` alone, completing the join phase at once.
async fn join_alone(groups: &GroupCoordinator, group: &str) -> JoinOutcome {
    let outcome = groups
        .join(group, join_request("", Duration::from_secs(10)), false)
        .await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.leader, outcome.member_id);
    outcome
}

fn state(groups: &GroupCoordinator, group: &str) -> Option<GroupState> {
    groups.with_group(group, |g| g.state)
}

#[tokio::test]
async fn only_the_groups_of_loaded_partitions_are_coordinated_here() {
    let (_f, groups) = coordinator(2).await;
    let (a, b) = (group_in(&groups, 0), group_in(&groups, 1));
    assert_eq!(groups.check(&a), Err(ResponseError::NotCoordinator));
    groups.load_partition(0).await.unwrap();
    assert_eq!(groups.check(&a), Ok(()));
    assert_eq!(groups.check(&b), Err(ResponseError::NotCoordinator));
    let refused = groups.write(&b, vec![commit(&b, "t", 0, Some(1))]).await;
    assert!(matches!(refused, Err(StorageError::NotLeader(_))));
    assert_eq!(
        groups.authorize_commit(&b, "", None, -1),
        Err(ResponseError::NotCoordinator)
    );
    let joined = groups
        .join(&b, join_request("", Duration::from_secs(10)), false)
        .await;
    assert_eq!(joined.error, Some(ResponseError::NotCoordinator));
}

#[tokio::test]
async fn committed_offsets_are_replayed_when_a_partition_is_loaded_again() {
    let (_f, groups) = coordinator(1).await;
    let g = group_in(&groups, 0);
    groups.load_partition(0).await.unwrap();
    let changes = vec![commit(&g, "t", 0, Some(5)), commit(&g, "t", 1, Some(7))];
    groups.write(&g, changes).await.unwrap();
    groups
        .write(&g, vec![commit(&g, "t", 1, None)])
        .await
        .unwrap();
    let five = commit(&g, "t", 0, Some(5)).1;
    assert_eq!(groups.committed(&g, "t", 0), five);
    assert_eq!(groups.committed(&g, "t", 1), None);
    assert_eq!(
        groups.committed_all(&g),
        vec![("t".to_string(), 0, five.clone().unwrap())]
    );

    groups.unload_partition(0).await;
    assert_eq!(groups.check(&g), Err(ResponseError::NotCoordinator));
    assert!(
        !groups.has_offsets(&g),
        "an unloaded partition's offsets are forgotten"
    );

    groups.load_partition(0).await.unwrap();
    assert_eq!(groups.committed(&g, "t", 0), five);
    assert_eq!(
        groups.committed(&g, "t", 1),
        None,
        "a deletion stays deleted"
    );
}

#[tokio::test]
async fn a_coordinator_deposed_in_the_bucket_is_not_confirmed() {
    let (f, groups) = coordinator(1).await;
    let g = group_in(&groups, 0);
    groups.load_partition(0).await.unwrap();
    assert_eq!(groups.confirm(&g).await, Ok(()));
    // Another broker takes the partition over; this one has not noticed yet.
    let successor = testing::engine(&f.store, 1).await;
    let topic_id = groups.offsets_topic_id();
    for (_, r) in successor.take_over(claims(topic_id, 1, 1)).await {
        r.unwrap();
    }
    assert_eq!(groups.check(&g), Ok(()), "memory still says so");
    assert_eq!(groups.confirm(&g).await, Err(ResponseError::NotCoordinator));
}

#[tokio::test]
async fn commits_need_the_current_generation_while_a_group_has_members() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    let g = group_in(&groups, 0);
    assert_eq!(groups.authorize_commit(&g, "", None, -1), Ok(()));
    assert_eq!(
        groups.authorize_commit(&g, "m", None, 3),
        Err(ResponseError::IllegalGeneration)
    );

    let joined = join_alone(&groups, &g).await;
    let (member, generation) = (joined.member_id.as_str(), joined.generation);
    assert_eq!(state(&groups, &g), Some(GroupState::CompletingRebalance));
    assert_eq!(
        groups.authorize_commit(&g, member, None, generation),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        groups.authorize_commit(&g, "", None, -1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        groups.authorize_commit(&g, member, None, generation + 1),
        Err(ResponseError::IllegalGeneration)
    );

    let assignment = Bytes::from_static(b"a");
    let assignments = vec![(member.to_string(), assignment.clone())];
    let synced = groups.sync(&g, member, None, generation, assignments).await;
    assert_eq!(synced, Ok(assignment));
    assert_eq!(
        groups.authorize_commit(&g, member, None, generation),
        Ok(())
    );
    assert_eq!(groups.heartbeat(&g, member, None, generation), Ok(()));

    assert_eq!(groups.leave(&g, member, None), Ok(()));
    assert_eq!(state(&groups, &g), Some(GroupState::Empty));
    assert_eq!(groups.authorize_commit(&g, "", None, -1), Ok(()));
}

#[tokio::test]
async fn join_refuses_session_timeouts_out_of_bounds() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    let g = group_in(&groups, 0);
    for timeout in [Duration::from_secs(1), Duration::from_secs(3600)] {
        let outcome = groups.join(&g, join_request("", timeout), false).await;
        assert_eq!(outcome.error, Some(ResponseError::InvalidSessionTimeout));
    }
    assert_eq!(state(&groups, &g), None);
}

#[tokio::test]
async fn offsets_of_an_active_group_are_not_deleted() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    let g = group_in(&groups, 0);
    let wanted = vec![("t".to_string(), 0)];
    assert_eq!(
        groups.delete_offsets(&g, &wanted).await,
        Err(ResponseError::GroupIdNotFound)
    );
    groups
        .write(&g, vec![commit(&g, "t", 0, Some(5))])
        .await
        .unwrap();
    let joined = join_alone(&groups, &g).await;
    assert_eq!(
        groups.delete_offsets(&g, &wanted).await,
        Ok(Err(ResponseError::GroupSubscribedToTopic))
    );
    assert!(groups.committed(&g, "t", 0).is_some());

    groups.leave(&g, &joined.member_id, None).unwrap();
    assert_eq!(groups.delete_offsets(&g, &wanted).await, Ok(Ok(())));
    assert!(!groups.has_offsets(&g));
}

#[tokio::test]
async fn a_group_id_is_classic_or_kip848_while_it_has_members() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    // One offsets partition holds every group.
    let (classic, kip848) = ("classic".to_string(), "kip848".to_string());
    join_alone(&groups, &classic).await;
    let topics = BTreeMap::from([("t".to_string(), (Uuid::new_v4(), 2))]);
    let heartbeat = Heartbeat {
        member_id: String::new(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed: Some(vec!["t".into()]),
        subscribed_regex: None,
        server_assignor: None,
        owned: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
    };
    assert_eq!(
        groups
            .consumer_heartbeat(&classic, heartbeat.clone(), &topics)
            .unwrap_err(),
        ResponseError::GroupIdNotFound
    );
    let reply = groups
        .consumer_heartbeat(&kip848, heartbeat.clone(), &topics)
        .unwrap();
    assert_eq!(reply.assignment.map(|a| a.len()), Some(2));
    let joined = groups
        .join(&kip848, join_request("", Duration::from_secs(10)), false)
        .await;
    assert_eq!(joined.error, Some(ResponseError::InconsistentGroupProtocol));
    assert_eq!(
        groups
            .consumer_heartbeat("", heartbeat, &topics)
            .unwrap_err(),
        ResponseError::InvalidGroupId
    );

    let listed = groups.list();
    let kinds: Vec<(&str, &str)> = listed
        .iter()
        .map(|(id, _, _, k)| (id.as_str(), *k))
        .collect();
    let mut expected = vec![(classic.as_str(), "classic"), (kip848.as_str(), "consumer")];
    expected.sort();
    assert_eq!(kinds, expected);
}

#[tokio::test]
async fn a_deleted_group_takes_its_offsets_but_an_active_one_stays() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    let g = group_in(&groups, 0);
    assert_eq!(
        groups.delete_group(&g).await,
        Err(ResponseError::GroupIdNotFound)
    );
    groups
        .write(&g, vec![commit(&g, "t", 0, Some(5))])
        .await
        .unwrap();
    assert_eq!(
        groups.list(),
        vec![(g.clone(), "consumer".to_string(), "Empty", "classic")]
    );
    let joined = join_alone(&groups, &g).await;
    assert_eq!(
        groups.delete_group(&g).await,
        Err(ResponseError::NonEmptyGroup)
    );
    groups.leave(&g, &joined.member_id, None).unwrap();
    assert_eq!(groups.delete_group(&g).await, Ok(()));
    assert!(!groups.has_offsets(&g));
    assert_eq!(state(&groups, &g), None);
    assert!(groups.list().is_empty());
}

#[tokio::test]
async fn moving_a_partition_away_forgets_its_groups() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    let g = group_in(&groups, 0);
    let joined = join_alone(&groups, &g).await;
    groups.unload_partition(0).await;
    assert_eq!(state(&groups, &g), None);
    assert_eq!(
        groups.heartbeat(&g, &joined.member_id, None, joined.generation),
        Err(ResponseError::NotCoordinator)
    );
}

#[tokio::test]
async fn timers_expire_members_whose_session_ended() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    let g = group_in(&groups, 0);
    join_alone(&groups, &g).await;
    groups.expire(Instant::now() + Duration::from_secs(5));
    assert_eq!(state(&groups, &g), Some(GroupState::CompletingRebalance));
    groups.expire(Instant::now() + Duration::from_secs(11));
    assert_eq!(state(&groups, &g), Some(GroupState::Empty));
}

#[tokio::test]
async fn a_long_offsets_log_is_compacted_to_its_live_offsets() {
    let (_f, groups) = coordinator(1).await;
    groups.load_partition(0).await.unwrap();
    let g = group_in(&groups, 0);
    // One batch past the threshold, every record the same key: one live offset.
    let changes: Vec<OffsetChange> = (0..50_001).map(|i| commit(&g, "t", 0, Some(i))).collect();
    groups.write(&g, changes).await.unwrap();
    let part = groups
        .engine
        .partition(groups.offsets_topic_id(), 0)
        .unwrap();
    let o = part.offsets();
    assert_eq!(o.log_start_offset, 50_001, "the old records are dropped");
    assert_eq!(o.high_watermark, 50_002, "one snapshot record follows them");
    groups.unload_partition(0).await;
    groups.load_partition(0).await.unwrap();
    assert_eq!(groups.committed(&g, "t", 0).map(|c| c.offset), Some(50_000));
}
