//! Tests of the classic group state: join, sync, static membership, expiry, deadlines.

use super::*;

fn req(member: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        instance_id: instance.map(String::from),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"r")),
            ("roundrobin".into(), Bytes::new()),
        ],
    }
}

fn joined(rx: &mut oneshot::Receiver<JoinOutcome>) -> JoinOutcome {
    rx.try_recv().expect("join answered")
}

#[test]
fn two_members_join_sync_and_rebalance_when_one_leaves() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let first = g.join(req("", None), true, now).unwrap_err();
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    let a = first.member_id;
    let mut rx_a = g.join(req(&a, None), true, now).unwrap();
    let out_a = joined(&mut rx_a);
    assert_eq!(out_a.generation, 1);
    assert_eq!(out_a.leader, a);
    assert_eq!(out_a.protocol.as_deref(), Some("range"));
    let mut s = g
        .sync(&a, None, 1, vec![(a.clone(), Bytes::from_static(b"all"))])
        .unwrap();
    assert_eq!(s.try_recv().unwrap().unwrap(), Bytes::from_static(b"all"));
    assert_eq!(g.state, GroupState::Stable);

    // A second member triggers a rebalance; the first learns it from its heartbeat.
    let b = g.join(req("", None), true, now).unwrap_err().member_id;
    let mut rx_b = g.join(req(&b, None), true, now).unwrap();
    assert_eq!(
        g.heartbeat(&a, None, 1, now),
        Err(ResponseError::RebalanceInProgress)
    );
    assert!(
        rx_b.try_recv().is_err(),
        "waits for the first member to rejoin"
    );
    let mut rx_a = g.join(req(&a, None), true, now).unwrap();
    let (oa, ob) = (joined(&mut rx_a), joined(&mut rx_b));
    assert_eq!((oa.generation, ob.generation), (2, 2));
    assert_eq!(oa.members.len(), 2, "the leader sees every member");
    assert!(ob.members.is_empty());
    let mut sb = g.sync(&b, None, 2, vec![]).unwrap();
    assert!(sb.try_recv().is_err(), "followers wait for the leader");
    g.sync(&a, None, 2, vec![(b.clone(), Bytes::from_static(b"half"))])
        .unwrap();
    assert_eq!(sb.try_recv().unwrap().unwrap(), Bytes::from_static(b"half"));
    assert_eq!(
        g.heartbeat(&b, None, 1, now),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        g.heartbeat("nobody", None, 2, now),
        Err(ResponseError::UnknownMemberId)
    );

    g.leave(&b, None, now).unwrap();
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let mut rx_a = g.join(req(&a, None), true, now).unwrap();
    assert_eq!(joined(&mut rx_a).generation, 3);
}

#[test]
fn expired_members_are_dropped_and_the_group_rebalances() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut rx = g.join(req("", None), false, now).unwrap();
    let m1 = joined(&mut rx).member_id;
    g.sync(&m1, None, 1, vec![]).unwrap();
    let later = now + Duration::from_secs(11);
    assert_eq!(g.expire_members(later), vec![m1]);
    assert_eq!(g.state, GroupState::Empty);
}

#[test]
fn a_restarted_static_follower_keeps_its_assignment_without_a_rebalance() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut ra = g.join(req("", Some("host-a")), true, now).unwrap();
    let a = joined(&mut ra).member_id;
    g.sync(&a, Some("host-a"), 1, vec![]).unwrap();
    let mut rb = g.join(req("", Some("host-b")), true, now).unwrap();
    let mut ra = g.join(req(&a, Some("host-a")), true, now).unwrap();
    let (oa, ob) = (joined(&mut ra), joined(&mut rb));
    let b = ob.member_id.clone();
    g.sync(&b, Some("host-b"), 2, vec![]).unwrap();
    g.sync(
        &a,
        Some("host-a"),
        2,
        vec![(b.clone(), Bytes::from_static(b"b-parts"))],
    )
    .unwrap();
    assert_eq!(g.state, GroupState::Stable);
    let leader = oa.leader.clone();
    let follower = if leader == a {
        ("host-b", b, Bytes::from_static(b"b-parts"))
    } else {
        ("host-a", a, Bytes::new())
    };

    // The follower restarts with a new member id and the same protocols.
    let again = *g.join(req("", Some(follower.0)), true, now).unwrap_err();
    assert_eq!(again.error, None);
    assert_eq!(again.generation, 2, "no new generation");
    assert_ne!(again.member_id, follower.1);
    assert_eq!(g.state, GroupState::Stable, "no rebalance");
    assert_eq!(
        g.heartbeat(&follower.1, Some(follower.0), 2, now),
        Err(ResponseError::FencedInstanceId),
        "the old id is fenced"
    );
    let mut s = g
        .sync(&again.member_id, Some(follower.0), 2, vec![])
        .unwrap();
    assert_eq!(s.try_recv().unwrap(), Ok(follower.2), "the kept assignment");
}

#[test]
fn static_member_rejoining_fences_its_old_id() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut rx = g.join(req("", Some("host-1")), true, now).unwrap();
    let old = joined(&mut rx).member_id;
    g.sync(&old, Some("host-1"), 1, vec![]).unwrap();
    let mut rx = g.join(req("", Some("host-1")), true, now).unwrap();
    let new = joined(&mut rx).member_id;
    assert_ne!(old, new);
    assert_eq!(
        g.heartbeat(&old, Some("host-1"), 2, now),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(g.members.len(), 1);
}

#[test]
fn rebalance_deadline_drops_members_that_did_not_rejoin() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut ra = g.join(req("", None), false, now).unwrap();
    joined(&mut ra);
    let mut rb = g.join(req("", None), false, now).unwrap();
    let id = g.rebalance_id;
    g.rebalance_timed_out(id);
    let out = joined(&mut rb);
    assert_eq!(out.generation, 2);
    assert_eq!(g.members.len(), 1);
    assert_eq!(out.leader, out.member_id, "the member that rejoined leads");
}
