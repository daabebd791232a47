//! `amendDataset` over HTTP: the `DatasetAmended` event kind.

use serde_json::{json, Value};

use super::support::*;

const DEFINITION: &str = "query($id: ID!) { dataset(id: $id) {
  id name publisher description unit unitMultiplier measures
  dimensions { id label codes { code label parent } }
} }";

const AMEND: &str = "mutation($input: DatasetInput!) {
  amendDataset(input: $input) { name description dimensions { id codes { code } } }
}";

/// The fixture dataset's definition as a `DatasetInput`.
async fn current_input(app: &TestApp) -> Value {
    let d = app.query(DEFINITION, json!({ "id": DATASET })).await["dataset"].clone();
    let dimensions: Vec<Value> = d["dimensions"]
        .as_array()
        .expect("dimensions")
        .iter()
        .map(|dim| {
            let codes: Vec<Value> = dim["codes"]
                .as_array()
                .expect("codes")
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    if c["parent"].is_null() {
                        c.as_object_mut().unwrap().remove("parent");
                    }
                    c
                })
                .collect();
            json!({ "id": dim["id"], "label": dim["label"], "codes": codes })
        })
        .collect();
    json!({
        "id": d["id"], "name": d["name"], "publisher": d["publisher"], "description": d["description"],
        "unit": d["unit"], "unitMultiplier": d["unitMultiplier"], "measures": d["measures"],
        "dimensions": dimensions,
    })
}

fn codes_of(dataset: &Value, dim: usize) -> Vec<String> {
    dataset["dimensions"][dim]["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c["code"].as_str().expect("code").to_owned())
        .collect()
}

#[tokio::test]
async fn amend_dataset_changes_labels_appends_codes_and_refuses_a_removed_code() {
    let app = spawn_app().await;
    let (head, _) = app.head().await;
    let original = current_input(&app).await;
    let old_codes = codes_of(&original, 0);

    // A new name and description, one code appended to the first dimension.
    let mut amended = original.clone();
    amended["name"] = json!("Knowledge services trade, amended");
    amended["description"] = json!("Now with a code for AI services.");
    amended["dimensions"][0]["codes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "code": "AIS", "label": "AI services", "parent": "_T" }));
    let v = data_of(app.gql_write(AMEND, json!({ "input": amended })).await)["amendDataset"].clone();
    assert_eq!(v["name"], "Knowledge services trade, amended");
    assert_eq!(v["description"], "Now with a code for AI services.");
    let mut expected = old_codes.clone();
    expected.push("AIS".into());
    assert_eq!(codes_of(&v, 0), expected);
    assert_eq!(app.head().await.0, head + 1, "one event recorded");
    let events = app
        .query(
            "query($after: Int) { events(after: $after) { nodes { kind dataset } } }",
            json!({ "after": head }),
        )
        .await;
    assert_eq!(
        events["events"]["nodes"],
        json!([{ "kind": "DATASET_AMENDED", "dataset": DATASET }])
    );
    // Reads see the amended definition.
    assert_eq!(codes_of(&current_input(&app).await, 0), expected);

    // The same definition again is a duplicate: nothing recorded.
    data_of(app.gql_write(AMEND, json!({ "input": amended })).await);
    assert_eq!(app.head().await.0, head + 1, "a repeated amendment records nothing");

    // The appended code can be published to.
    let dims = amended["dimensions"].as_array().unwrap().len();
    let key = std::iter::once("AIS")
        .chain(std::iter::repeat_n("_T", dims - 1))
        .collect::<Vec<_>>()
        .join(".");
    let input = release_input("6b1f0c2e-4d3a-4e51-9a57-2025a00000a1", &key, "2025-S1", "12.5");
    app.publish(input).await;
    let (head, _) = app.head().await;

    // Removing a code is refused, naming it, and changes nothing.
    let mut removed = amended.clone();
    removed["dimensions"][0]["codes"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["code"] != "AIS");
    let v = app.gql_write(AMEND, json!({ "input": removed })).await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v:#}");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("`AIS`") && message.contains("removed"), "{message}");
    assert_eq!(app.head().await.0, head, "a refused amendment records nothing");

    // Anything beyond names, labels and appended codes is refused too.
    let mut unit = amended.clone();
    unit["unit"] = json!("EUR");
    assert_eq!(
        code(&app.gql_write(AMEND, json!({ "input": unit })).await),
        "BAD_USER_INPUT"
    );

    // An unknown dataset is NOT_FOUND; a missing token is refused before anything else.
    let mut unknown = amended.clone();
    unknown["id"] = json!("NO_SUCH_DATASET");
    assert_eq!(
        code(&app.gql_write(AMEND, json!({ "input": unknown })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code(&app.gql(AMEND, json!({ "input": amended })).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(app.head().await.0, head);
}
