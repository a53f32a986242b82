//! Validation of the tag's payload against `schema/collect.schema.json`, the one contract shared
//! with the tag.
//!
//! Why a small interpreter instead of the `jsonschema` crate: the schema uses a dozen keywords
//! (`type`, `required`, `properties`, `additionalProperties`, `propertyNames`, `$ref` to `$defs`,
//! `const`, `enum`, `minLength`/`maxLength`, `pattern`, `minimum`, `minItems`/`maxItems`,
//! `items`). Interpreting exactly those keeps the dependency tree small (CI compiles from scratch on
//! two cores), gives error paths in the form the response promises (`events[0].user_data.fbp`), and
//! is fast enough to sit on the ingest hot path. It stays faithful because it is driven by the
//! same file, not a hand copy: [`Schema::compile`] refuses any keyword it does not implement, so a
//! schema change that needs a new keyword fails loudly at start-up and in the tests instead of
//! being silently ignored. Annotation keywords (`description`, `title`, `$id`, `$schema`) are
//! skipped.

use std::collections::BTreeMap;

use regex_lite::Regex;
use serde_json::Value;

/// The payload schema shipped with the tag, embedded at compile time.
pub const COLLECT_SCHEMA_JSON: &str = include_str!("../../schema/collect.schema.json");

/// Keywords that carry no validation meaning.
const ANNOTATION_KEYWORDS: &[&str] = &["description", "title", "$id", "$schema", "$comment", "examples", "default"];

/// A compiled schema node. Every field is one keyword; absent keywords are `None`/empty.
#[derive(Debug, Default)]
struct Node {
    types: Option<Vec<JsonType>>,
    required: Vec<String>,
    properties: BTreeMap<String, usize>,
    /// `None`: anything allowed; `Some(None)`: `false`; `Some(Some(node))`: must match node.
    additional_properties: Option<Option<usize>>,
    property_names: Option<usize>,
    reference: Option<usize>,
    constant: Option<Value>,
    enumeration: Option<Vec<Value>>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<(String, Regex)>,
    minimum: Option<f64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    items: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

impl JsonType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "object" => Self::Object,
            "array" => Self::Array,
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "null" => Self::Null,
            _ => return None,
        })
    }

    fn matches(self, value: &Value) -> bool {
        match self {
            Self::Object => value.is_object(),
            Self::Array => value.is_array(),
            Self::String => value.is_string(),
            Self::Integer => is_integer(value),
            Self::Number => value.is_number(),
            Self::Boolean => value.is_boolean(),
            Self::Null => value.is_null(),
        }
    }
}

/// JSON Schema integers are numbers with no fractional part, so `5.0` is one.
fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(number) => {
            number.is_i64() || number.is_u64() || number.as_f64().is_some_and(|float| float.fract() == 0.0)
        }
        _ => false,
    }
}

/// A validation failure: where (`events[0].event_id`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// A compiled schema: a node arena plus the root and the named definitions.
#[derive(Debug)]
pub struct Schema {
    nodes: Vec<Node>,
    root: usize,
    definitions: BTreeMap<String, usize>,
}

impl Schema {
    /// The embedded payload schema. Compiling it is covered by tests, so failure here means the
    /// binary was built from a schema this interpreter cannot enforce.
    pub fn collect() -> Result<Self, String> {
        let document: Value = serde_json::from_str(COLLECT_SCHEMA_JSON)
            .map_err(|error| format!("schema/collect.schema.json is not JSON: {error}"))?;
        Self::compile(&document)
    }

    pub fn compile(document: &Value) -> Result<Self, String> {
        let mut compiler = Compiler { nodes: Vec::new(), definitions: BTreeMap::new() };
        if let Some(defs) = document.get("$defs").and_then(Value::as_object) {
            // Reserve the slots first so definitions can refer to each other in any order.
            for name in defs.keys() {
                let slot = compiler.push(Node::default());
                compiler.definitions.insert(name.clone(), slot);
            }
            for (name, definition) in defs {
                let compiled = compiler.compile_node(definition, &format!("#/$defs/{name}"))?;
                let slot = compiler.definitions[name];
                compiler.nodes[slot] = compiled;
            }
        }
        let root_node = compiler.compile_node(document, "#")?;
        let root = compiler.push(root_node);
        Ok(Self { nodes: compiler.nodes, root, definitions: compiler.definitions })
    }

    /// Validates a whole document against the root schema.
    pub fn validate(&self, value: &Value) -> Result<(), Violation> {
        self.validate_node(self.root, value, &mut String::new(), Mode::Full)
    }

    /// Validates the document around one array member (`events`) without descending into the
    /// array's items, so each item can then be judged on its own with [`Schema::validate_definition`].
    pub fn validate_envelope(&self, value: &Value, item_array: &str) -> Result<(), Violation> {
        self.validate_node(self.root, value, &mut String::new(), Mode::Envelope(item_array))
    }

    /// Validates a value against a named `$defs` entry; `path` prefixes error fields.
    pub fn validate_definition(&self, name: &str, value: &Value, path: &str) -> Result<(), Violation> {
        match self.definitions.get(name) {
            Some(&index) => self.validate_node(index, value, &mut path.to_owned(), Mode::Full),
            None => Err(Violation { field: path.to_owned(), message: format!("schema has no definition {name:?}") }),
        }
    }

    fn validate_node(&self, index: usize, value: &Value, path: &mut String, mode: Mode) -> Result<(), Violation> {
        let node = &self.nodes[index];
        let fail = |path: &String, message: String| Err(Violation { field: display_path(path), message });
        if let Some(target) = node.reference {
            self.validate_node(target, value, path, mode)?;
        }
        if let Some(types) = &node.types {
            if !types.iter().any(|kind| kind.matches(value)) {
                let names: Vec<&str> = types.iter().map(|kind| type_name(*kind)).collect();
                return fail(path, format!("must be of type {}", names.join(" or ")));
            }
        }
        if let Some(constant) = &node.constant {
            if value != constant {
                return fail(path, format!("must equal {constant}"));
            }
        }
        if let Some(allowed) = &node.enumeration {
            if !allowed.iter().any(|candidate| candidate == value) {
                let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
                return fail(path, format!("must be one of {}", listed.join(", ")));
            }
        }
        if let Value::String(text) = value {
            let length = text.chars().count() as u64;
            if node.min_length.is_some_and(|min| length < min) {
                return fail(path, format!("must be at least {} characters", node.min_length.unwrap_or(0)));
            }
            if node.max_length.is_some_and(|max| length > max) {
                return fail(path, format!("must be at most {} characters", node.max_length.unwrap_or(0)));
            }
            if let Some((source, regex)) = &node.pattern {
                if !regex.is_match(text) {
                    return fail(path, format!("must match the pattern {source}"));
                }
            }
        }
        if let (Some(minimum), Value::Number(number)) = (node.minimum, value) {
            if number.as_f64().is_some_and(|float| float < minimum) {
                return fail(path, format!("must be at least {minimum}"));
            }
        }
        if let Value::Array(elements) = value {
            let count = elements.len() as u64;
            if node.min_items.is_some_and(|min| count < min) {
                return fail(path, format!("must have at least {} items", node.min_items.unwrap_or(0)));
            }
            if node.max_items.is_some_and(|max| count > max) {
                return fail(path, format!("must have at most {} items", node.max_items.unwrap_or(0)));
            }
            if let (Some(items), false) = (node.items, mode == Mode::SkipItems) {
                for (position, element) in elements.iter().enumerate() {
                    let saved = path.len();
                    path.push_str(&format!("[{position}]"));
                    self.validate_node(items, element, path, Mode::Full)?;
                    path.truncate(saved);
                }
            }
        }
        if let Value::Object(members) = value {
            for name in &node.required {
                if !members.contains_key(name) {
                    let saved = path.len();
                    push_member(path, name);
                    let result = fail(path, "is required".to_owned());
                    path.truncate(saved);
                    return result;
                }
            }
            for (name, member) in members {
                let saved = path.len();
                push_member(path, name);
                if let Some(names) = node.property_names {
                    self.validate_node(names, &Value::String(name.clone()), path, Mode::Full)
                        .map_err(|violation| Violation { field: display_path(path), message: format!("is not an allowed key ({})", violation.message) })?;
                }
                let member_mode = match mode {
                    Mode::Envelope(deferred) if deferred == name => Mode::SkipItems,
                    _ => Mode::Full,
                };
                match (node.properties.get(name), node.additional_properties) {
                    (Some(&property), _) => self.validate_node(property, member, path, member_mode)?,
                    (None, Some(None)) => return fail(path, "is not an allowed key".to_owned()),
                    (None, Some(Some(additional))) => self.validate_node(additional, member, path, member_mode)?,
                    (None, None) => {}
                }
                path.truncate(saved);
            }
        }
        Ok(())
    }
}

/// How deep a validation goes: everything, or everything but the items of one array member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode<'a> {
    Full,
    Envelope(&'a str),
    SkipItems,
}

fn push_member(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
}

fn display_path(path: &str) -> String {
    if path.is_empty() { "(body)".to_owned() } else { path.to_owned() }
}

fn type_name(kind: JsonType) -> &'static str {
    match kind {
        JsonType::Object => "object",
        JsonType::Array => "array",
        JsonType::String => "string",
        JsonType::Integer => "integer",
        JsonType::Number => "number",
        JsonType::Boolean => "boolean",
        JsonType::Null => "null",
    }
}

struct Compiler {
    nodes: Vec<Node>,
    definitions: BTreeMap<String, usize>,
}

impl Compiler {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn compile_child(&mut self, schema: &Value, pointer: &str) -> Result<usize, String> {
        let node = self.compile_node(schema, pointer)?;
        Ok(self.push(node))
    }

    fn compile_node(&mut self, schema: &Value, pointer: &str) -> Result<Node, String> {
        let object = schema.as_object().ok_or_else(|| format!("{pointer}: schema must be an object"))?;
        let mut node = Node::default();
        for (keyword, argument) in object {
            let at = format!("{pointer}/{keyword}");
            match keyword.as_str() {
                "$defs" => {} // compiled up front by Schema::compile (only at the root)
                "type" => {
                    let names: Vec<&Value> = match argument {
                        Value::Array(names) => names.iter().collect(),
                        single => vec![single],
                    };
                    let mut kinds = Vec::new();
                    for name in names {
                        let name = name.as_str().ok_or_else(|| format!("{at}: type names must be strings"))?;
                        kinds.push(JsonType::parse(name).ok_or_else(|| format!("{at}: unknown type {name:?}"))?);
                    }
                    node.types = Some(kinds);
                }
                "required" => {
                    let names = argument.as_array().ok_or_else(|| format!("{at}: must be an array"))?;
                    for name in names {
                        node.required.push(name.as_str().ok_or_else(|| format!("{at}: names must be strings"))?.to_owned());
                    }
                }
                "properties" => {
                    let members = argument.as_object().ok_or_else(|| format!("{at}: must be an object"))?;
                    for (name, property) in members {
                        let child = self.compile_child(property, &format!("{at}/{name}"))?;
                        node.properties.insert(name.clone(), child);
                    }
                }
                "additionalProperties" => {
                    node.additional_properties = match argument {
                        Value::Bool(true) => None,
                        Value::Bool(false) => Some(None),
                        schema => Some(Some(self.compile_child(schema, &at)?)),
                    };
                }
                "propertyNames" => node.property_names = Some(self.compile_child(argument, &at)?),
                "items" => node.items = Some(self.compile_child(argument, &at)?),
                "$ref" => {
                    let target = argument.as_str().ok_or_else(|| format!("{at}: must be a string"))?;
                    let name = target
                        .strip_prefix("#/$defs/")
                        .ok_or_else(|| format!("{at}: only local #/$defs/ references are supported, got {target:?}"))?;
                    node.reference = Some(*self.definitions.get(name).ok_or_else(|| format!("{at}: unknown definition {name:?}"))?);
                }
                "const" => node.constant = Some(argument.clone()),
                "enum" => node.enumeration = Some(argument.as_array().ok_or_else(|| format!("{at}: must be an array"))?.clone()),
                "minLength" => node.min_length = Some(argument.as_u64().ok_or_else(|| format!("{at}: must be a non-negative integer"))?),
                "maxLength" => node.max_length = Some(argument.as_u64().ok_or_else(|| format!("{at}: must be a non-negative integer"))?),
                "minItems" => node.min_items = Some(argument.as_u64().ok_or_else(|| format!("{at}: must be a non-negative integer"))?),
                "maxItems" => node.max_items = Some(argument.as_u64().ok_or_else(|| format!("{at}: must be a non-negative integer"))?),
                "minimum" => node.minimum = Some(argument.as_f64().ok_or_else(|| format!("{at}: must be a number"))?),
                "pattern" => {
                    let source = argument.as_str().ok_or_else(|| format!("{at}: must be a string"))?;
                    let regex = Regex::new(source).map_err(|error| format!("{at}: bad pattern: {error}"))?;
                    node.pattern = Some((source.to_owned(), regex));
                }
                other if ANNOTATION_KEYWORDS.contains(&other) => {}
                other => return Err(format!("{at}: keyword {other:?} is not supported by the collector's validator")),
            }
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, value: Value, expected: Result<(), &str>) {
        let compiled = Schema::compile(&schema).expect("schema compiles");
        let actual = compiled.validate(&value).map_err(|violation| format!("{}: {}", violation.field, violation.message));
        assert_eq!(actual, expected.map_err(str::to_owned), "value {value}");
    }

    #[test]
    fn the_shipped_schema_compiles() {
        Schema::collect().expect("collect.schema.json uses only supported keywords");
    }

    #[test]
    fn unknown_keywords_are_refused() {
        let error = Schema::compile(&json!({"type": "object", "oneOf": []})).expect_err("oneOf unsupported");
        assert!(error.contains("oneOf"), "{error}");
    }

    #[test]
    fn keywords() {
        let object = json!({"type": "object", "required": ["a"], "additionalProperties": false,
            "properties": {"a": {"type": "integer", "minimum": 2}, "b": {"type": "string", "maxLength": 2, "pattern": "^x"}}});
        check(object.clone(), json!({"a": 2}), Ok(()));
        check(object.clone(), json!({"a": 2.0}), Ok(()));
        check(object.clone(), json!({"a": 2.5}), Err("a: must be of type integer"));
        check(object.clone(), json!({"a": 1}), Err("a: must be at least 2"));
        check(object.clone(), json!({}), Err("a: is required"));
        check(object.clone(), json!({"a": 3, "c": 1}), Err("c: is not an allowed key"));
        check(object.clone(), json!({"a": 3, "b": "xyz"}), Err("b: must be at most 2 characters"));
        check(object.clone(), json!({"a": 3, "b": "yz"}), Err("b: must match the pattern ^x"));
        check(object, json!([]), Err("(body): must be of type object"));
        let array = json!({"type": "array", "maxItems": 2, "items": {"enum": ["p", "q"]}});
        check(array.clone(), json!(["p", "q"]), Ok(()));
        check(array.clone(), json!(["p", "r"]), Err("[1]: must be one of \"p\", \"q\""));
        check(array, json!(["p", "p", "p"]), Err("(body): must have at most 2 items"));
        let names = json!({"type": "object", "propertyNames": {"enum": ["k"]}, "additionalProperties": {"type": "object", "required": ["v"]}});
        check(names.clone(), json!({"k": {"v": 1}}), Ok(()));
        check(names.clone(), json!({"z": {"v": 1}}), Err("z: is not an allowed key (must be one of \"k\")"));
        check(names, json!({"k": {}}), Err("k.v: is required"));
        check(json!({"const": "website"}), json!("app"), Err("(body): must equal \"website\""));
        check(json!({"type": ["string", "boolean"]}), json!(true), Ok(()));
        // Lengths count code points, not bytes.
        check(json!({"type": "string", "maxLength": 2}), json!("éé"), Ok(()));
    }
}
