//! Mutations of a JSON document, for fuzzing decoders with values shaped like real answers.
//! Shared by the unit fuzzing (`src/fuzz/jellyfin_json.rs`) and the end-to-end fuzzing of the
//! collectors (`tests/it/fuzz_jellyfin.rs`, which includes this file by path).

use proptest::prelude::*;
use serde_json::{Value, json};

/// Applies `mutations` in turn, each at a path picked among those the document has then.
pub fn mutate(value: &mut Value, mutations: &[(prop::sample::Index, Mutation)]) {
    for (index, mutation) in mutations {
        let mut all = Vec::new();
        paths(value, &mut Vec::new(), &mut all);
        let path = index.get(&all).clone();
        mutate_at(value, &path, mutation);
    }
}

/// Every path (as object keys and array indices) inside `value`.
fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(Step::Key(k.clone()));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(Step::Index(i));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// What a mutation does to the value at its path.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Remove it from its object or array.
    Drop,
    /// A value of the same JSON type, at an edge (the type the OpenAPI document gives it).
    Shaped(u32, String),
    /// A value of another type.
    Retype(u32),
}

const EDGE_NUMBERS: [&str; 10] = [
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "1e308",
    "-1e308",
    "-1",
    "0",
    "0.5",
    "4294967296",
    "99999999999999999999999",
];

const EDGE_STRINGS: [&str; 8] = [
    "",
    "0001-01-01T00:00:00.0000000Z",
    "9999-12-31T23:59:59.9999999Z",
    "2024-02-30T25:61:61Z",
    "Ошибка авторизации",
    "😀\u{0}\u{202e}",
    "Bearer \"é",
    "NaN",
];

fn mutate_at(root: &mut Value, path: &[Step], mutation: &Mutation) {
    let Some((last, parent_path)) = path.split_last() else {
        if let Mutation::Retype(n) = mutation {
            *root = other_type(root, *n);
        }
        return;
    };
    let mut parent = &mut *root;
    for step in parent_path {
        parent = match (step, parent) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(k).expect("path exists"),
            (Step::Index(i), Value::Array(items)) => &mut items[*i],
            _ => unreachable!("paths come from this value"),
        };
    }
    let slot = match (last, &mut *parent) {
        (Step::Key(k), Value::Object(map)) => {
            if let Mutation::Drop = mutation {
                map.remove(k);
                return;
            }
            map.get_mut(k).expect("path exists")
        }
        (Step::Index(i), Value::Array(items)) => {
            if let Mutation::Drop = mutation {
                items.remove(*i);
                return;
            }
            &mut items[*i]
        }
        _ => unreachable!("paths come from this value"),
    };
    *slot = match mutation {
        Mutation::Drop => unreachable!("handled above"),
        Mutation::Shaped(n, text) => match &*slot {
            Value::Number(_) => {
                serde_json::from_str(EDGE_NUMBERS[*n as usize % EDGE_NUMBERS.len()])
                    .expect("a JSON number")
            }
            Value::String(_) if n % 2 == 0 => {
                json!(EDGE_STRINGS[*n as usize / 2 % EDGE_STRINGS.len()])
            }
            Value::String(_) => json!(text),
            Value::Bool(b) => json!(!b),
            other => other.clone(),
        },
        Mutation::Retype(n) => other_type(slot, *n),
    };
}

fn other_type(value: &Value, n: u32) -> Value {
    let options = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1e300),
        json!("text"),
        json!([]),
        json!({}),
        json!([value.clone()]),
    ];
    options[n as usize % options.len()].clone()
}

pub fn mutations() -> impl Strategy<Value = Vec<(prop::sample::Index, Mutation)>> {
    let mutation = prop_oneof![
        Just(Mutation::Drop),
        (any::<u32>(), any::<String>()).prop_map(|(n, s)| Mutation::Shaped(n, s)),
        any::<u32>().prop_map(Mutation::Retype),
    ];
    prop::collection::vec((any::<prop::sample::Index>(), mutation), 1..5)
}
