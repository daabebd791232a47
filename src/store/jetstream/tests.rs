use super::*;

/// The follower takes at most [`FOLLOW_BATCH`] messages at once, however many have
/// arrived, so what it holds before storing them stays bounded; the rest follow, dense.
#[tokio::test]
async fn the_follower_takes_at_most_a_batch_of_what_has_arrived() {
    let store = test_server::store().await;
    let mut head = Head::default();
    while head.revision < 600 {
        head = store
            .append(super::super::conformance::records_after(head, 200), head)
            .await
            .unwrap();
    }
    let consumer = store
        .js
        .get_stream(&store.stream)
        .await
        .unwrap()
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: store.client.new_inbox(),
            filter_subject: store.subject.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = messages.next().await;
    // Let all 600 arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Out of tokio's cooperative budget, which otherwise ends a batch at 128 polls.
    let (records, end) = tokio::task::unconstrained(async { gather(first, &mut messages, Head::default()) }).await;
    assert!(end.is_none());
    assert_eq!(records.len(), FOLLOW_BATCH);
    let at = records[FOLLOW_BATCH - 1].revision;
    assert!(records.iter().map(|r| r.revision).eq(1..=at));
    let first = messages.next().await;
    let (rest, _) = gather(
        first,
        &mut messages,
        Head {
            revision: at,
            ..Head::default()
        },
    );
    assert!(rest.iter().map(|r| r.revision).eq(at + 1..=600));
}
