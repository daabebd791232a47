//! Item 4: cost counts bytes as well as objects.

use super::*;
use crate::support::code;

/// On 20 releases x 5,000 figures (~375 KB per event), a page of 1,000 figures each with
/// its inclusion proof's canonical event (a 100-byte query for ~375 MB), and three aliases
/// of every event's canonical text, are refused before they run with LIMIT_EXCEEDED, the
/// estimate and the limit; the server's peak memory stays far below what building them
/// would take. Then thirty aliases of the events' revisions alone are answered without
/// reading the events (peak memory again small, where reading them parses 30 x 7.5 MB).
#[tokio::test]
async fn cost_large_texts_are_refused_by_their_bytes_before_they_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), RELEASES, PER_RELEASE).await;
    let server = Server::start(&data, &["--response-cache-entries", "0"]).await;
    let pid = server.child.id();
    let largest_event = server
        .query("{ events(after: 1, first: 1) { nodes { canonical } } }", json!({}))
        .await["events"]["nodes"][0]["canonical"]
        .as_str()
        .unwrap()
        .len() as u64;
    let (before, _) = memory_kb(pid);

    let proofs = r#"{a0: observations(dataset:"SYNTHETIC_TRADE", first:1000){nodes{proof{canonical}}}}"#;
    let aliases: Vec<String> = (0..3)
        .map(|i| format!("a{i}: events(first: 1000) {{ nodes {{ canonical }} }}"))
        .collect();
    let events = format!("{{ {} }}", aliases.join(" "));
    for query in [proofs, events.as_str()] {
        let (status, v) = server.post(query, json!({}), None).await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
        assert!(v["data"].is_null(), "{v}");
        let ext = &v["errors"][0]["extensions"];
        let estimate = ext["bytes"].as_u64().expect("the estimate in bytes");
        assert_eq!(ext["maxResponseBytes"], 16 * 1024 * 1024, "{v}");
        assert!(estimate >= 3 * largest_event, "{v}");
        let message = v["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(&estimate.to_string()) && message.contains("16777216"),
            "{message}"
        );
    }
    let (_, peak) = memory_kb(pid);
    let grew = peak.saturating_sub(before);
    let would_be = 1000 * largest_event / 1024;
    println!("largest event {largest_event} B; peak grew by {grew} kB; building the proofs: {would_be} kB");
    assert!(
        grew < would_be / 10,
        "peak memory grew by {grew} kB for queries that were refused (building one: {would_be} kB)"
    );

    // Revisions alone: answered, and nothing read.
    let aliases: Vec<String> = (0..30)
        .map(|i| format!("a{i}: events(first: 1000) {{ nodes {{ revision }} pageInfo {{ hasNextPage }} }}"))
        .collect();
    let (before, _) = memory_kb(pid);
    let data = server.query(&format!("{{ {} }}", aliases.join(" ")), json!({})).await;
    let nodes = data["a29"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), RELEASES as usize + 1, "{data}");
    assert_eq!(nodes[0]["revision"], 1);
    assert_eq!(nodes[RELEASES as usize]["revision"], RELEASES + 1);
    assert_eq!(data["a0"]["pageInfo"]["hasNextPage"], false);
    let (_, peak) = memory_kb(pid);
    let grew = peak.saturating_sub(before);
    let read_all = 30 * (u64::from(RELEASES) * largest_event) / 1024;
    println!("revisions of every event, 30 times: peak grew by {grew} kB (reading them: {read_all} kB)");
    assert!(
        grew < read_all / 10,
        "peak memory grew by {grew} kB for revisions alone (the events read: {read_all} kB)"
    );
}
