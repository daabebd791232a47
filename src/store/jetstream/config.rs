//! The stream configuration we create, and what an existing stream must have.

use super::*;

/// The stream configuration we create, and require of an existing stream.
pub(super) fn wanted_config(config: &JetStreamConfig, subject: &str) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        description: Some("tradeledger event log: sequence = revision".into()),
        subjects: vec![subject.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        discard: stream::DiscardPolicy::New,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        allow_atomic_publish: true,
        ..Default::default()
    }
}

/// What an existing stream has that we cannot use, naming the field; `None` if it fits.
pub(super) fn config_mismatch(have: &stream::Config, want: &stream::Config) -> Option<String> {
    let mut wrong = Vec::new();
    if have.subjects != want.subjects {
        wrong.push(format!("subjects is {:?}, expected {:?}", have.subjects, want.subjects));
    }
    if have.num_replicas != want.num_replicas {
        wrong.push(format!(
            "replicas is {}, expected {} (--nats-replicas)",
            have.num_replicas, want.num_replicas
        ));
    }
    if have.retention != stream::RetentionPolicy::Limits {
        wrong.push(format!("retention is {:?}, expected Limits", have.retention));
    }
    if have.storage != stream::StorageType::File {
        wrong.push(format!("storage is {:?}, expected File", have.storage));
    }
    if have.max_messages > 0 || have.max_bytes > 0 || have.max_messages_per_subject > 0 || !have.max_age.is_zero() {
        wrong.push("it has limits that drop records (max_msgs, max_bytes, max_msgs_per_subject or max_age)".into());
    }
    if !have.allow_atomic_publish {
        wrong.push("allow_atomic (atomic batch publish) is off".into());
    }
    if !have.deny_delete || !have.deny_purge {
        wrong.push("deny_delete and deny_purge must be on".into());
    }
    if have.mirror.is_some() || have.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        wrong.push("it is a mirror or has sources".into());
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}
