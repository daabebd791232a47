//! SDMX-REST 1.5 data queries: every format holds GraphQL's figures, the query parameters,
//! a streamed answer of many pages, and structure-specific data against its schema.

use super::*;

/// The whole dataflow in GenericData is exactly GraphQL's latest figures, as a time series
/// per key and measure with the unit attributes, and valid SDMX-ML.
#[tokio::test]
async fn generic_data_equals_graphql() {
    let app = spawn_app().await;
    let (headers, body) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.genericdata+xml; version=2.1"
    );
    assert_eq!(headers["vary"], "Accept, Authorization");
    let figures = generic_figures(&body);
    assert_eq!(figures, graphql_figures(&app, None).await);
    assert_eq!(figures.len(), 12);
    assert!(body.contains("<generic:Value id=\"UNIT\" value=\"USD\"/><generic:Value id=\"UNIT_MULT\" value=\"6\"/>"));
    assert!(body.contains(&format!("<generic:Value id=\"RELEASE_ID\" value=\"{REVISION_ID}\"/>")));
    // One series per key: the total's two periods in one series.
    assert_eq!(body.matches("<generic:Series>").count(), 11);
}

/// Each format by `Accept` and by `format`, with its registered media type and the same
/// figures; `*/*` and `application/xml` give GenericData.
#[tokio::test]
async fn every_data_format() {
    let app = spawn_app().await;
    let expected = graphql_figures(&app, None).await;
    let path = format!("data/{FLOW}/all/all");
    for (accept, media) in [
        ("*/*", "application/vnd.sdmx.genericdata+xml; version=2.1"),
        ("application/xml", "application/vnd.sdmx.genericdata+xml; version=2.1"),
        (
            "application/vnd.sdmx.genericdata+xml;version=2.1",
            "application/vnd.sdmx.genericdata+xml; version=2.1",
        ),
        (
            "application/vnd.sdmx.generictimeseriesdata+xml;version=2.1",
            "application/vnd.sdmx.generictimeseriesdata+xml; version=2.1",
        ),
    ] {
        let (headers, body) = get_xml(&app, &path, Some(accept)).await;
        assert_eq!(headers["content-type"], media, "{accept}");
        assert_eq!(generic_figures(&body), expected, "{accept}");
    }
    let (headers, body) = get_xml(&app, &format!("{path}?format=generictimeseriesdata"), Some("text/csv")).await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.generictimeseriesdata+xml; version=2.1"
    );
    assert!(body.contains("<message:GenericTimeSeriesData "));

    // Structure-specific: the DSD's ids as XML attributes.
    let (status, headers, body) = get(
        &app,
        &path,
        Some("application/vnd.sdmx.structurespecificdata+xml;version=2.1"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.structurespecificdata+xml; version=2.1"
    );
    assert!(body.contains("xsi:type=\"ns1:DataSetType\""), "{body}");
    assert!(body.contains("<Series FREQ=\"S\" SERVICE_TYPE=\"IPR\" INDUSTRY=\"_T\" COUNTERPART=\"_T\" MEASURE=\"BAL\" UNIT=\"USD\" UNIT_MULT=\"6\"><Obs TIME_PERIOD=\"2025-S1\" OBS_VALUE=\"-2530\" OBS_STATUS=\"A\""), "{body}");
    assert_eq!(body.matches("<Obs ").count(), 12);
    validate_structure_specific(&app, "TIME_PERIOD", &body).await;

    // SDMX-CSV 1.0, by Accept and by format; the vintage in attribute columns.
    for (path, accept) in [
        (path.clone(), Some("application/vnd.sdmx.data+csv;version=1.0.0")),
        (format!("{path}?format=csvdata"), None),
    ] {
        let (status, headers, body) = get(&app, &path, accept).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["content-type"],
            "application/vnd.sdmx.data+csv; version=1.0.0; charset=utf-8"
        );
        assert!(body.starts_with("DATAFLOW,FREQ,SERVICE_TYPE,INDUSTRY,COUNTERPART,MEASURE,TIME_PERIOD,OBS_VALUE,UNIT,UNIT_MULT,OBS_STATUS,RELEASE_ID,RELEASE_STATUS,PUBLISHED_AT\r\n"), "{body}");
        assert_eq!(csv_figures(&body), expected);
        let rows = csv_rows(&body);
        assert!(rows.iter().all(|r| r["DATAFLOW"] == "BOK:KR_KNOWLEDGE_SERVICES(1.0.0)"));
        let revised = rows.iter().find(|r| r["SERVICE_TYPE"] == "IPR").unwrap();
        assert_eq!(revised["RELEASE_ID"], REVISION_ID);
        assert_eq!(revised["RELEASE_STATUS"], "REVISED");
        assert_eq!(revised["PUBLISHED_AT"], "2025-12-10T03:00:00Z");
    }
    let (_, _, labelled) = get(
        &app,
        &path,
        Some("application/vnd.sdmx.data+csv; version=1.0.0; labels=both"),
    )
    .await;
    assert!(
        labelled.starts_with("DATAFLOW,FREQ: Frequency,SERVICE_TYPE: Service type,"),
        "{labelled}"
    );
    assert!(
        labelled.contains(",IPR: Intellectual property royalties,"),
        "{labelled}"
    );
}

/// Keys (wildcards, `+`, trailing parts left out, providerRef), periods, first/last N,
/// dimensionAtObservation and detail select and shape the answer as the standard says.
#[tokio::test]
async fn data_query_parameters() {
    let app = spawn_app().await;
    let csv = |body: &str| csv_figures(body);
    let total_and_ipr = format!("data/BOK,{FLOW},1.0.0/S.IPR+_T._T._T.BAL/BOK");
    let (status, _, body) = get(&app, &format!("{total_and_ipr}?format=csvdata"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(csv(&body).len(), 3, "{body}");

    let (_, _, body) = get(&app, &format!("{total_and_ipr}?format=csvdata&startPeriod=2025"), None).await;
    assert_eq!(
        csv(&body).iter().map(|f| f.1.as_str()).collect::<Vec<_>>(),
        ["2025-S1", "2025-S1"]
    );
    let (_, _, body) = get(
        &app,
        &format!("{total_and_ipr}?format=csvdata&endPeriod=2024-12-31"),
        None,
    )
    .await;
    assert_eq!(csv(&body).len(), 1, "{body}");
    assert_eq!(csv(&body)[0].1, "2024-S2");
    // A period of another frequency covers the half-years it overlaps.
    let (_, _, body) = get(
        &app,
        &format!("{total_and_ipr}?format=csvdata&startPeriod=2025-Q2&endPeriod=2025-Q2"),
        None,
    )
    .await;
    assert_eq!(csv(&body).len(), 2, "{body}");

    let (_, _, body) = get(
        &app,
        &format!("data/{FLOW}/S._T._T._T.BAL?format=csvdata&lastNObservations=1"),
        None,
    )
    .await;
    assert_eq!(csv(&body).iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["2025-S1"]);
    let (_, _, body) = get(
        &app,
        &format!("data/{FLOW}/S._T._T._T.BAL?format=csvdata&firstNObservations=1"),
        None,
    )
    .await;
    assert_eq!(csv(&body).iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["2024-S2"]);

    // Wildcards: the empty part and `*`; a left-out key and provider.
    let (_, _, body) = get(&app, &format!("data/{FLOW}/.._T.*.?format=csvdata"), None).await;
    assert_eq!(csv(&body).len(), 9, "{body}");
    let (_, _, body) = get(&app, &format!("data/{FLOW}/?format=csvdata"), None).await;
    assert_eq!(csv(&body).len(), 12);

    // Views.
    let (_, flat) = get_xml(
        &app,
        &format!("data/{FLOW}/S.._T._T.BAL?dimensionAtObservation=AllDimensions"),
        None,
    )
    .await;
    assert_eq!(flat.matches("<generic:ObsKey>").count(), 6, "{flat}");
    assert!(flat.contains("dimensionAtObservation=\"AllDimensions\""));
    let (_, cross) = get_xml(
        &app,
        &format!("data/{FLOW}/S._T.._T.BAL?dimensionAtObservation=INDUSTRY"),
        None,
    )
    .await;
    // Two sections (2024-S2, 2025-S1) with the industries as observations.
    assert_eq!(cross.matches("<generic:Series>").count(), 2, "{cross}");
    assert!(cross.contains("<generic:ObsDimension value=\"MFG\"/>"), "{cross}");
    let (status, _, cross_ss) = get(
        &app,
        &format!("data/{FLOW}/S._T.._T.BAL?dimensionAtObservation=INDUSTRY&format=structurespecificdata"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(cross_ss.contains("<Series FREQ=\"S\" SERVICE_TYPE=\"_T\" COUNTERPART=\"_T\" MEASURE=\"BAL\" TIME_PERIOD=\"2025-S1\"><Obs INDUSTRY=\"_T\""), "{cross_ss}");
    validate_structure_specific(&app, "INDUSTRY", &cross_ss).await;

    // detail.
    let (_, keys) = get_xml(&app, &format!("data/{FLOW}?detail=serieskeysonly"), None).await;
    assert_eq!(keys.matches("<generic:Series>").count(), 11);
    assert!(!keys.contains("<generic:Obs>") && !keys.contains("UNIT"), "{keys}");
    let (_, nodata) = get_xml(&app, &format!("data/{FLOW}?detail=nodata"), None).await;
    assert!(
        !nodata.contains("<generic:Obs>") && nodata.contains("UNIT_MULT"),
        "{nodata}"
    );
    let (_, dataonly) = get_xml(&app, &format!("data/{FLOW}?detail=dataonly"), None).await;
    assert_eq!(dataonly.matches("<generic:Obs>").count(), 12);
    assert!(!dataonly.contains("<generic:Attributes>"), "{dataonly}");
}

/// An answer of many pages (more figures than one page reads) holds every figure once, each
/// series whole and in period order.
#[tokio::test]
async fn long_answers_stream_in_pages() {
    let app = spawn_app().await;
    let services = ["_T", "IPR", "ICT", "CUL", "PBS"];
    let industries = ["_T", "ICT", "MFG", "DIP"];
    let regions = ["_T", "ASIA", "NAM", "EUR"];
    let mut observations = Vec::new();
    for s in services {
        for i in industries {
            for r in regions {
                for year in 1990..2024 {
                    for half in 1..=2 {
                        observations.push(json!({ "key": format!("{s}.{i}.{r}"), "period": format!("{year}-S{half}"), "value": format!("{year}.{half}") }));
                    }
                }
            }
        }
    }
    let n = observations.len();
    assert!(n > 5000, "more than a page of 4096 figures");
    let input = json!({
        "id": "6b1f0c2e-4d3a-4e51-9a57-2025a0000077",
        "dataset": DATASET,
        "status": "FINAL",
        "title": "SYNTHETIC back series",
        "publishedAt": "2025-12-20T00:00:00Z",
        "observations": observations,
    });
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert!(v["errors"].is_null(), "{v}");

    let (_, _, body) = get(&app, &format!("data/{FLOW}?format=csvdata"), None).await;
    let rows = csv_rows(&body);
    assert_eq!(rows.len(), n + 12);
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(
            seen.insert((
                r["SERVICE_TYPE"].clone(),
                r["INDUSTRY"].clone(),
                r["COUNTERPART"].clone(),
                r["TIME_PERIOD"].clone()
            )),
            "a figure twice"
        );
    }
    let (_, generic) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    let series: Vec<&str> = generic.split("<generic:Series>").skip(1).collect();
    assert_eq!(series.len(), 80, "one series per key, none split across pages");
    for s in series {
        let periods: Vec<&str> = s
            .split("<generic:ObsDimension value=\"")
            .skip(1)
            .map(|p| &p[..7])
            .collect();
        assert!(periods.windows(2).all(|w| w[0] < w[1]), "periods in order: {periods:?}");
    }
    assert_eq!(generic_figures(&generic).len(), n + 12);
}

/// Structure-specific data in every view (time series, flat, cross-sectional), every
/// `detail` and with `includeHistory` validates against the schema the service derives from
/// the DSD; and that schema refuses a code the code list lacks.
#[tokio::test]
async fn structure_specific_data_validates_against_its_schema() {
    let app = spawn_app().await;
    for dimension in ["TIME_PERIOD", "AllDimensions", "COUNTERPART"] {
        for extra in [
            "",
            "&detail=nodata",
            "&detail=serieskeysonly",
            "&detail=dataonly",
            "&includeHistory=true",
        ] {
            let path = format!("data/{FLOW}?format=structurespecificdata&dimensionAtObservation={dimension}{extra}");
            let (status, _, body) = get(&app, &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            validate_structure_specific(&app, dimension, &body).await;
        }
    }
    if skip_tools() {
        return;
    }
    let (_, _, body) = get(&app, &format!("data/{FLOW}?format=structurespecificdata"), None).await;
    let broken = body.replacen("SERVICE_TYPE=\"IPR\"", "SERVICE_TYPE=\"NOPE\"", 1);
    let outcome = std::panic::AssertUnwindSafe(validate_structure_specific(&app, "TIME_PERIOD", &broken));
    let caught = futures_util::FutureExt::catch_unwind(outcome).await;
    assert!(caught.is_err(), "an unknown code must not validate");
}
