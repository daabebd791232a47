//! SDMX-REST 1.5 vintages (`asOf`, `includeHistory`, `updatedAfter`, `knownAt`, caching) and
//! Python's `sdmx1` reading what GraphQL answers.

use super::*;

/// `asOf` gives the figures as published then, whether its `+` arrives as `+`, as `%2B` or
/// as a space; `includeHistory` one data set per release with its validity; `updatedAfter`
/// only what later releases set; `knownAt` in the past is pinned and cached for good; the
/// ETag answers `If-None-Match` with 304.
#[tokio::test]
async fn vintages() {
    let app = spawn_app().await;
    let expected = graphql_figures(&app, Some(BETWEEN)).await;
    assert!(expected.iter().all(|f| f.4 == "P"), "{expected:?}");
    assert_ne!(expected, graphql_figures(&app, None).await);
    for as_of in [
        BETWEEN,
        "2025-10-01T00:00:00%2B00:00",
        "2025-10-01T00:00:00%2000:00",
        "2025-10-01",
    ] {
        let (headers, body) = get_xml(&app, &format!("data/{FLOW}?asOf={as_of}"), None).await;
        assert_eq!(generic_figures(&body), expected, "asOf={as_of}");
        assert!(headers.contains_key("etag"));
        assert_eq!(
            headers["cache-control"], "public, max-age=2, stale-while-revalidate=10",
            "publication time alone can change by a back-fill: the head's policy"
        );
    }
    let (_, _, csv) = get(
        &app,
        &format!("data/{FLOW}/S.IPR._T._T.BAL?asOf={BETWEEN}&format=csvdata"),
        None,
    )
    .await;
    let row = &csv_rows(&csv)[0];
    assert_eq!(
        (row["OBS_VALUE"].as_str(), row["RELEASE_ID"].as_str()),
        ("-2450", PRELIMINARY_ID)
    );
    assert_eq!(
        (row["OBS_STATUS"].as_str(), row["RELEASE_STATUS"].as_str()),
        ("P", "PRELIMINARY")
    );

    // Every version, one data set per release, valid from its publication.
    let (_, history) = get_xml(&app, &format!("data/{FLOW}/S.IPR._T._T.BAL?includeHistory=true"), None).await;
    let sets: Vec<&str> = history.split("<message:DataSet ").skip(1).collect();
    assert_eq!(sets.len(), 2, "{history}");
    assert!(
        sets[0].starts_with(&format!(
            "structureRef=\"STR\" action=\"Replace\" setID=\"R{}\" validFromDate=\"2025-09-03T03:00:00Z\"",
            PRELIMINARY_ID.replace('-', "")
        )),
        "{}",
        sets[0]
    );
    assert!(sets[0].contains("<generic:ObsValue value=\"-2450\"/>"));
    assert!(sets[1].contains("validFromDate=\"2025-12-10T03:00:00Z\"") && sets[1].contains("value=\"-2530\""));
    let (_, _, history_csv) = get(
        &app,
        &format!("data/{FLOW}/S.IPR._T._T.BAL?includeHistory=true&format=csvdata"),
        None,
    )
    .await;
    let values: Vec<String> = csv_rows(&history_csv)
        .iter()
        .map(|r| format!("{} {}", r["OBS_VALUE"], r["RELEASE_STATUS"]))
        .collect();
    assert_eq!(values, ["-2450 PRELIMINARY", "-2530 REVISED"]);
    // History as of a time stops there.
    let (_, early) = get_xml(
        &app,
        &format!("data/{FLOW}/S.IPR._T._T.BAL?includeHistory=true&asOf={BETWEEN}"),
        None,
    )
    .await;
    assert_eq!(early.matches("<message:DataSet ").count(), 1);

    // updatedAfter: only what the revision set.
    let (_, _, updated) = get(
        &app,
        &format!("data/{FLOW}?updatedAfter={BETWEEN}&format=csvdata"),
        None,
    )
    .await;
    let rows = csv_rows(&updated);
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["RELEASE_ID"] == REVISION_ID));
    let (status, _, _) = get(&app, &format!("data/{FLOW}?updatedAfter=2026-01-01T00:00:00Z"), None).await;
    assert_eq!(status, 404);

    // knownAt: what the ledger showed then. Before the fixtures were recorded it showed
    // nothing; now it shows everything, pinned and cached for good.
    let (status, _, _) = get(&app, &format!("data/{FLOW}?knownAt=2020-01-01T00:00:00Z"), None).await;
    assert_eq!(status, 404);
    // A whole second after the fixtures were recorded, and past by the time it is asked for.
    let now = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let pinned = format!("data/{FLOW}?knownAt={now}&asOf={BETWEEN}");
    let (headers, body) = get_xml(&app, &pinned, None).await;
    assert_eq!(generic_figures(&body), expected);
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(format!("http://{}/sdmx/2.1/{pinned}", app.addr))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    // A release changes the latest answer's ETag, not the pinned one's.
    let (latest_headers, _) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    let input = crate::support::release_input("6b1f0c2e-4d3a-4e51-9a57-2025a0000099", "CUL._T._T", "2025-S2", "500");
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert!(v["errors"].is_null(), "{v}");
    let (after_headers, _) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    assert_ne!(latest_headers["etag"], after_headers["etag"]);
    let (pinned_after, _) = get_xml(&app, &pinned, None).await;
    assert_eq!(pinned_after["etag"].to_str().unwrap(), etag);
}

/// Python's sdmx1 reads the dataflow with its structure, the whole dataflow, a key with
/// startPeriod, and the figures as of a time between the preliminary release and the
/// revision; each time the figures equal GraphQL's for the same point.
#[tokio::test(flavor = "multi_thread")]
async fn sdmx1_reads_what_graphql_answers() {
    if skip_tools() {
        eprintln!("skipped: TRADELEDGER_SKIP_SDMX_TOOLS=1");
        return;
    }
    let app = spawn_app().await;
    let out = run_client(&app, "python3", "client.py", "2.1", true).await;
    let read: Value = serde_json::from_str(&out).expect("the script's JSON");
    assert_eq!(read["maintainer"], "BOK");
    assert_eq!(
        read["dimensions"],
        json!([
            "FREQ",
            "SERVICE_TYPE",
            "INDUSTRY",
            "COUNTERPART",
            "MEASURE",
            "TIME_PERIOD"
        ])
    );
    assert_eq!(
        read["attributes"],
        json!([
            "UNIT",
            "UNIT_MULT",
            "OBS_STATUS",
            "RELEASE_ID",
            "RELEASE_STATUS",
            "PUBLISHED_AT"
        ])
    );
    assert_eq!(
        read["codes"]["CL_KR_KNOWLEDGE_SERVICES_COUNTERPART"]["NAM"],
        "North America"
    );
    assert_eq!(read["codes"]["CL_FREQ"]["S"], "Half-yearly, semester");

    let figures = |v: &Value| -> Vec<Figure> {
        let mut out: Vec<Figure> = v
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|f| {
                (
                    f[0].as_str().unwrap().to_owned(),
                    f[1].as_str().unwrap().to_owned(),
                    f[2].as_str().unwrap().to_owned(),
                    f[3].as_str().unwrap().parse().unwrap(),
                    f[4].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let latest = graphql_figures(&app, None).await;
    assert_eq!(figures(&read["all"]), latest);
    let key: Vec<Figure> = latest
        .iter()
        .filter(|f| (f.0 == "_T._T._T" || f.0 == "IPR._T._T") && f.1.as_str() >= "2025")
        .cloned()
        .collect();
    assert_eq!(key.len(), 2);
    assert_eq!(figures(&read["key"]), key);
    let then = graphql_figures(&app, Some(BETWEEN)).await;
    assert_eq!(figures(&read["as_of"]), then);
    assert_ne!(then, latest);
}
