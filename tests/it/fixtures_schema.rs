//! Fixtures we wrote ourselves (no real capture exists) must match the server's OpenAPI
//! document. A small validator for the subset of OpenAPI 3.0 schemas Jellyfin uses: $ref,
//! type, properties, additionalProperties false, items, enum, allOf, nullable and the
//! integer/date-time/uuid formats.

use serde_json::Value;

fn openapi() -> Value {
    openapi_file("openapi.json")
}

/// An OpenAPI document from ../shared/jellyfin (or $JELLYFIN_OPENAPI_DIR).
fn openapi_file(name: &str) -> Value {
    let dir = std::env::var("JELLYFIN_OPENAPI_DIR")
        .unwrap_or_else(|_| format!("{}/../shared/jellyfin", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (set JELLYFIN_OPENAPI_DIR)"));
    serde_json::from_str(&text).unwrap()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Every mismatch, as "path: problem".
fn validate(doc: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{path}: null where the schema does not allow it"));
        }
        return;
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        validate(doc, part, value, path, errors);
    }
    // Jellyfin's document puts an item enum on the array itself (TranscodeReasons): there it
    // constrains each element.
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        let elements = match value.as_array() {
            Some(items) => items.iter().collect::<Vec<_>>(),
            None => vec![value],
        };
        for element in elements.into_iter().filter(|e| !options.contains(e)) {
            errors.push(format!("{path}: {element} is not one of {options:?}"));
        }
    }
    let format = schema.get("format").and_then(Value::as_str);
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return errors.push(format!("{path}: not an object"));
            };
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, item) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(sub) => validate(doc, sub, item, &format!("{path}.{key}"), errors),
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        errors.push(format!("{path}.{key}: not in the schema"))
                    }
                    None => {}
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    validate(doc, &schema["items"], item, &format!("{path}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{path}: not an array")),
        },
        Some("integer") => {
            let fits = match format {
                Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                _ => value.as_i64().is_some(),
            };
            if !fits {
                errors.push(format!(
                    "{path}: {value} is not an integer of format {format:?}"
                ));
            }
        }
        Some("string") => {
            let Some(text) = value.as_str() else {
                return errors.push(format!("{path}: not a string"));
            };
            let ok = match format {
                Some("date-time") => {
                    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).is_ok()
                }
                // Jellyfin writes GUIDs as 32 hex digits; the dashed form is valid too.
                Some("uuid") => {
                    let hex: String = text.chars().filter(|c| *c != '-').collect();
                    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
                }
                _ => true,
            };
            if !ok {
                errors.push(format!("{path}: {text:?} is not a {format:?}"));
            }
        }
        Some("boolean") if !value.is_boolean() => errors.push(format!("{path}: not a boolean")),
        Some("number") if !value.is_number() => errors.push(format!("{path}: not a number")),
        _ => {}
    }
}

fn check(schema: &str, fixture: &str) -> Vec<String> {
    let doc = openapi();
    let path = format!(
        "{}/tests/fixtures/jellyfin/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut errors = Vec::new();
    validate(
        &doc,
        &serde_json::json!({ "$ref": format!("#/components/schemas/{schema}") }),
        &value,
        "$",
        &mut errors,
    );
    errors
}

#[test]
fn the_synthetic_activity_log_matches_the_openapi_schema() {
    assert_eq!(
        check("ActivityLogEntryQueryResult", "activity-log.synthetic.json"),
        Vec::<String>::new()
    );
}

/// A per-job ffmpeg log starts with the job's MediaSourceInfo as one line of JSON
/// (TranscodeManager.StartFfMpeg serialises `state.MediaSource`).
#[test]
fn the_synthetic_ffmpeg_job_log_starts_with_a_valid_media_source() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/jellyfin/ffmpeg-job.transcode.synthetic.log",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let first = text.lines().next().unwrap();
    let value: Value = serde_json::from_str(first).unwrap();
    let doc = openapi();
    let schema = serde_json::json!({ "$ref": "#/components/schemas/MediaSourceInfo" });
    let mut errors = Vec::new();
    validate(&doc, &schema, &value, "$", &mut errors);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(text.lines().nth(1), Some(""), "a blank line follows");
    assert!(text.lines().nth(2).unwrap().contains(" -codec:v:0 "));
}

#[test]
fn the_synthetic_inventory_library_matches_the_openapi_schema() {
    assert_eq!(
        check("BaseItemDtoQueryResult", "items.inventory.synthetic.json"),
        Vec::<String>::new()
    );
}

#[test]
fn the_synthetic_storage_and_virtual_folders_match_the_openapi_schema() {
    assert_eq!(
        check("SystemStorageDto", "system-storage.synthetic.json"),
        Vec::<String>::new()
    );
    assert_eq!(
        check(
            "SystemStorageDto",
            "system-storage.unmeasurable.synthetic.json"
        ),
        Vec::<String>::new()
    );
    // The endpoint answers an array of VirtualFolderInfo.
    let doc = openapi();
    let path = format!(
        "{}/tests/fixtures/jellyfin/virtual-folders.synthetic.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schema = serde_json::json!({ "type": "array", "items": { "$ref": "#/components/schemas/VirtualFolderInfo" } });
    let mut errors = Vec::new();
    validate(&doc, &schema, &value, "$", &mut errors);
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn the_synthetic_10_11_sessions_match_the_10_11_and_12_0_schemas() {
    for fixture in [
        "sessions.transcoding.synthetic.10.11.json",
        "sessions.side-by-side.synthetic.10.11.json",
    ] {
        let path = format!(
            "{}/tests/fixtures/jellyfin/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let schema = serde_json::json!({ "type": "array", "items": { "$ref": "#/components/schemas/SessionInfoDto" } });
        check_10_11_and_12_0(&schema, &path);
    }
}

/// Validates the file at `path` against `schema` in both the 10.11.11 and 12.0 documents.
fn check_10_11_and_12_0(schema: &Value, path: &str) {
    let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for document in ["openapi.json", "openapi-12.0.0.json"] {
        let doc = openapi_file(document);
        let mut errors = Vec::new();
        validate(&doc, schema, &value, "$", &mut errors);
        assert_eq!(errors, Vec::<String>::new(), "{path} against {document}");
    }
}

#[test]
fn the_synthetic_encoding_options_match_the_10_11_and_12_0_schemas() {
    let path = format!(
        "{}/tests/fixtures/jellyfin/encoding-options.synthetic.10.11.json",
        env!("CARGO_MANIFEST_DIR")
    );
    check_10_11_and_12_0(
        &serde_json::json!({ "$ref": "#/components/schemas/EncodingOptions" }),
        &path,
    );
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let doc = openapi();
    let schema = serde_json::json!({ "$ref": "#/components/schemas/ActivityLogEntryQueryResult" });
    let bad = serde_json::json!({
        "Items": [{ "Id": "7", "Severity": "Loud", "Date": "yesterday", "UserId": "x", "Extra": 1 }],
        "TotalRecordCount": 5_000_000_000_i64
    });
    let mut errors = Vec::new();
    validate(&doc, &schema, &bad, "$", &mut errors);
    for expected in [
        "$.Items[0].Id",
        "$.Items[0].Severity",
        "$.Items[0].Date",
        "$.Items[0].UserId",
        "$.Items[0].Extra",
        "$.TotalRecordCount",
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{expected}:"))),
            "{expected} not caught: {errors:?}"
        );
    }
}

#[test]
fn the_real_captures_match_the_schema_too() {
    // A check of the validator against what real servers sent.
    assert_eq!(
        check("SystemInfo", "system-info.10.11.11.json"),
        Vec::<String>::new()
    );
    assert_eq!(
        check("ItemCounts", "items-counts.10.9.6.json"),
        Vec::<String>::new()
    );
}
