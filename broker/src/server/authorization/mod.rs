//! The authorizer applied to every Kafka request before its handler runs, with Kafka's
//! operation mapping and error codes (docs/security.md, Authorisation). A request is
//! allowed, refused whole (a group or cluster operation), or narrowed: the topics the
//! principal may not touch are taken out of the request and answered with
//! TOPIC_AUTHORIZATION_FAILED beside the handler's answer for the rest, so handlers
//! never see what they must not act on.

mod cluster;
mod groups;
mod topics;

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use super::handlers::Client;
use super::Broker;
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::security::authorizer::{Authorizer, Requester};
use crate::security::store::SecurityState;

/// A change to the handler's response: the refused parts added back.
pub type Patch = Box<dyn FnOnce(&mut ResponseKind) + Send>;

pub enum Check {
    Allow,
    /// Answer with this; the handler does not run.
    Deny(Box<ResponseKind>),
    /// Run the handler on the narrowed request, then apply the patch to its response.
    Narrowed(Patch),
}

/// What a check needs: the ACLs, the authorizer's settings and who is asking.
pub struct Ctx<'a> {
    state: Arc<SecurityState>,
    authorizer: &'a Authorizer,
    who: Requester<'a>,
    broker: &'a Broker,
}

impl Ctx<'_> {
    pub fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.authorizer
            .authorize(&self.state.acls, &self.who, operation, resource_type, name)
    }

    pub fn allows_cluster(&self, operation: Operation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn allows_topic(&self, operation: Operation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: Operation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }

    /// Kafka's `authorizedOperations` bit field for a resource.
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        use Operation::*;
        let ops: &[Operation] = match resource_type {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            _ => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
        };
        ops.iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// Checks `request` (and narrows it) for `client`.
pub fn check(broker: &Broker, client: &Client, version: i16, request: &mut RequestKind) -> Check {
    let authorizer = &broker.security.authorizer;
    if !authorizer.enabled {
        return Check::Allow;
    }
    let ctx = Ctx {
        state: broker.security.store.current(),
        authorizer,
        who: Requester {
            principal: &client.principal,
            host: client.address,
        },
        broker,
    };
    topics::check(&ctx, request)
        .or_else(|| groups::check(&ctx, version, request))
        .or_else(|| cluster::check(&ctx, request))
        .unwrap_or(Check::Allow)
}

/// Takes the items `allowed` refuses out of `items`.
fn take_denied<T>(items: &mut Vec<T>, allowed: impl Fn(&T) -> bool) -> Vec<T> {
    let (keep, denied): (Vec<T>, Vec<T>) = std::mem::take(items).into_iter().partition(allowed);
    *items = keep;
    denied
}

/// A patch from a function of the one response kind it applies to.
macro_rules! patch {
    ($kind:ident, |$r:ident| $body:expr) => {
        Check::Narrowed(Box::new(move |resp: &mut ResponseKind| {
            if let ResponseKind::$kind($r) = resp {
                $body
            }
        }))
    };
}
pub(crate) use patch;

/// Takes the refused items out of a request's list and answers each with `$answer`,
/// appended to the response's `$field`: the common shape of a narrowed request.
macro_rules! narrow {
    ($items:expr, $allowed:expr, $kind:ident . $field:ident, $answer:expr) => {{
        let denied = take_denied($items, $allowed);
        if denied.is_empty() {
            Check::Allow
        } else {
            patch!($kind, |r| r.$field.extend(denied.into_iter().map($answer)))
        }
    }};
}
pub(crate) use narrow;

/// A whole-request refusal: the response's default with `code` in its error field.
macro_rules! refuse {
    ($kind:ident, $resp:ty, $code:expr) => {
        Check::Deny(Box::new(ResponseKind::$kind(
            <$resp>::default().with_error_code($code.code()),
        )))
    };
}
pub(crate) use refuse;
