//! R's `rsdmx` (Debian's `r-cran-rsdmx`, installed by `bash .ci/setup`) reads what GraphQL
//! answers: a second SDMX client, written independently of `sdmx1`, on the snippets
//! docs/sdmx.md gives a statistician.

use super::*;

/// rsdmx reads the DSD with its code lists and labels, the whole dataflow, a key with `+`
/// and `startPeriod`, and the figures `asOf` a time between the preliminary release and the
/// revision (sent with its `+` unencoded, as R's URL functions leave it); each time the
/// figures equal GraphQL's for the same point.
#[tokio::test(flavor = "multi_thread")]
async fn rsdmx_reads_what_graphql_answers() {
    if skip_tools() {
        eprintln!("skipped: TRADELEDGER_SKIP_SDMX_TOOLS=1");
        return;
    }
    let app = spawn_app().await;
    let stdout = run_client(&app, "Rscript", "client.R", "2.1", true).await;
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    let dimensions: Vec<&str> = lines.iter().filter(|l| l[0] == "dimension").map(|l| l[1]).collect();
    assert_eq!(
        dimensions,
        ["FREQ", "SERVICE_TYPE", "INDUSTRY", "COUNTERPART", "MEASURE"]
    );
    let label = |list: &str, code: &str| {
        lines
            .iter()
            .find(|l| l[0] == "codelist" && l[1] == list && l[2] == code)
            .map(|l| l[3])
    };
    assert_eq!(label("CL_FREQ", "S"), Some("Half-yearly, semester"));
    assert_eq!(
        label("CL_KR_KNOWLEDGE_SERVICES_COUNTERPART", "NAM"),
        Some("North America")
    );
    assert_eq!(label("CL_OBS_STATUS", "P"), Some("Provisional value"), "{stdout}");

    let figures = |section: &str| -> Vec<Figure> {
        let mut out: Vec<Figure> = lines
            .iter()
            .filter(|l| l[0] == section)
            .map(|l| {
                assert_eq!(l.len(), 6, "{l:?}");
                (
                    l[1].to_owned(),
                    l[2].to_owned(),
                    l[3].to_owned(),
                    l[4].parse().unwrap_or_else(|_| panic!("a value: {l:?}")),
                    l[5].to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let latest = graphql_figures(&app, None).await;
    assert_eq!(figures("all"), latest);
    let key: Vec<Figure> = latest
        .iter()
        .filter(|f| (f.0 == "_T._T._T" || f.0 == "IPR._T._T") && f.1.as_str() >= "2025")
        .cloned()
        .collect();
    assert_eq!(key.len(), 2);
    assert_eq!(figures("key"), key);
    let then = graphql_figures(&app, Some(BETWEEN)).await;
    assert_eq!(figures("as_of"), then);
    assert_ne!(then, latest, "the preliminary figures differ from the revised ones");
}
