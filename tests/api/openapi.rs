//! `openapi/openapi.json` is generated from the code; this fails when they drift.
//! Regenerate with `cargo run -- openapi --out openapi/openapi.json`.

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated = audiorec::api::openapi::document().to_pretty_json().unwrap() + "\n";
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    assert!(
        generated == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi --out openapi/openapi.json`"
    );
}

#[test]
fn every_operation_has_a_description_and_responses() {
    let doc: serde_json::Value =
        serde_json::from_str(&audiorec::api::openapi::document().to_json().unwrap()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let described = op
                .get("description")
                .or(op.get("summary"))
                .and_then(|d| d.as_str())
                .unwrap_or("");
            assert!(!described.is_empty(), "{method} {path} has no description");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
}
