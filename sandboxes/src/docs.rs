//! Doc comments for typed tools. A component's type information has names and types but no
//! docs, so a guest embeds its WIT source (custom section `agent-tool-wit`) and the host reads
//! the `///` comments from it: a function's become the tool's description, a record's, field's,
//! enum case's, variant case's or flag's become the description in the schema.
//!
//! The WIT is only a source of text: types come from the compiled component, so a WIT that
//! does not match it can cost descriptions, never correctness. Named types are found again by
//! their shape (the set of field or case names), since the component does not name them.

use std::collections::{BTreeSet, HashMap};

use wit_parser::{Docs as WitDocs, Function, Resolve, TypeDefKind};

/// Docs of one record, enum, variant or flags type.
#[derive(Debug, Default, Clone)]
pub struct TypeDocs {
    pub doc: Option<String>,
    /// Per field, case or flag, by its WIT name.
    pub members: HashMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Docs {
    /// By `interface/function` and by plain function name.
    functions: HashMap<String, String>,
    /// By the sorted names of the type's fields or cases.
    types: HashMap<BTreeSet<String>, TypeDocs>,
}

fn text(d: &WitDocs) -> Option<String> {
    d.contents
        .as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Docs {
    /// Parses `wit`; a WIT that does not parse gives no docs and a warning, not an error (the
    /// tool still works, it is only described less).
    pub fn parse(component: &str, wit: Option<&str>) -> Docs {
        let Some(wit) = wit else {
            return Docs::default();
        };
        let mut resolve = Resolve::default();
        if let Err(e) = resolve.push_source("embedded.wit", wit) {
            tracing::warn!(
                component,
                "the embedded WIT does not parse, so its tools have no descriptions: {e:#}"
            );
            return Docs::default();
        }
        let mut docs = Docs::default();
        let mut add_fn = |scope: Option<&str>, f: &Function| {
            if let Some(d) = text(&f.docs) {
                if let Some(scope) = scope {
                    docs.functions
                        .insert(format!("{scope}/{}", f.name), d.clone());
                }
                docs.functions.entry(f.name.clone()).or_insert(d);
            }
        };
        for (_, iface) in resolve.interfaces.iter() {
            for f in iface.functions.values() {
                add_fn(iface.name.as_deref(), f);
            }
        }
        for (_, world) in resolve.worlds.iter() {
            for item in world.exports.values().chain(world.imports.values()) {
                if let wit_parser::WorldItem::Function(f) = item {
                    add_fn(None, f);
                }
            }
        }
        for (_, ty) in resolve.types.iter() {
            let members: Vec<(String, Option<String>)> = match &ty.kind {
                TypeDefKind::Record(r) => r
                    .fields
                    .iter()
                    .map(|f| (f.name.clone(), text(&f.docs)))
                    .collect(),
                TypeDefKind::Enum(e) => e
                    .cases
                    .iter()
                    .map(|c| (c.name.clone(), text(&c.docs)))
                    .collect(),
                TypeDefKind::Variant(v) => v
                    .cases
                    .iter()
                    .map(|c| (c.name.clone(), text(&c.docs)))
                    .collect(),
                TypeDefKind::Flags(f) => f
                    .flags
                    .iter()
                    .map(|c| (c.name.clone(), text(&c.docs)))
                    .collect(),
                _ => continue,
            };
            let key: BTreeSet<String> = members.iter().map(|(n, _)| n.clone()).collect();
            let entry = TypeDocs {
                doc: text(&ty.docs),
                members: members
                    .into_iter()
                    .filter_map(|(n, d)| d.map(|d| (n, d)))
                    .collect(),
            };
            docs.types.entry(key).or_insert(entry);
        }
        docs
    }

    /// The docs of function `name`, exported at the top level (`interface: None`) or from an
    /// interface.
    pub fn function(&self, interface: Option<&str>, name: &str) -> Option<&str> {
        interface
            .and_then(|i| self.functions.get(&format!("{i}/{name}")))
            .or_else(|| self.functions.get(name))
            .map(String::as_str)
    }

    /// The docs of the type whose fields or cases are `names`.
    pub fn of_type<'a>(&self, names: impl Iterator<Item = &'a str>) -> Option<&TypeDocs> {
        self.types
            .get(&names.map(str::to_string).collect::<BTreeSet<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_and_types_by_shape() {
        let wit = r#"
            package t:t;
            interface files {
                /// One entry.
                record entry {
                    /// Its name.
                    name: string,
                    size: u64,
                }
                /// How to write.
                enum mode { create, /// Add at the end.
                    append }
                /// List a directory.
                %list: func(path: string) -> list<entry>;
            }
            world w {
                export files;
                /// Top level.
                export run: func();
            }
        "#;
        let d = Docs::parse("t", Some(wit));
        assert_eq!(d.function(Some("files"), "list"), Some("List a directory."));
        assert_eq!(d.function(None, "run"), Some("Top level."));
        assert_eq!(d.function(None, "missing"), None);
        let entry = d.of_type(["size", "name"].into_iter()).unwrap();
        assert_eq!(
            (
                entry.doc.as_deref(),
                entry.members.get("name").map(String::as_str)
            ),
            (Some("One entry."), Some("Its name."))
        );
        let mode = d.of_type(["create", "append"].into_iter()).unwrap();
        assert_eq!(
            mode.members.get("append").map(String::as_str),
            Some("Add at the end.")
        );
        assert!(Docs::parse("t", Some("not wit")).functions.is_empty());
    }
}
