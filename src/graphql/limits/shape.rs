//! The schema's shape, from its SDL: each field's type and whether it is a list.

use super::*;

/// What the cost walk needs to know of one field: its named type and whether it is a list.
#[derive(Debug, Clone)]
pub(super) struct FieldShape {
    pub(super) ty: String,
    pub(super) list: bool,
}

/// Sizes of the schema's own lists, for introspection.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SchemaSizes {
    pub(super) types: u64,
    pub(super) directives: u64,
    pub(super) fields: u64,
    pub(super) input_fields: u64,
    pub(super) args: u64,
    pub(super) enum_values: u64,
    pub(super) interfaces: u64,
    pub(super) possible_types: u64,
}

/// Field types of every object type, taken from the SDL, plus the introspection types.
#[derive(Debug, Clone)]
pub struct Shape {
    pub(super) types: HashMap<String, HashMap<String, FieldShape>>,
    pub(super) roots: [String; 3],
    pub(super) sizes: SchemaSizes,
}

/// A field of an introspection type: name, named type, list or not.
pub(super) type IntrospectionField = (&'static str, &'static str, bool);

/// The introspection types' list and object fields (their scalars cost nothing).
pub(super) const INTROSPECTION: &[(&str, &[IntrospectionField])] = &[
    (
        "__Schema",
        &[
            ("types", "__Type", true),
            ("queryType", "__Type", false),
            ("mutationType", "__Type", false),
            ("subscriptionType", "__Type", false),
            ("directives", "__Directive", true),
        ],
    ),
    (
        "__Type",
        &[
            ("fields", "__Field", true),
            ("interfaces", "__Type", true),
            ("possibleTypes", "__Type", true),
            ("enumValues", "__EnumValue", true),
            ("inputFields", "__InputValue", true),
            ("ofType", "__Type", false),
        ],
    ),
    ("__Field", &[("args", "__InputValue", true), ("type", "__Type", false)]),
    ("__InputValue", &[("type", "__Type", false)]),
    ("__EnumValue", &[]),
    (
        "__Directive",
        &[
            ("args", "__InputValue", true),
            ("locations", "__DirectiveLocation", true),
        ],
    ),
];
/// Introspection and built-in types the SDL leaves out: 8 introspection types and 5 scalars.
pub(super) const UNLISTED_TYPES: u64 = 13;
/// `@include`, `@skip`, `@deprecated`, `@specifiedBy`, `@oneOf`, with one to spare.
pub(super) const BUILT_IN_DIRECTIVES: u64 = 6;
/// Fields of `__Type`, the introspection type with the most.
pub(super) const INTROSPECTION_FIELDS: u64 = 11;
/// Values of `__DirectiveLocation`, the largest built-in enum.
pub(super) const DIRECTIVE_LOCATIONS: u64 = 19;

pub(super) fn shape_of(ty: &Type) -> FieldShape {
    match &ty.base {
        BaseType::Named(n) => FieldShape {
            ty: n.to_string(),
            list: false,
        },
        BaseType::List(inner) => FieldShape {
            list: true,
            ..shape_of(inner)
        },
    }
}

impl Shape {
    /// The shape of this server's schema.
    pub fn of_schema() -> Self {
        Shape::from_sdl(&crate::graphql::sdl()).expect("the schema's own SDL parses")
    }

    pub(super) fn from_sdl(sdl: &str) -> Result<Self, async_graphql::parser::Error> {
        let doc = async_graphql::parser::parse_schema(sdl)?;
        let mut types: HashMap<String, HashMap<String, FieldShape>> = HashMap::new();
        let mut roots = ["Query".to_owned(), "Mutation".to_owned(), "Subscription".to_owned()];
        let mut sizes = SchemaSizes {
            types: UNLISTED_TYPES,
            directives: BUILT_IN_DIRECTIVES,
            fields: INTROSPECTION_FIELDS,
            enum_values: DIRECTIVE_LOCATIONS,
            args: 1,
            ..SchemaSizes::default()
        };
        let mut implementors: HashMap<String, u64> = HashMap::new();
        for def in &doc.definitions {
            match def {
                TypeSystemDefinition::Schema(s) => {
                    for (i, name) in [&s.node.query, &s.node.mutation, &s.node.subscription]
                        .into_iter()
                        .enumerate()
                    {
                        if let Some(n) = name {
                            roots[i] = n.node.to_string();
                        }
                    }
                }
                TypeSystemDefinition::Directive(d) => {
                    sizes.directives += 1;
                    sizes.args = sizes.args.max(d.node.arguments.len() as u64);
                }
                TypeSystemDefinition::Type(t) => {
                    sizes.types += 1;
                    let name = t.node.name.node.to_string();
                    let fields = match &t.node.kind {
                        TypeKind::Object(o) => {
                            sizes.interfaces = sizes.interfaces.max(o.implements.len() as u64);
                            for i in &o.implements {
                                *implementors.entry(i.node.to_string()).or_default() += 1;
                            }
                            &o.fields
                        }
                        TypeKind::Interface(i) => &i.fields,
                        TypeKind::Union(u) => {
                            sizes.possible_types = sizes.possible_types.max(u.members.len() as u64);
                            continue;
                        }
                        TypeKind::Enum(e) => {
                            sizes.enum_values = sizes.enum_values.max(e.values.len() as u64);
                            continue;
                        }
                        TypeKind::InputObject(i) => {
                            sizes.input_fields = sizes.input_fields.max(i.fields.len() as u64);
                            continue;
                        }
                        TypeKind::Scalar => continue,
                    };
                    sizes.fields = sizes.fields.max(fields.len() as u64);
                    let map = types.entry(name).or_default();
                    for f in fields {
                        sizes.args = sizes.args.max(f.node.arguments.len() as u64);
                        map.insert(f.node.name.node.to_string(), shape_of(&f.node.ty.node));
                    }
                }
            }
        }
        sizes.possible_types = sizes
            .possible_types
            .max(implementors.values().copied().max().unwrap_or(0));
        for (ty, fields) in INTROSPECTION {
            let map = types.entry((*ty).to_owned()).or_default();
            for (name, ty, list) in *fields {
                map.insert(
                    (*name).to_owned(),
                    FieldShape {
                        ty: (*ty).to_owned(),
                        list: *list,
                    },
                );
            }
        }
        let query = types.entry(roots[0].clone()).or_default();
        query.insert(
            "__schema".into(),
            FieldShape {
                ty: "__Schema".into(),
                list: false,
            },
        );
        query.insert(
            "__type".into(),
            FieldShape {
                ty: "__Type".into(),
                list: false,
            },
        );
        Ok(Shape { types, roots, sizes })
    }

    pub(super) fn field(&self, parent: &str, name: &str) -> Option<&FieldShape> {
        self.types.get(parent)?.get(name)
    }

    pub(super) fn is_object(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
    }
}
