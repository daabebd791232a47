//! The schema file (`schema/tradeledger.graphql`) printed the way graphql-js's `printSchema`
//! prints a schema, so that a diff of it reads well and tools that print the schema
//! (codegen, `get-graphql-schema`, GraphiQL) agree with the file.
//!
//! async-graphql's own SDL has the same definitions but runs arguments together with tabs
//! and leaves out `@specifiedBy`: it is parsed here and printed again. The rules follow
//! graphql-js 16 (`utilities/printSchema`, `language/blockString`, `language/printString`):
//! the root types have their usual names, so there is no `schema { ... }` block; built-in
//! directives and scalars are left out; arguments go on one line unless one of them has a
//! description; a description that fits on one line of at most 70 characters is printed as
//! `"""text"""`.

use std::fmt::Write as _;

use async_graphql::parser::types::{
    ConstDirective, FieldDefinition, InputValueDefinition, TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql::parser::Positioned;
use async_graphql::{SDLExportOptions, Value as ConstValue};

/// Scalars every GraphQL schema has, which `printSchema` leaves out.
const BUILT_IN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];

/// Prints the SDL async-graphql exports for a schema (`sdl_with_options` with
/// [`export_options`]) as graphql-js would.
pub fn print(registry_sdl: &str) -> Result<String, async_graphql::parser::Error> {
    let doc = async_graphql::parser::parse_schema(registry_sdl)?;
    let mut blocks = Vec::new();
    for def in &doc.definitions {
        match def {
            TypeSystemDefinition::Schema(s) => {
                let s = &s.node;
                let names = [
                    (&s.query, "query", "Query"),
                    (&s.mutation, "mutation", "Mutation"),
                    (&s.subscription, "subscription", "Subscription"),
                ];
                if names
                    .iter()
                    .any(|(name, _, usual)| name.as_ref().is_some_and(|n| n.node.as_str() != *usual))
                {
                    let mut out = String::from("schema {\n");
                    for (name, op, _) in names {
                        if let Some(n) = name {
                            let _ = writeln!(out, "  {op}: {}", n.node);
                        }
                    }
                    out.push('}');
                    blocks.push(out);
                }
            }
            // async-graphql lists only the built-in directives (`@include`, `@skip`,
            // `@specifiedBy`, ...), which `printSchema` leaves out.
            TypeSystemDefinition::Directive(_) => {}
            TypeSystemDefinition::Type(t) => {
                if let Some(block) = print_type(&t.node) {
                    blocks.push(block);
                }
            }
        }
    }
    let mut out = blocks.join("\n\n");
    out.push('\n');
    Ok(out)
}

/// What async-graphql must include for [`print`]: `@specifiedBy` on scalars.
pub fn export_options() -> SDLExportOptions {
    SDLExportOptions::new().include_specified_by()
}

fn print_type(t: &TypeDefinition) -> Option<String> {
    let name = t.name.node.as_str();
    if name.starts_with("__") {
        return None;
    }
    let mut out = description(t.description.as_ref(), "", true);
    match &t.kind {
        TypeKind::Scalar => {
            if BUILT_IN_SCALARS.contains(&name) {
                return None;
            }
            let _ = write!(out, "scalar {name}{}", directives(&t.directives));
        }
        TypeKind::Object(o) => {
            let _ = write!(out, "type {name}{}", implements(&o.implements));
            out.push_str(&block(o.fields.iter().enumerate().map(|(i, f)| field(&f.node, i == 0))));
        }
        TypeKind::Interface(o) => {
            let _ = write!(out, "interface {name}{}", implements(&o.implements));
            out.push_str(&block(o.fields.iter().enumerate().map(|(i, f)| field(&f.node, i == 0))));
        }
        TypeKind::Union(u) => {
            let _ = write!(out, "union {name}");
            if !u.members.is_empty() {
                let members: Vec<&str> = u.members.iter().map(|m| m.node.as_str()).collect();
                let _ = write!(out, " = {}", members.join(" | "));
            }
        }
        TypeKind::Enum(e) => {
            let _ = write!(out, "enum {name}");
            out.push_str(&block(e.values.iter().enumerate().map(|(i, v)| {
                let v = &v.node;
                format!(
                    "{}  {}{}",
                    description(v.description.as_ref(), "  ", i == 0),
                    v.value.node,
                    directives(&v.directives)
                )
            })));
        }
        TypeKind::InputObject(o) => {
            // `@oneOf` is the only directive graphql-js prints on an input type.
            let one_of = t.directives.iter().any(|d| d.node.name.node.as_str() == "oneOf");
            let _ = write!(out, "input {name}{}", if one_of { " @oneOf" } else { "" });
            out.push_str(&block(o.fields.iter().enumerate().map(|(i, f)| {
                format!(
                    "{}  {}",
                    description(f.node.description.as_ref(), "  ", i == 0),
                    input_value(&f.node)
                )
            })));
        }
    }
    Some(out)
}

fn implements(names: &[Positioned<async_graphql::Name>]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = names.iter().map(|n| n.node.as_str()).collect();
    format!(" implements {}", names.join(" & "))
}

fn block(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        String::new()
    } else {
        format!(" {{\n{}\n}}", items.join("\n"))
    }
}

fn field(f: &FieldDefinition, first: bool) -> String {
    format!(
        "{}  {}{}: {}{}",
        description(f.description.as_ref(), "  ", first),
        f.name.node,
        arguments(&f.arguments, "  "),
        f.ty.node,
        directives(&f.directives)
    )
}

/// Arguments on one line when none has a description, otherwise one per line.
fn arguments(args: &[Positioned<InputValueDefinition>], indent: &str) -> String {
    if args.is_empty() {
        return String::new();
    }
    if args.iter().all(|a| a.node.description.is_none()) {
        let args: Vec<String> = args.iter().map(|a| input_value(&a.node)).collect();
        return format!("({})", args.join(", "));
    }
    let inner = format!("  {indent}");
    let args: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "{}{inner}{}",
                description(a.node.description.as_ref(), &inner, i == 0),
                input_value(&a.node)
            )
        })
        .collect();
    format!("(\n{}\n{indent})", args.join("\n"))
}

fn input_value(v: &InputValueDefinition) -> String {
    let mut out = format!("{}: {}", v.name.node, v.ty.node);
    if let Some(default) = &v.default_value {
        let _ = write!(out, " = {}", value(&default.node));
    }
    out.push_str(&directives(&v.directives));
    out
}

/// The directives graphql-js prints on a definition: `@deprecated` and `@specifiedBy`.
fn directives(list: &[Positioned<ConstDirective>]) -> String {
    let mut out = String::new();
    for d in list {
        let d = &d.node;
        let name = d.name.node.as_str();
        let arg = |n: &str| {
            d.arguments
                .iter()
                .find(|(k, _)| k.node.as_str() == n)
                .map(|(_, v)| &v.node)
        };
        match name {
            "deprecated" => match arg("reason") {
                Some(ConstValue::String(r)) if r != "No longer supported" => {
                    let _ = write!(out, " @deprecated(reason: {})", string(r));
                }
                _ => out.push_str(" @deprecated"),
            },
            "specifiedBy" => {
                if let Some(ConstValue::String(url)) = arg("url") {
                    let _ = write!(out, " @specifiedBy(url: {})", string(url));
                }
            }
            _ => {}
        }
    }
    out
}

/// A default value as graphql-js's `print` writes it.
fn value(v: &ConstValue) -> String {
    match v {
        ConstValue::Null => "null".into(),
        ConstValue::Number(n) => n.to_string(),
        ConstValue::String(s) => string(s),
        ConstValue::Boolean(b) => b.to_string(),
        ConstValue::Binary(b) => string(&String::from_utf8_lossy(b)),
        ConstValue::Enum(e) => e.to_string(),
        ConstValue::List(items) => {
            let items: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", items.join(", "))
        }
        ConstValue::Object(fields) => {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {}", value(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// A string literal, escaped as graphql-js's `printString` does.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// graphql-js's `printDescription`: the description as a block string (or a plain string
/// when a block string cannot hold it), each line indented, then a line break.
fn description(d: Option<&Positioned<String>>, indent: &str, first_in_block: bool) -> String {
    let Some(d) = d else {
        return String::new();
    };
    let text = &d.node;
    let literal = if printable_as_block_string(text) {
        block_string(text)
    } else {
        string(text)
    };
    let prefix = if !indent.is_empty() && !first_in_block {
        format!("\n{indent}")
    } else {
        indent.to_owned()
    };
    format!("{prefix}{}\n", literal.replace('\n', &format!("\n{indent}")))
}

fn is_white_space(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t'))
}

/// graphql-js's `printBlockString`.
fn block_string(value: &str) -> String {
    let escaped = value.replace("\"\"\"", "\\\"\"\"");
    let lines: Vec<&str> = escaped.split('\n').collect();
    let single_line = lines.len() == 1;
    let force_leading_newline = lines.len() > 1
        && lines[1..]
            .iter()
            .all(|l| l.is_empty() || is_white_space(l.chars().next()));
    let trailing_triple_quotes = escaped.ends_with("\\\"\"\"");
    let trailing_quote = value.ends_with('"') && !trailing_triple_quotes;
    let trailing_slash = value.ends_with('\\');
    let force_trailing_newline = trailing_quote || trailing_slash;
    let multiple_lines = !single_line
        || value.encode_utf16().count() > 70
        || force_trailing_newline
        || force_leading_newline
        || trailing_triple_quotes;
    let skip_leading_newline = single_line && is_white_space(value.chars().next());
    let mut out = String::from("\"\"\"");
    if (multiple_lines && !skip_leading_newline) || force_leading_newline {
        out.push('\n');
    }
    out.push_str(&escaped);
    if multiple_lines || force_trailing_newline {
        out.push('\n');
    }
    out.push_str("\"\"\"");
    out
}

/// graphql-js's `isPrintableAsBlockString`.
fn printable_as_block_string(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let mut empty_line = true;
    let mut has_indent = false;
    let mut common_indent = true;
    let mut seen_non_empty_line = false;
    for c in value.chars() {
        match c {
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}' | '\u{f}' | '\r' => return false,
            '\n' => {
                if empty_line && !seen_non_empty_line {
                    return false;
                }
                seen_non_empty_line = true;
                empty_line = true;
                has_indent = false;
            }
            ' ' | '\t' => has_indent = has_indent || empty_line,
            _ => {
                common_indent = common_indent && has_indent;
                empty_line = false;
            }
        }
    }
    !(empty_line || common_indent && seen_non_empty_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_follow_graphql_js() {
        assert_eq!(block_string("short"), "\"\"\"short\"\"\"");
        assert_eq!(block_string("two\nlines"), "\"\"\"\ntwo\nlines\n\"\"\"");
        assert_eq!(
            block_string(&"x".repeat(71)),
            format!("\"\"\"\n{}\n\"\"\"", "x".repeat(71))
        );
        assert_eq!(block_string("ends with \""), "\"\"\"\nends with \"\n\"\"\"");
        assert!(!printable_as_block_string("\nleading"));
        assert!(!printable_as_block_string("trailing\n"));
        assert_eq!(string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }

    #[test]
    fn arguments_go_on_separate_lines_only_with_a_description() {
        let sdl = r#"
            type Query {
                a(x: Int, y: String = "BAL"): Int
                b("""The x.""" x: Int, y: [String!] = ["A", "B"]): Int
            }
            scalar When @specifiedBy(url: "https://example.org/when")
        "#;
        let printed = print(sdl).unwrap();
        assert_eq!(
            printed,
            "type Query {\n  a(x: Int, y: String = \"BAL\"): Int\n  b(\n    \"\"\"The x.\"\"\"\n    x: Int\n    y: [String!] = [\"A\", \"B\"]\n  ): Int\n}\n\n\
             scalar When @specifiedBy(url: \"https://example.org/when\")\n"
        );
    }
}
