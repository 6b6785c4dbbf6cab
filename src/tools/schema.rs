//! Tool schemas derived from the Rust types that parse the arguments and build the answers
//! (schemars), in the plain form MCP clients read: inlined, without `format` or a top-level title.
//! In debug builds every answer is checked against its tool's output schema before it leaves, so
//! the test suite catches a schema that drifted from the code. Doc comments on fields become the
//! fields' descriptions, which models read; a nested type's own doc comment would too, so nested
//! answer types carry plain comments.

use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::Value;

/// The schema of `T` as a tool declares it.
pub fn of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        // The type's own name and doc comment are for Rust readers, not for the model.
        map.remove("title");
        map.remove("description");
    }
    strip_formats(&mut schema);
    schema
}

/// For fields with a serde default: the schema states the default in words, if at all, not as a
/// `default` value (the field's type default is not the tool's).
pub fn no_default(schema: &mut schemars::Schema) {
    if let Some(map) = schema.as_object_mut() {
        map.remove("default");
    }
}

/// Removes `format` (`int64`, `uint`: ajv-based clients warn about them) at every depth.
fn strip_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("format").is_some_and(Value::is_string) {
                map.remove("format");
            }
            for (key, inner) in map.iter_mut() {
                if key == "properties" {
                    // Property names are names: look inside each definition.
                    if let Value::Object(properties) = inner {
                        properties.values_mut().for_each(strip_formats);
                    }
                } else {
                    strip_formats(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_formats),
        _ => {}
    }
}

/// Where `value` breaks `schema`, one line each. Knows exactly the keywords the tools' schemas
/// use, and reports any other keyword as a problem, so a check can never pass by ignoring one.
#[cfg(debug_assertions)]
pub fn violations(schema: &Value, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(schema, value, "answer", &mut found);
    found
}

#[cfg(debug_assertions)]
fn check(schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let Value::Object(schema) = schema else {
        found.push(format!("{path}: the schema is not an object"));
        return;
    };
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "description" | "title" | "default" => {}
            "type" => {
                let names: Vec<&str> = match rule {
                    Value::String(name) => vec![name.as_str()],
                    Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if !names.iter().any(|name| is_type(value, name)) {
                    found.push(format!("{path}: {value} is not of type {rule}"));
                }
            }
            "properties" => {
                let (Value::Object(properties), Value::Object(object)) = (rule, value) else {
                    continue;
                };
                for (name, inner) in properties {
                    if let Some(field) = object.get(name) {
                        check(inner, field, &format!("{path}.{name}"), found);
                    }
                }
            }
            "required" => {
                let Value::Object(object) = value else {
                    continue;
                };
                for name in rule
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !object.contains_key(name) {
                        found.push(format!("{path}: {name} is missing"));
                    }
                }
            }
            "additionalProperties" => {
                let (Value::Object(object), Some(known)) = (value, schema.get("properties")) else {
                    continue;
                };
                for (name, field) in object {
                    if known.get(name).is_some() {
                        continue;
                    }
                    match rule {
                        Value::Bool(false) => found.push(format!("{path}: {name} is not declared")),
                        Value::Bool(true) => {}
                        inner => check(inner, field, &format!("{path}.{name}"), found),
                    }
                }
            }
            "items" => {
                if let Value::Array(items) = value {
                    for (index, item) in items.iter().enumerate() {
                        check(rule, item, &format!("{path}[{index}]"), found);
                    }
                }
            }
            "minimum" | "maximum" | "maxItems" | "minLength" | "maxLength" => {
                let Some(bound) = rule.as_f64() else {
                    found.push(format!("{path}: {keyword} is not a number"));
                    continue;
                };
                let measured = match (keyword.as_str(), value) {
                    ("minimum" | "maximum", Value::Number(n)) => n.as_f64(),
                    ("maxItems", Value::Array(items)) => Some(items.len() as f64),
                    ("minLength" | "maxLength", Value::String(s)) => Some(s.chars().count() as f64),
                    _ => None,
                };
                let broken = measured.is_some_and(|m| match keyword.as_str() {
                    "minimum" | "minLength" => m < bound,
                    _ => m > bound,
                });
                if broken {
                    found.push(format!("{path}: {value} breaks {keyword} {bound}"));
                }
            }
            "enum" => {
                if !rule
                    .as_array()
                    .is_some_and(|allowed| allowed.contains(value))
                {
                    found.push(format!("{path}: {value} is not one of {rule}"));
                }
            }
            other => found.push(format!(
                "{path}: the check does not know the keyword {other}"
            )),
        }
    }
}

#[cfg(debug_assertions)]
fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_check_finds_every_kind_of_drift() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "next": {"type": ["integer", "null"]},
                "ids": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
                "kind": {"type": "string", "enum": ["a", "b"]},
            },
            "required": ["id", "next"],
            "additionalProperties": false,
        });
        assert!(
            violations(
                &schema,
                &json!({"id": 1, "next": null, "ids": [1, 2], "kind": "a"})
            )
            .is_empty()
        );
        let broken = json!({"id": 0, "ids": [1, "x", 3], "kind": "c", "extra": true});
        assert_eq!(
            violations(&schema, &broken),
            [
                "answer.id: 0 breaks minimum 1",
                "answer.ids[1]: \"x\" is not of type \"integer\"",
                "answer.ids: [1,\"x\",3] breaks maxItems 2",
                "answer.kind: \"c\" is not one of [\"a\",\"b\"]",
                "answer: next is missing",
                "answer: extra is not declared",
            ]
        );
        let unknown = json!({"type": "object", "oneOf": []});
        assert_eq!(
            violations(&unknown, &json!({})),
            ["answer: the check does not know the keyword oneOf"]
        );
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    /// Not for the model.
    struct Answer {
        /// The chat's ID.
        chat_id: i64,
        count: usize,
        // Required yet null when absent: `required` alone would drop the null.
        #[schemars(required, extend("type" = ["integer", "null"]))]
        next: Option<i64>,
        note: Option<String>,
        user_ids: Vec<i64>,
    }

    #[test]
    fn derived_schemas_are_plain() {
        assert_eq!(
            of::<Answer>(),
            json!({
                "type": "object",
                "properties": {
                    "chat_id": {"type": "integer", "description": "The chat's ID."},
                    "count": {"type": "integer", "minimum": 0},
                    "next": {"type": ["integer", "null"]},
                    "note": {"type": ["string", "null"]},
                    "user_ids": {"type": "array", "items": {"type": "integer"}},
                },
                "required": ["chat_id", "count", "next", "user_ids"],
            })
        );
    }
}
