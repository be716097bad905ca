//! Tests of KIP-848 groups: incremental hand-over, pattern subscriptions, static
//! members, expiry.

use super::*;

fn hb(member: &str, epoch: i32, owned: Option<Vec<TopicPartition>>) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: epoch,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
        subscribed_regex: None,
        server_assignor: None,
        owned,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
    }
}

#[test]
fn a_second_member_gets_partitions_only_after_the_first_revokes_them() {
    let t = Uuid::from_u128(7);
    let topics: BTreeMap<String, (Uuid, i32)> = [("t".to_string(), (t, 4))].into();
    let now = Instant::now();
    let mut g = ConsumerGroup::default();
    let a = g.heartbeat(hb("a", 0, None), &topics, now).unwrap();
    assert_eq!(a.assignment.as_ref().unwrap().len(), 4);
    let a_epoch = a.member_epoch;

    let b = g.heartbeat(hb("b", 0, None), &topics, now).unwrap();
    assert_eq!(b.assignment, Some(BTreeSet::new()), "nothing free yet");
    assert_eq!(g.state(), "Reconciling");

    // a learns it must give up two partitions; its epoch stays until it has.
    let owned_all: Vec<TopicPartition> = (0..4).map(|p| (t, p)).collect();
    let a2 = g
        .heartbeat(hb("a", a_epoch, Some(owned_all)), &topics, now)
        .unwrap();
    let keep = a2.assignment.clone().unwrap();
    assert_eq!(keep.len(), 2);
    assert_eq!(a2.member_epoch, a_epoch);
    assert_eq!(
        g.validate_commit("a", a_epoch),
        Ok(()),
        "commits at the current epoch still work"
    );

    let a3 = g
        .heartbeat(
            hb("a", a_epoch, Some(keep.iter().copied().collect())),
            &topics,
            now,
        )
        .unwrap();
    assert!(a3.member_epoch > a_epoch, "revocation done: new epoch");
    let b2 = g
        .heartbeat(hb("b", b.member_epoch, Some(vec![])), &topics, now)
        .unwrap();
    assert_eq!(b2.assignment.unwrap().len(), 2);
    assert_eq!(g.state(), "Stable");
    assert_eq!(
        g.validate_commit("a", a_epoch),
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        g.heartbeat(hb("a", 999, None), &topics, now).unwrap_err(),
        ResponseError::FencedMemberEpoch
    );
    assert_eq!(
        g.heartbeat(hb("zz", 3, None), &topics, now).unwrap_err(),
        ResponseError::UnknownMemberId
    );
}

#[test]
fn pattern_subscriptions_follow_new_topics() {
    let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut topics: BTreeMap<String, (Uuid, i32)> = [("audit.aws".to_string(), (x, 1))].into();
    let now = Instant::now();
    let mut g = ConsumerGroup::default();
    let mut join = hb("a", 0, None);
    join.subscribed = None;
    join.subscribed_regex = Some("audit\\..*".into());
    let a = g.heartbeat(join, &topics, now).unwrap();
    assert_eq!(a.assignment.unwrap().len(), 1);
    topics.insert("audit.okta".to_string(), (y, 2));
    topics.insert("dns".to_string(), (Uuid::from_u128(3), 4));
    let a2 = g
        .heartbeat(hb("a", a.member_epoch, None), &topics, now)
        .unwrap();
    assert_eq!(
        a2.assignment.unwrap().len(),
        3,
        "new matching topic picked up, dns not"
    );
    let mut bad = hb("b", 0, None);
    bad.subscribed_regex = Some("(".into());
    assert_eq!(
        g.heartbeat(bad, &topics, now).unwrap_err(),
        ResponseError::InvalidRegularExpression
    );
}

#[test]
fn a_restarting_static_member_takes_its_partitions_back_without_a_rebalance() {
    let t = Uuid::from_u128(7);
    let topics: BTreeMap<String, (Uuid, i32)> = [("t".to_string(), (t, 4))].into();
    let now = Instant::now();
    let mut g = ConsumerGroup::default();
    let mut join_a = hb("a1", 0, None);
    join_a.instance_id = Some("host-a".into());
    let a = g.heartbeat(join_a.clone(), &topics, now).unwrap();
    let mine = a.assignment.clone().unwrap();
    let epoch = g.epoch;

    // Still active: a second process with the same instance id is refused.
    let mut twin = join_a.clone();
    twin.member_id = "a2".into();
    assert_eq!(
        g.heartbeat(twin.clone(), &topics, now).unwrap_err(),
        ResponseError::UnreleasedInstanceId
    );

    // The member leaves for a restart (-2) and comes back under a new id.
    g.heartbeat(hb("a1", -2, None), &topics, now).unwrap();
    let back = g.heartbeat(twin, &topics, now).unwrap();
    assert_eq!(back.assignment, Some(mine), "same partitions");
    assert_eq!(back.member_epoch, a.member_epoch);
    assert_eq!(g.epoch, epoch, "no new group epoch");
    assert!(!g.members.contains_key("a1"));
}

#[test]
fn expired_members_release_their_partitions() {
    let t = Uuid::from_u128(7);
    let topics: BTreeMap<String, (Uuid, i32)> = [("t".to_string(), (t, 2))].into();
    let now = Instant::now();
    let mut g = ConsumerGroup::default();
    let a = g.heartbeat(hb("a", 0, None), &topics, now).unwrap();
    let b = g.heartbeat(hb("b", 0, None), &topics, now).unwrap();
    let owned: Vec<TopicPartition> = a.assignment.unwrap().into_iter().collect();
    let a2 = g
        .heartbeat(hb("a", a.member_epoch, Some(owned)), &topics, now)
        .unwrap();
    let later = now + Duration::from_secs(10);
    // Only b keeps heartbeating.
    let kept: Vec<TopicPartition> = a2.assignment.unwrap_or_default().into_iter().collect();
    g.heartbeat(hb("a", a2.member_epoch, Some(kept)), &topics, now)
        .unwrap();
    g.heartbeat(hb("b", b.member_epoch, Some(vec![])), &topics, later)
        .unwrap();
    assert_eq!(
        g.expire(Duration::from_secs(5), later),
        vec!["a".to_string()]
    );
    let b_epoch = g.members["b"].epoch;
    let b3 = g.heartbeat(hb("b", b_epoch, None), &topics, later).unwrap();
    assert_eq!(b3.assignment.unwrap().len(), 2, "b takes over everything");
}

#[test]
fn the_assignor_most_members_ask_for_is_the_groups() {
    let t = Uuid::from_u128(7);
    let topics: BTreeMap<String, (Uuid, i32)> = [("t".to_string(), (t, 5))].into();
    let now = Instant::now();
    let mut g = ConsumerGroup::default();
    assert_eq!(g.assignor(), Assignor::Uniform, "the default");
    let ranged = |member: &str| Heartbeat {
        server_assignor: Some(Assignor::Range),
        ..hb(member, 0, None)
    };
    g.heartbeat(ranged("a"), &topics, now).unwrap();
    g.heartbeat(ranged("b"), &topics, now).unwrap();
    g.heartbeat(hb("c", 0, None), &topics, now).unwrap();
    assert_eq!(g.assignor(), Assignor::Range);
    let of = |m: &str| -> Vec<i32> { g.target[m].iter().map(|(_, p)| *p).collect() };
    assert_eq!(of("a"), vec![0, 1], "contiguous ranges in member order");
    assert_eq!(of("b"), vec![2, 3]);
    assert_eq!(of("c"), vec![4]);

    // Two members switch to uniform: the group follows the majority.
    let epoch = g.epoch;
    for m in ["a", "b"] {
        let e = g.members[m].epoch;
        g.heartbeat(
            Heartbeat {
                server_assignor: Some(Assignor::Uniform),
                ..hb(m, e, None)
            },
            &topics,
            now,
        )
        .unwrap();
    }
    assert_eq!(g.assignor(), Assignor::Uniform);
    assert!(g.epoch > epoch, "a change of assignor is a new group epoch");
}
