//! `report.json` and its JSON Schema.
//!
//! The JSON is the report itself, pretty-printed, fields in declaration order; the schema is
//! generated from the Rust types by `schemars` (draft 2020-12, field docs as descriptions) and
//! committed as `reports/schema/report.schema.json`, which a test keeps in sync.

use crate::model::Report;

/// The report as pretty-printed JSON, ending with a newline.
pub fn render_json(report: &Report) -> String {
    let mut json = serde_json::to_string_pretty(report)
        .expect("a report has only string map keys, so it always serialises");
    json.push('\n');
    json
}

/// The JSON Schema (draft 2020-12) that every `report.json` of this major version validates
/// against.
pub fn report_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Report).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "title".to_owned(),
            serde_json::Value::String("Box Office Lab run report".to_owned()),
        );
    }
    schema
}

/// The schema as committed in `reports/schema/report.schema.json`: pretty JSON with a final
/// newline.
pub fn render_schema() -> String {
    let mut text =
        serde_json::to_string_pretty(&report_schema()).expect("a JSON value always serialises");
    text.push('\n');
    text
}
