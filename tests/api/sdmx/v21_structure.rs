//! SDMX-REST 1.5 structure queries: the dataflow with its structure, references, detail
//! and wildcards.

use super::*;

/// The dataflow with `references=all` is one valid Structure message holding the flow, the
/// DSD (FREQ, the three dimensions, MEASURE, TIME_PERIOD; OBS_VALUE; UNIT, UNIT_MULT,
/// OBS_STATUS and the vintage attributes), every code list with its codes and labels, and
/// the concept scheme, all maintained by the agency.
#[tokio::test]
async fn dataflow_with_its_structure() {
    let app = spawn_app().await;
    let (headers, body) = get_xml(&app, &format!("dataflow/BOK/{FLOW}/latest?references=all"), None).await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.structure+xml; version=2.1"
    );
    // The server's caching policy: read at the head, revalidated with a 304.
    assert_eq!(headers["cache-control"], "public, max-age=2, stale-while-revalidate=10");
    assert!(headers["xkey"].to_str().unwrap().contains("tl:ledger"));
    let again = app
        .client
        .get(format!(
            "http://{}/sdmx/2.1/dataflow/BOK/{FLOW}/latest?references=all",
            app.addr
        ))
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"], headers["etag"]);
    for part in [
        "<structure:Dataflow id=\"KR_KNOWLEDGE_SERVICES\" agencyID=\"BOK\" version=\"1.0.0\"",
        "<structure:DataStructure id=\"KR_KNOWLEDGE_SERVICES\" agencyID=\"BOK\"",
        "<structure:Dimension id=\"FREQ\" position=\"1\">",
        "<structure:Dimension id=\"SERVICE_TYPE\" position=\"2\">",
        "<structure:Dimension id=\"COUNTERPART\" position=\"4\">",
        "<structure:Dimension id=\"MEASURE\" position=\"5\">",
        "<structure:TimeDimension id=\"TIME_PERIOD\" position=\"6\">",
        "<structure:Attribute id=\"UNIT_MULT\" assignmentStatus=\"Mandatory\">",
        "<structure:Attribute id=\"OBS_STATUS\" assignmentStatus=\"Mandatory\">",
        "<structure:Attribute id=\"RELEASE_ID\"",
        "<structure:Attribute id=\"PUBLISHED_AT\"",
        "<structure:PrimaryMeasure id=\"OBS_VALUE\">",
        "<structure:Codelist id=\"CL_FREQ\" agencyID=\"BOK\"",
        "<structure:Code id=\"S\" urn=\"urn:sdmx:org.sdmx.infomodel.codelist.Code=BOK:CL_FREQ(1.0.0).S\"><common:Name xml:lang=\"en\">Half-yearly, semester</common:Name>",
        "<structure:Codelist id=\"CL_KR_KNOWLEDGE_SERVICES_SERVICE_TYPE\"",
        "<structure:Code id=\"IPR\" urn=\"urn:sdmx:org.sdmx.infomodel.codelist.Code=BOK:CL_KR_KNOWLEDGE_SERVICES_SERVICE_TYPE(1.0.0).IPR\"><common:Name xml:lang=\"en\">Intellectual property royalties</common:Name><structure:Parent><Ref id=\"_T\"/></structure:Parent>",
        "<structure:Code id=\"BAL\"",
        "<structure:Code id=\"P\"",
        "<structure:ConceptScheme id=\"CS_KR_KNOWLEDGE_SERVICES\"",
        "<structure:Concept id=\"UNIT_MULT\"",
    ] {
        assert!(body.contains(part), "missing {part}:\n{body}");
    }
    // The sections come in the order the schema requires.
    let at = |s: &str| body.find(s).unwrap_or_else(|| panic!("no {s}"));
    assert!(at("<structure:Dataflows>") < at("<structure:Codelists>"));
    assert!(at("<structure:Codelists>") < at("<structure:Concepts>"));
    assert!(at("<structure:Concepts>") < at("<structure:DataStructures>"));
}

/// `references` and `detail` choose what comes with the match, `all`/`*`/`latest` and `+`
/// lists match, and an item query returns a partial code list.
#[tokio::test]
async fn structure_references_detail_and_wildcards() {
    let app = spawn_app().await;
    let count = |body: &str, s: &str| body.matches(s).count();

    let (_, plain) = get_xml(&app, &format!("datastructure/all/{FLOW}"), None).await;
    assert_eq!(count(&plain, "<structure:DataStructure "), 1);
    assert_eq!(
        count(&plain, "<structure:Codelist "),
        0,
        "references=none is the default"
    );

    let (_, children) = get_xml(&app, &format!("datastructure/*/{FLOW}/*?references=children"), None).await;
    assert_eq!(count(&children, "<structure:Codelist "), 6);
    assert_eq!(count(&children, "<structure:ConceptScheme "), 1);
    assert_eq!(count(&children, "<structure:Dataflow "), 0);

    let (_, parents) = get_xml(
        &app,
        &format!("datastructure/BOK/{FLOW}/1.0.0?references=parents"),
        None,
    )
    .await;
    assert_eq!(count(&parents, "<structure:Dataflow "), 1);
    assert_eq!(count(&parents, "<structure:Codelist "), 0);

    let (_, only) = get_xml(&app, &format!("dataflow/BOK/{FLOW}?references=codelist"), None).await;
    assert_eq!(count(&only, "<structure:Codelist "), 6);
    assert_eq!(count(&only, "<structure:DataStructure "), 0);

    let (_, stubs) = get_xml(&app, "codelist?detail=allstubs", None).await;
    assert_eq!(count(&stubs, "isExternalReference=\"true\""), 6);
    assert_eq!(count(&stubs, "<structure:Code "), 0);

    let (_, two) = get_xml(&app, "codelist/BOK/CL_FREQ+CL_MEASURE/latest", None).await;
    assert_eq!(count(&two, "<structure:Codelist "), 2);

    let (_, item) = get_xml(
        &app,
        "codelist/BOK/CL_KR_KNOWLEDGE_SERVICES_COUNTERPART/latest/ASIA",
        None,
    )
    .await;
    assert!(item.contains("isPartial=\"true\""), "{item}");
    // The item and its parent, nothing else.
    assert_eq!(count(&item, "<structure:Code "), 2, "{item}");

    let (_, concepts) = get_xml(&app, "conceptscheme/BOK", None).await;
    assert!(concepts.contains("<structure:Concept id=\"COUNTERPART\""));
}
