//! Argument validation against a tool's JSON Schema, with the path of the first violation so
//! the model can be told exactly what to fix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Why arguments were not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// The schema itself does not compile; the message is the validator's.
    #[error("invalid JSON Schema: {0}")]
    InvalidSchema(String),
    /// The arguments break the schema.
    #[error("arguments do not match the schema at {path}: {message}")]
    Violation {
        /// JSON pointer to the first offending value (`/` for the whole object).
        path: String,
        /// What is wrong there, as the validator words it.
        message: String,
    },
}

/// Checks `arguments` against `schema`; the error names the JSON pointer of the first problem
/// (`/` for the object itself). Compiles the schema each time: for a schema checked once (a
/// task's output schema). Tools' arguments go through a [`SchemaCache`].
pub fn validate_arguments(schema: &Value, arguments: &Value) -> Result<(), SchemaError> {
    check(&compile(schema)?, arguments)
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, SchemaError> {
    jsonschema::validator_for(schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()))
}

/// The one message a call with bad arguments gets, from the registry and from `agent parse`.
pub fn argument_error(tool: &str, error: &SchemaError) -> String {
    format!("tool `{tool}`: {error}")
}

/// The one message a call to a tool that does not exist gets.
pub fn unknown_tool(name: &str, available: &[String]) -> String {
    let available = if available.is_empty() {
        "none".to_string()
    } else {
        available.join(", ")
    };
    format!("unknown tool `{name}`; available tools: {available}")
}

/// Tools' argument schemas, each compiled on its first call and kept. A schema that changes
/// under the same name (an MCP server's new tool list) is compiled again.
#[derive(Default)]
pub struct SchemaCache {
    compiled: Mutex<HashMap<String, (Value, Arc<jsonschema::Validator>)>>,
}

impl SchemaCache {
    /// Checks `arguments` against `schema`, the schema of the tool named `tool`, compiling it
    /// only when it is new for that name. Errors are those of [`validate_arguments`].
    pub fn validate(
        &self,
        tool: &str,
        schema: &Value,
        arguments: &Value,
    ) -> Result<(), SchemaError> {
        let cached = self.compiled.lock().ok().and_then(|m| {
            m.get(tool)
                .filter(|(s, _)| s == schema)
                .map(|(_, v)| v.clone())
        });
        let validator = match cached {
            Some(v) => v,
            None => {
                let v = Arc::new(compile(schema)?);
                if let Ok(mut m) = self.compiled.lock() {
                    m.insert(tool.to_string(), (schema.clone(), v.clone()));
                }
                v
            }
        };
        check(&validator, arguments)
    }

    /// How many schemas have been compiled and kept (for tests).
    pub fn len(&self) -> usize {
        self.compiled.lock().map_or(0, |m| m.len())
    }

    /// True when no schema has been compiled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check(validator: &jsonschema::Validator, arguments: &Value) -> Result<(), SchemaError> {
    match validator.iter_errors(arguments).next() {
        None => Ok(()),
        Some(err) => {
            let path = err.instance_path.as_str().to_string();
            Err(SchemaError::Violation {
                path: if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                },
                message: err.to_string(),
            })
        }
    }
}

/// Small models fill a string parameter with its description ("The text to search") when the
/// task does not make the value obvious to them; such a call is valid by the schema but
/// meaningless, and the tool's answer to it reads like a real result. Names the first
/// top-level string argument that repeats its description: whole, or, for a longer value, its
/// first 24 characters (the model sometimes runs on into another parameter's text). Only prose
/// descriptions count (three words or more, no URL), and never for parameters whose values
/// are fixed by the schema (`enum`, `const`, `pattern`, `format`).
pub fn echoed_description(schema: &Value, arguments: &Value) -> Option<String> {
    let norm = |s: &str| s.trim().trim_end_matches('.').trim().to_lowercase();
    let props = schema.get("properties")?.as_object()?;
    let args = arguments.as_object()?;
    props.iter().find_map(|(name, prop)| {
        if ["enum", "const", "pattern", "format"]
            .iter()
            .any(|k| prop.get(k).is_some())
        {
            return None;
        }
        let value = norm(args.get(name)?.as_str()?);
        let description = norm(prop.get("description")?.as_str()?);
        if description.split_whitespace().count() < 3 || description.contains("://") {
            return None;
        }
        let head: String = description.chars().take(24).collect();
        let echoed = value == description
            || (head.chars().count() == 24
                && value.chars().count() > description.chars().count()
                && value.starts_with(&head));
        echoed.then(|| name.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_a_description_given_as_the_value() {
        let schema = json!({"type": "object", "properties": {
            "text": {"type": "string", "description": "The text to search"},
            "answer": {"description": "The answer itself, as the task asks for it (a number, a word)."},
            "n": {"type": "integer", "description": "How many"}
        }});
        let found = |args: Value| echoed_description(&schema, &args);
        assert_eq!(
            found(json!({"text": "The text to search"})),
            Some("text".into())
        );
        assert_eq!(
            found(json!({"text": " the text to search. "})),
            Some("text".into())
        );
        assert_eq!(
            found(
                json!({"answer": "The answer itself, as the task asks for it (a number, a word, any substring)."})
            ),
            Some("answer".into())
        );
        assert_eq!(
            found(json!({"text": "strawberry", "answer": "3", "n": 3})),
            None
        );
        // Short descriptions must be matched whole: "The text" is a fine value.
        assert_eq!(found(json!({"text": "The text"})), None);
        assert_eq!(found(json!({"answer": "The answer itself"})), None);
        // Labels, URL templates and values the schema fixes are not prose to echo.
        let schema = json!({"type": "object", "properties": {
            "q": {"type": "string", "description": "query"},
            "url": {"type": "string", "description": "https://api.example.com/v1/{resource}, the endpoint"},
            "mode": {"type": "string", "enum": ["the fast mode"], "description": "the fast mode"}
        }});
        let args = json!({"q": "query", "url": "https://api.example.com/v1/users, the endpoint and more", "mode": "the fast mode"});
        assert_eq!(echoed_description(&schema, &args), None);
    }

    #[test]
    fn schemas_are_compiled_once_per_tool_and_again_when_they_change() {
        let cache = SchemaCache::default();
        let int = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let text = json!({"type": "object", "properties": {"n": {"type": "string"}}});
        for _ in 0..3 {
            assert_eq!(cache.validate("f", &int, &json!({"n": 1})), Ok(()));
        }
        assert_eq!(cache.len(), 1);
        // The same name with a new schema (an MCP server's new list) is checked by the new one.
        assert!(cache.validate("f", &text, &json!({"n": 1})).is_err());
        assert_eq!(cache.validate("f", &text, &json!({"n": "1"})), Ok(()));
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.validate("g", &json!({"type": 5}), &json!({})),
            Err(SchemaError::InvalidSchema(
                "5 is not valid under any of the schemas listed in the 'anyOf' keyword".into()
            ))
        );
    }

    #[test]
    fn reports_path_of_violation() {
        let schema =
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        assert_eq!(validate_arguments(&schema, &json!({"n": 3})), Ok(()));
        assert_eq!(
            validate_arguments(&schema, &json!({"n": "x"})),
            Err(SchemaError::Violation {
                path: "/n".into(),
                message: "\"x\" is not of type \"integer\"".into()
            })
        );
        assert_eq!(
            validate_arguments(&schema, &json!({})),
            Err(SchemaError::Violation {
                path: "/".into(),
                message: "\"n\" is a required property".into()
            })
        );
    }
}
