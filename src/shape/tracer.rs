//! The tracer: the state kept across passes over one type, the pass loop, and the
//! rendering of what was traced as shape text.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeOwned};

use self::deserializer::De;
use super::StructFields;

mod deserializer;

/// At most this many passes over one type (each explores at least one new enum
/// variant or cuts one more recursion).
const MAX_PASSES: usize = 4096;
/// At most this many structs and enums visited in one pass.
const MAX_STEPS: usize = 100_000;
/// At most this deep a nesting of values.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Unknown,
    Prim(&'static str),
    Option(Box<Node>),
    Seq(Box<Node>),
    Map(Box<Node>, Box<Node>),
    Tuple(Vec<Node>),
    Named(usize),
}

#[derive(Debug, Clone)]
enum Body {
    Unknown,
    Unit,
    Newtype(Node),
    Tuple(Vec<Node>),
    Struct(Vec<(&'static str, Node)>),
    Enum(Vec<Variant>),
}

#[derive(Debug, Clone)]
struct Variant {
    name: &'static str,
    shape: Option<Body>,
    deferred: bool,
}

struct Container {
    name: &'static str,
    body: Body,
}

#[derive(Debug)]
pub(super) enum TraceError {
    /// The container with this index recursed with no way to end the value.
    Recursive(usize),
    /// The pass learned something (a recursion to cut); start the next one.
    Retry,
    Unsupported(&'static str),
    Custom(String),
    TooDeep,
    TooLong,
    Panicked,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Recursive(_) => f.write_str("a type that contains itself with no end"),
            TraceError::Retry => f.write_str("retry"),
            TraceError::Unsupported(what) => write!(f, "its Deserialize calls {what}"),
            TraceError::Custom(msg) => write!(f, "its Deserialize refused a default value: {msg}"),
            TraceError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH}"),
            TraceError::TooLong => f.write_str("too many types or variants to trace"),
            TraceError::Panicked => f.write_str("its Deserialize panicked"),
        }
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError::Custom(msg.to_string())
    }
}

#[derive(Default)]
struct Tracer {
    keys: HashMap<&'static str, usize>,
    containers: Vec<Container>,
    /// Containers being deserialized, innermost last.
    stack: Vec<usize>,
    /// Options, sequences and maps (by their Rust type) to leave empty because their
    /// content recursed, with the content's shape.
    empty: HashMap<&'static str, Node>,
    depth: usize,
    steps: usize,
    /// Whether this pass learned anything.
    changed: bool,
    /// Whether this pass completed a variant.
    completed: bool,
}

type Result<T, E = TraceError> = std::result::Result<T, E>;

/// Traces `T`, keeping the value each successful pass made in `samples`.
pub(super) fn trace<T: DeserializeOwned>(
    mut samples: Option<&mut Vec<T>>,
) -> Result<(String, Box<[StructFields]>), TraceError> {
    let mut tracer = Tracer::default();
    for _ in 0..MAX_PASSES {
        tracer.changed = false;
        tracer.completed = false;
        tracer.steps = 0;
        tracer.depth = 0;
        tracer.stack.clear();
        let mut root = Node::Unknown;
        let outcome = T::deserialize(De {
            t: &mut tracer,
            out: &mut root,
        });
        if tracer.completed {
            // A new variant may end a value that a deferred one needs.
            for c in &mut tracer.containers {
                if let Body::Enum(variants) = &mut c.body {
                    variants.iter_mut().for_each(|v| v.deferred = false);
                }
            }
        }
        let outcome = outcome.map(|value| {
            if let Some(samples) = samples.as_deref_mut() {
                samples.push(value);
            }
        });
        match outcome {
            Ok(()) if tracer.all_variants_seen() => {
                return Ok((tracer.render(&root), tracer.struct_fields()));
            }
            Ok(()) | Err(TraceError::Retry) => {}
            Err(TraceError::Recursive(_)) if tracer.changed => {}
            Err(err) => return Err(err),
        }
        if !tracer.changed {
            return Err(TraceError::Recursive(0));
        }
    }
    Err(TraceError::TooLong)
}

impl Tracer {
    /// The field count of every struct, tuple struct, struct variant and tuple
    /// variant seen.
    fn struct_fields(&self) -> Box<[StructFields]> {
        let mut out = Vec::new();
        for c in &self.containers {
            match &c.body {
                Body::Struct(fields) => out.push(StructFields {
                    name: c.name,
                    variant: "",
                    len: fields.len(),
                }),
                Body::Tuple(items) => out.push(StructFields {
                    name: c.name,
                    variant: "",
                    len: items.len(),
                }),
                Body::Enum(variants) => {
                    for v in variants {
                        let len = match &v.shape {
                            Some(Body::Struct(fields)) => fields.len(),
                            Some(Body::Tuple(items)) => items.len(),
                            _ => continue,
                        };
                        out.push(StructFields {
                            name: c.name,
                            variant: v.name,
                            len,
                        });
                    }
                }
                _ => {}
            }
        }
        out.into()
    }

    fn all_variants_seen(&self) -> bool {
        self.containers.iter().all(|c| match &c.body {
            Body::Enum(variants) => variants.iter().all(|v| v.shape.is_some()),
            _ => true,
        })
    }

    /// Records the body of container `index` seen in this pass: always when the
    /// visit completed; when it recursed, only if nothing better is known (later
    /// passes may cut the recursion before the container is visited again).
    fn record(&mut self, index: usize, complete: bool, body: Body) {
        let slot = &mut self.containers[index].body;
        if complete || matches!(slot, Body::Unknown) {
            *slot = body;
        }
    }

    /// Registers a visit of the container `key` named `name`.
    fn enter(&mut self, key: &'static str, name: &'static str) -> Result<usize> {
        self.steps += 1;
        if self.steps > MAX_STEPS || self.containers.len() > MAX_STEPS {
            return Err(TraceError::TooLong);
        }
        let next = self.containers.len();
        let index = *self.keys.entry(key).or_insert(next);
        if index == next {
            self.containers.push(Container {
                name,
                body: Body::Unknown,
            });
        }
        Ok(index)
    }

    fn render(&self, root: &Node) -> String {
        let mut out = String::new();
        let mut seen = vec![false; self.containers.len()];
        self.render_node(root, &mut seen, &mut out);
        out
    }

    fn render_node(&self, node: &Node, seen: &mut [bool], out: &mut String) {
        match node {
            Node::Unknown => out.push('?'),
            Node::Prim(p) => out.push_str(p),
            Node::Option(inner) => {
                out.push_str("Option<");
                self.render_node(inner, seen, out);
                out.push('>');
            }
            Node::Seq(inner) => {
                out.push_str("Seq<");
                self.render_node(inner, seen, out);
                out.push('>');
            }
            Node::Map(k, v) => {
                out.push_str("Map<");
                self.render_node(k, seen, out);
                out.push_str(", ");
                self.render_node(v, seen, out);
                out.push('>');
            }
            Node::Tuple(items) => {
                self.render_list(items, seen, out);
                if items.len() == 1 {
                    out.insert(out.len() - 1, ',');
                }
            }
            Node::Named(i) => {
                let c = &self.containers[*i];
                if seen[*i] {
                    out.push_str(c.name);
                    return;
                }
                seen[*i] = true;
                let keyword = if matches!(c.body, Body::Enum(_)) {
                    "enum "
                } else {
                    "struct "
                };
                out.push_str(keyword);
                out.push_str(c.name);
                self.render_body(&c.body, seen, out);
            }
        }
    }

    fn render_list(&self, items: &[Node], seen: &mut [bool], out: &mut String) {
        out.push('(');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.render_node(item, seen, out);
        }
        out.push(')');
    }

    fn render_fields(&self, fields: &[(&'static str, Node)], seen: &mut [bool], out: &mut String) {
        out.push_str(" {");
        for (i, (name, node)) in fields.iter().enumerate() {
            out.push_str(if i > 0 { ", " } else { " " });
            let _ = write!(out, "{name}: ");
            self.render_node(node, seen, out);
        }
        out.push_str(" }");
    }

    fn render_body(&self, body: &Body, seen: &mut [bool], out: &mut String) {
        match body {
            Body::Unknown => out.push_str(" ?"),
            Body::Unit => {}
            Body::Newtype(inner) => self.render_list(std::slice::from_ref(inner), seen, out),
            Body::Tuple(items) => self.render_list(items, seen, out),
            Body::Struct(fields) => self.render_fields(fields, seen, out),
            Body::Enum(variants) => {
                out.push_str(" {");
                for (i, v) in variants.iter().enumerate() {
                    out.push_str(if i > 0 { ", " } else { " " });
                    out.push_str(v.name);
                    match &v.shape {
                        Some(shape) => self.render_body(shape, seen, out),
                        None => out.push_str(" ?"),
                    }
                }
                out.push_str(" }");
            }
        }
    }
}
