//! SDMX-REST 1.5 errors: every error an SDMX-ML 2.1 message with its code and a text naming
//! what was wrong.

use super::*;

/// Every error is an SDMX-ML 2.1 error message with its code and a text naming what was
/// wrong: 404 (100), 400 (140), 401 (110), 406, 413 (130) and 501.
#[tokio::test]
async fn errors_are_sdmx_messages() {
    let app = spawn_app().await;
    let many_codes = format!("{}.._T._T.BAL", vec!["S"; 600].join("+"));
    let long_key = format!("S.{}._T._T.BAL", "X".repeat(3000));
    let cases: Vec<(String, Option<&str>, u16, &str, &str)> = vec![
        (
            "data/NO_SUCH_FLOW".to_owned(),
            None,
            404,
            "100",
            "no dataflow `NO_SUCH_FLOW`",
        ),
        (format!("data/OTHER,{FLOW}"), None, 404, "100", "maintained by `OTHER`"),
        (
            format!("data/BOK,{FLOW},2.0"),
            None,
            404,
            "100",
            "matches no version of dataflow BOK:KR_KNOWLEDGE_SERVICES: every artefact here has version 1.0.0 only",
        ),
        // `1.0`, the artefacts' version before `1.0.0`, is another version (two parts).
        (
            format!("data/BOK,{FLOW},1.0"),
            None,
            404,
            "100",
            "version `1.0` matches no version",
        ),
        (
            format!("dataflow/BOK/{FLOW}/1.0"),
            None,
            404,
            "100",
            "has version 1.0.0 only",
        ),
        (
            format!("schema/dataflow/BOK/{FLOW}/1.0"),
            None,
            404,
            "100",
            "version `1.0` matches no version of dataflow",
        ),
        (
            format!("data/{FLOW}/all/ECB"),
            None,
            404,
            "100",
            "provided by `BOK` only",
        ),
        (
            format!("data/{FLOW}?startPeriod=2031"),
            None,
            404,
            "100",
            "no observation matches",
        ),
        (
            format!("data/{FLOW}/S.._T._T.DEB"),
            None,
            404,
            "100",
            "no observation matches",
        ),
        (
            "dataflow/ECB".to_owned(),
            None,
            404,
            "100",
            "no dataflow matches ECB/all/latest",
        ),
        (
            "codelist/BOK/CL_FREQ/2.0".to_owned(),
            None,
            404,
            "100",
            "no codelist matches",
        ),
        (
            "nothing/here".to_owned(),
            None,
            404,
            "100",
            "`nothing` is no SDMX-REST resource",
        ),
        (
            format!("data/{FLOW}/S.IPR"),
            None,
            400,
            "140",
            "has 2 parts; the dataflow has 5 dimensions: FREQ.SERVICE_TYPE.INDUSTRY.COUNTERPART.MEASURE",
        ),
        (
            format!("data/{FLOW}/S.XYZ._T._T.BAL"),
            None,
            400,
            "140",
            "`XYZ` is no code of dimension SERVICE_TYPE",
        ),
        (
            format!("data/{FLOW}/W.._T._T.BAL"),
            None,
            400,
            "140",
            "`W` is no code of dimension FREQ",
        ),
        (
            format!("data/{FLOW}/S.._T._T.XXX"),
            None,
            400,
            "140",
            "`XXX` is no code of dimension MEASURE",
        ),
        (
            format!("data/{FLOW}/{many_codes}"),
            None,
            400,
            "140",
            "the key names more than 512 codes",
        ),
        (
            format!("data/{FLOW}/{long_key}"),
            None,
            400,
            "140",
            "the key has 3012 bytes; the limit is 2048",
        ),
        (
            format!("data/{FLOW}?startPeriod=yesterday"),
            None,
            400,
            "140",
            "parameter `startPeriod`: `yesterday` is not a period",
        ),
        (
            format!("data/{FLOW}?asOf=2025-13-01"),
            None,
            400,
            "140",
            "parameter `asOf`",
        ),
        (
            format!("data/{FLOW}?firstNObservations=0"),
            None,
            400,
            "140",
            "`firstNObservations` must be a positive integer",
        ),
        (
            format!("data/{FLOW}?detail=everything"),
            None,
            400,
            "140",
            "parameter `detail` must be full, dataonly, serieskeysonly or nodata",
        ),
        (
            format!("data/{FLOW}?dimensionAtObservation=NOPE"),
            None,
            400,
            "140",
            "`dimensionAtObservation` must be TIME_PERIOD, AllDimensions or one of",
        ),
        (
            format!("data/{FLOW}?includeHistory=yes"),
            None,
            400,
            "140",
            "`includeHistory` must be `true` or `false`",
        ),
        (
            format!("data/{FLOW}?colour=red"),
            None,
            400,
            "140",
            "unknown parameter `colour`",
        ),
        (
            format!("data/{FLOW}?detail=full&detail=full"),
            None,
            400,
            "140",
            "parameter `detail` is given twice",
        ),
        (
            format!("data/{FLOW}?format=csvdata&dimensionAtObservation=INDUSTRY&format=x"),
            None,
            400,
            "140",
            "given twice",
        ),
        (
            format!("data/{FLOW}/all/all/extra"),
            None,
            400,
            "140",
            "at most three path parts",
        ),
        (
            "dataflow?references=cousins".to_owned(),
            None,
            400,
            "140",
            "parameter `references` must be",
        ),
        (
            "dataflow?detail=some".to_owned(),
            None,
            400,
            "140",
            "parameter `detail` must be full, allstubs",
        ),
        (
            format!("data/{FLOW}"),
            Some("application/vnd.sdmx.data+json;version=2.0.0"),
            406,
            "140",
            "is not offered",
        ),
        (
            format!("data/{FLOW}?format=jsondata&formatVersion=2.0.0"),
            None,
            406,
            "140",
            "format jsondata version 2.0.0 is not offered",
        ),
        (
            format!("data/{FLOW}"),
            Some("application/vnd.sdmx.genericdata+xml;version=3.0.0"),
            406,
            "140",
            "is not offered",
        ),
        (
            format!("data/{FLOW}"),
            Some("application/vnd.sdmx.data+csv;version=1.0.0;timeFormat=normalized"),
            406,
            "140",
            "is not offered",
        ),
        (
            "dataflow".to_owned(),
            Some("application/vnd.sdmx.structure+json;version=2.0.0"),
            406,
            "140",
            "is not offered",
        ),
        (
            "categoryscheme/all".to_owned(),
            None,
            501,
            "501",
            "the `categoryscheme` resource is not implemented",
        ),
        (
            format!("schema/metadatastructure/BOK/{FLOW}"),
            None,
            501,
            "501",
            "schemas in the context `metadatastructure` are not implemented",
        ),
        (
            format!("schema/dataflow/ECB/{FLOW}"),
            None,
            404,
            "100",
            "no dataflow ECB:KR_KNOWLEDGE_SERVICES<",
        ),
        (
            format!("schema/dataflow/BOK/{FLOW}?dimensionAtObservation=X"),
            None,
            400,
            "140",
            "`dimensionAtObservation` must be",
        ),
        (
            "schema/things/BOK/X".to_owned(),
            None,
            400,
            "140",
            "the schema context must be",
        ),
        ("metadata/x".to_owned(), None, 501, "501", "not implemented"),
    ];
    for (path, accept, status, code, text) in cases {
        let (got, headers, body) = get(&app, &path, accept).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/xml; charset=utf-8", "{path}");
        assert!(
            body.contains(&format!("<message:ErrorMessage code=\"{code}\">")),
            "{path}: {body}"
        );
        assert!(body.contains(text), "{path}: expected `{text}` in {body}");
        validate(&app, &path, &body);
    }

    // 413: beyond the observation limit, counted before anything is sent.
    let small = spawn_app_with(|c| c.sdmx.max_observations = 5, true).await;
    let (status, _, body) = get(&small, &format!("data/{FLOW}"), None).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("code=\"130\"") && body.contains("more than 5 observations"),
        "{body}"
    );
    validate(&small, "413", &body);
    let (status, _, _) = get(&small, &format!("data/{FLOW}/S.IPR._T._T.BAL"), None).await;
    assert_eq!(status, 200, "a narrower query fits");
    let (status, _, _) = get(&small, &format!("data/{FLOW}?includeHistory=true"), None).await;
    assert_eq!(status, 413, "a history counts its versions");

    // 401 (110): reads protected by tokens cover SDMX too.
    let protected = spawn_app_with(
        |c| c.tokens.read = vec![tradeledger::auth::Token::parse(&format!("viewer:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    for path in [format!("data/{FLOW}"), "dataflow".to_owned()] {
        let (status, headers, body) = get(&protected, &path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(
            body.contains("code=\"110\"") && body.contains("needs a bearer token for reads"),
            "{body}"
        );
        validate(&protected, "401", &body);
        let url = format!("http://{}/sdmx/2.1/{path}", protected.addr);
        let wrong = protected.client.get(&url).bearer_auth("nope").send().await.unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let right = protected
            .client
            .get(&url)
            .bearer_auth(READ_SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status().as_u16(), 200, "{path}");
    }
}
