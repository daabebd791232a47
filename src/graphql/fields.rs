//! The hot read types' scalar fields, each declared once.
//!
//! A scalar field of `Observation`, `ObservationVersion`, `Release` or `DimensionValue` is
//! one line of a [`read_type!`] block: its description, name, GraphQL type and the
//! expression that reads it. From that line come
//! - the async-graphql resolver (the expression, converted into the declared type);
//! - the fast path's writer (the same expression, written as JSON by [`FastJson`]), found by
//!   name when a plan is compiled, so a new field takes the fast path with no more code;
//! - the differential test's generator, which selects every field of the tables.
//!
//! Fields that are objects or need the request's context (`release`, `versions`, `proof`,
//! ...) are written out in the block's `objects` part; the fast path covers the ones it names
//! in its compiler, and `fields::tests` checks against the schema's SDL that every field of
//! these types is either a declared scalar or an object field one of the two lists names.

use std::io::Write as _;
use std::sync::Arc;

use async_graphql::ID;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::scalars::{Computed, Dec};
use super::types::ReleaseStatus;
use crate::domain::{self, Period};

/// A scalar field's writer for the fast path: `None` when the value cannot be written as
/// async-graphql would answer it (an overflowing difference is an error there).
pub(crate) type Writer<T> = fn(&T, &mut Vec<u8>) -> Option<()>;

/// One declared scalar field of a read type whose values are read from a `T`.
pub(crate) struct Scalar<T: 'static> {
    /// The Rust name; the GraphQL name is its camel case (see [`graphql_name`]).
    pub name: &'static str,
    pub write: Writer<T>,
}

impl<T> Scalar<T> {
    /// The declared field named `graphql` in a query, if any.
    pub fn find(table: &'static [Scalar<T>], graphql: &str) -> Option<&'static Scalar<T>> {
        table.iter().find(|s| is_camel_of(graphql, s.name))
    }
}

/// async-graphql's name for a resolver method: `published_at` → `publishedAt`.
#[cfg(test)]
pub(crate) fn graphql_name(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `graphql_name(snake) == name`, without building the name.
fn is_camel_of(name: &str, snake: &str) -> bool {
    let mut name = name.chars();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
            continue;
        }
        let want = if upper { c.to_ascii_uppercase() } else { c };
        upper = false;
        if name.next() != Some(want) {
            return false;
        }
    }
    name.next().is_none()
}

/// A value the fast path writes exactly as async-graphql serializes it.
pub(crate) trait FastJson {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()>;
}

/// Writes `s` as a JSON string, escaped as serde_json escapes it (control characters, `"`
/// and `\` only); most strings here need no escaping at all.
pub(crate) fn json_string(out: &mut Vec<u8>, s: &str) {
    if plain(s) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("a Vec takes every write");
    }
}

/// True when serde_json writes `s` as it is between quotes.
pub(crate) fn plain(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// A string by its `Display`, for values whose text needs no escaping (digits, periods,
/// UUIDs).
fn display(out: &mut Vec<u8>, d: impl std::fmt::Display) -> Option<()> {
    write!(out, "\"{d}\"").expect("a Vec takes every write");
    Some(())
}

macro_rules! number_json {
    ($($t:ty),*) => {$(
        impl FastJson for $t {
            fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
                write!(out, "{self}").expect("a Vec takes every write");
                Some(())
            }
        }
    )*};
}
number_json!(u64, u32, i32);

impl FastJson for bool {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
        Some(())
    }
}

impl FastJson for str {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        json_string(out, self);
        Some(())
    }
}

impl FastJson for String {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        self.as_str().write_json(out)
    }
}

impl FastJson for ID {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        self.as_str().write_json(out)
    }
}

impl FastJson for Dec {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        display(out, self.0)
    }
}

impl FastJson for Computed {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        display(out, self.0.as_ref().ok()?)
    }
}

impl FastJson for Period {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        display(out, self)
    }
}

impl FastJson for Uuid {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        display(out, self)
    }
}

impl FastJson for DateTime<Utc> {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        json_string(out, &self.to_rfc3339());
        Some(())
    }
}

impl FastJson for ReleaseStatus {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        out.extend_from_slice(match self {
            ReleaseStatus::Preliminary => b"\"PRELIMINARY\"",
            ReleaseStatus::Revised => b"\"REVISED\"",
            ReleaseStatus::Final => b"\"FINAL\"",
        });
        Some(())
    }
}

impl<T: FastJson> FastJson for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        match self {
            Some(v) => v.write_json(out),
            None => {
                out.extend_from_slice(b"null");
                Some(())
            }
        }
    }
}

impl<T: FastJson + ?Sized> FastJson for &T {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        (**self).write_json(out)
    }
}

/// Text borrowed from the projection: the fast path writes it without a copy, a resolver
/// answers it as a `String` or an `ID`.
pub(crate) struct Text<'a>(pub &'a str);

impl FastJson for Text<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        self.0.write_json(out)
    }
}

impl From<Text<'_>> for String {
    fn from(t: Text<'_>) -> Self {
        t.0.to_owned()
    }
}

impl From<Text<'_>> for ID {
    fn from(t: Text<'_>) -> Self {
        ID(t.0.to_owned())
    }
}

/// Optional text borrowed from the projection, answered as an `Option<String>`.
pub(crate) struct MaybeText<'a>(pub Option<&'a str>);

impl FastJson for MaybeText<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        self.0.write_json(out)
    }
}

impl From<MaybeText<'_>> for Option<String> {
    fn from(t: MaybeText<'_>) -> Self {
        t.0.map(str::to_owned)
    }
}

/// A series key in dot notation, as `Dataset::format_key` spells it; the fast path writes it
/// without building it.
pub(crate) struct KeyText<'a>(pub &'a domain::Dataset, pub &'a domain::SeriesKey);

impl FastJson for KeyText<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> Option<()> {
        let KeyText(def, key) = *self;
        let codes = || {
            def.dimensions
                .iter()
                .zip(key.codes())
                .map(|(d, c)| d.codes[c as usize].code.as_str())
        };
        if !codes().all(plain) {
            json_string(out, &def.format_key(key));
            return Some(());
        }
        out.push(b'"');
        for (i, code) in codes().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            out.extend_from_slice(code.as_bytes());
        }
        out.push(b'"');
        Some(())
    }
}

impl From<KeyText<'_>> for String {
    fn from(k: KeyText<'_>) -> Self {
        k.0.format_key(k.1)
    }
}

/// Declares a read type's resolvers and its table of scalar fields.
///
/// ```text
/// read_type! {
///     /// The type's description.
///     Type reads Source as |v| from |this| <expression giving &Source from this>;
///     scalars {
///         /// A field's description.
///         field_name: GraphQLType = <expression over v>,
///     }
///     objects {
///         /// Other fields, written out as async-graphql resolvers.
///         async fn other(&self, ctx: &Context<'_>) -> Result<Thing> { ... }
///     }
/// }
/// ```
/// gives `#[Object] impl Type` with every field, `Type::SCALARS: &[Scalar<Source>]` and
/// `Type::OBJECTS`, the names of the written-out fields.
macro_rules! read_type {
    (
        $(#[$type_meta:meta])*
        $ty:ident reads $src:ty as |$v:ident| from |$this:ident| $view:expr;
        scalars {
            $( $(#[$field_meta:meta])* $name:ident : $field_ty:ty = $read:expr ),* $(,)?
        }
        objects {
            $( $(#[$object_meta:meta])* async fn $object:ident ( $($params:tt)* ) -> $ret:ty $body:block )*
        }
    ) => {
        $(#[$type_meta])*
        #[async_graphql::Object]
        impl $ty {
            $(
                $(#[$field_meta])*
                async fn $name(&self) -> $field_ty {
                    let $this = self;
                    let $v: &$src = $view;
                    <$field_ty as ::std::convert::From<_>>::from($read)
                }
            )*
            $(
                $(#[$object_meta])*
                async fn $object($($params)*) -> $ret $body
            )*
        }

        impl $ty {
            /// The scalar fields, as the fast path writes them.
            pub(crate) const SCALARS: &'static [$crate::graphql::fields::Scalar<$src>] = &[$(
                $crate::graphql::fields::Scalar {
                    name: stringify!($name),
                    write: |$v: &$src, out: &mut Vec<u8>| $crate::graphql::fields::FastJson::write_json(&$read, out),
                }
            ),*];
            /// The fields written out as resolvers (Rust names).
            #[allow(dead_code)]
            pub(crate) const OBJECTS: &'static [&'static str] = &[$(stringify!($object)),*];
        }
    };
}
pub(crate) use read_type;

/// Shares a dataset definition between the values read from it.
pub(crate) type Def = Arc<domain::Dataset>;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    use super::*;
    use crate::graphql::types::{DimensionValue, Observation, ObservationVersion, Release};

    #[test]
    fn camel_case_is_async_graphqls() {
        for (snake, camel) in [
            ("value", "value"),
            ("published_at", "publishedAt"),
            ("revision_from_preliminary", "revisionFromPreliminary"),
            ("as_of_revision", "asOfRevision"),
        ] {
            assert_eq!(graphql_name(snake), camel);
            assert!(is_camel_of(camel, snake));
            assert!(!is_camel_of(&format!("{camel}x"), snake));
        }
        assert!(!is_camel_of("publishedat", "published_at"));
        assert!(!is_camel_of("published", "published_at"));
    }

    /// Strings are written exactly as serde_json (and so async-graphql) writes them.
    #[test]
    fn escapes_strings_as_serde_json_does() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "\u{7f}",
            "é 漢字 🙂",
            "</script>",
            "\u{2028}",
        ] {
            let mut out = Vec::new();
            json_string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    /// The fields of `ty` in the schema's SDL.
    fn sdl_fields(ty: &str) -> BTreeSet<String> {
        let doc = async_graphql::parser::parse_schema(crate::graphql::sdl()).expect("the SDL parses");
        for def in doc.definitions {
            if let TypeSystemDefinition::Type(t) = def {
                if t.node.name.node == ty {
                    let TypeKind::Object(o) = &t.node.kind else {
                        panic!("{ty} is not an object type");
                    };
                    return o.fields.iter().map(|f| f.node.name.node.to_string()).collect();
                }
            }
        }
        panic!("{ty} is not in the SDL");
    }

    /// The declarations are the schema: every field of each read type is a declared scalar
    /// or a written-out field, and nothing else is declared.
    #[test]
    fn declarations_match_the_sdl() {
        fn check<T>(ty: &str, scalars: &[Scalar<T>], objects: &[&str]) {
            let declared: BTreeSet<String> = scalars
                .iter()
                .map(|s| s.name)
                .chain(objects.iter().copied())
                .map(graphql_name)
                .collect();
            assert_eq!(
                declared.len(),
                scalars.len() + objects.len(),
                "{ty}: a field declared twice"
            );
            assert_eq!(declared, sdl_fields(ty), "{ty}: declarations against the SDL");
        }
        check("Observation", Observation::SCALARS, Observation::OBJECTS);
        check(
            "ObservationVersion",
            ObservationVersion::SCALARS,
            ObservationVersion::OBJECTS,
        );
        check("Release", Release::SCALARS, Release::OBJECTS);
        check("DimensionValue", DimensionValue::SCALARS, DimensionValue::OBJECTS);
    }
}
