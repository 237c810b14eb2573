//! The channel pattern language, parsed at compile time.
//!
//! A pattern is a list of segments separated by `/`:
//!
//! - a literal (`chats`, `rooms:lobby`; `:` is literal text when not first),
//! - `:name`, a parameter matching one segment,
//! - `*name`, a catch-all matching the rest of the name (only as the last segment),
//! - `prefix*` or `prefix*name`, a wildcard as Phoenix users write topics (`room:*`): the
//!   names that start with `prefix`, the rest (one character or more, `/` included) as the
//!   parameter `name`, or `*` when unnamed (only in the last segment).
//!
//! Names look like Rust identifiers: `[A-Za-z_][A-Za-z0-9_]*`.
//!
//! This module is pure: it knows nothing of spans or tokens, so it can be tested on its own.
//! The macro emits the pattern as written; the runtime translates it for its router.

use std::fmt;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Text matched as is.
    Literal(String),
    /// `:name`: exactly one segment of the channel name.
    Param(String),
    /// `*name`: the rest of the channel name (one or more segments).
    CatchAll(String),
    /// `prefix*name`: the names whose last part starts with `prefix`; the rest is the
    /// parameter `name` (`*` when unnamed).
    Wildcard {
        /// The literal text before the `*`.
        prefix: String,
        /// The parameter's name, when written.
        name: Option<String>,
    },
}

/// A valid pattern: at least one segment, every name valid and unique, a catch-all only last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
}

/// What is wrong with a pattern; several can be reported for one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// The pattern is `""`.
    Empty,
    /// The pattern starts with `/`.
    LeadingSlash,
    /// The pattern ends with `/`.
    TrailingSlash,
    /// Two or more `/` in a row; holds the text before them (`chats` for `chats//:id`).
    DoubleSlash {
        /// The pattern up to the first of the slashes.
        before: String,
    },
    /// `:` or `*` followed by something that is not a valid name (or nothing).
    InvalidName {
        /// The whole segment, sigil included.
        segment: String,
    },
    /// A name used by two segments.
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A catch-all followed by more segments.
    CatchAllNotLast {
        /// The catch-all segment, `*` included.
        segment: String,
    },
    /// A wildcard (`room:*`) followed by more segments.
    WildcardNotLast {
        /// The segment.
        segment: String,
    },
    /// More `:name` parameters than the router can hold.
    TooManyParams {
        /// How many there are.
        count: usize,
    },
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => f.write_str(
                "empty channel pattern: write segments separated by '/', like \"chats/:id\"",
            ),
            PatternError::LeadingSlash => f.write_str(
                "empty segment: the pattern starts with '/'; remove it, the leading '/' is implied",
            ),
            PatternError::TrailingSlash => {
                f.write_str("empty segment: the pattern ends with '/'; remove the trailing '/'")
            }
            PatternError::DoubleSlash { before } => write!(
                f,
                "empty segment after `{before}/`: separate segments with a single '/'"
            ),
            PatternError::InvalidName { segment } => {
                let (kind, sigil) = match segment.chars().next() {
                    Some('*') => ("catch-all", '*'),
                    _ => ("parameter", ':'),
                };
                if segment.len() == 1 {
                    write!(
                        f,
                        "{kind} segment `{segment}` has no name: write `{sigil}name`"
                    )
                } else {
                    write!(
                        f,
                        "invalid {kind} name in segment `{segment}`: a name starts with a letter \
                         or '_' and has only letters, digits and '_'"
                    )
                }
            }
            PatternError::DuplicateName { name } => write!(
                f,
                "duplicate parameter name `{name}`: each parameter needs its own name"
            ),
            PatternError::CatchAllNotLast { segment } => write!(
                f,
                "catch-all segment `{segment}` must be the last segment of the pattern"
            ),
            PatternError::WildcardNotLast { segment } => write!(
                f,
                "wildcard `{segment}` must be in the last segment of the pattern (like \"room:*\")"
            ),
            PatternError::TooManyParams { count } => write!(
                f,
                "{count} parameters: a pattern may have at most {MAX_PARAMS} `:name` parameters"
            ),
        }
    }
}

/// The most `:name` parameters a pattern may have (the router's own limit).
const MAX_PARAMS: usize = 25;

/// Whether `name` matches `[A-Za-z_][A-Za-z0-9_]*`.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Pattern {
    /// Parses a pattern, reporting every problem found (in pattern order).
    pub(crate) fn parse(source: &str) -> Result<Pattern, Vec<PatternError>> {
        if source.is_empty() {
            return Err(vec![PatternError::Empty]);
        }
        let raw: Vec<&str> = source.split('/').collect();
        let last = raw.len() - 1;
        let mut errors = Vec::new();
        let mut segments = Vec::with_capacity(raw.len());
        let mut offset = 0;
        for (index, &text) in raw.iter().enumerate() {
            let start = offset;
            offset += text.len() + 1;
            if text.is_empty() {
                // One error per run of slashes: skip empties that follow another empty.
                let follows_empty = index > 0 && raw[index - 1].is_empty();
                if index == 0 {
                    errors.push(PatternError::LeadingSlash);
                } else if follows_empty {
                    // Already reported with the segment before it.
                } else if index == last {
                    errors.push(PatternError::TrailingSlash);
                } else {
                    errors.push(PatternError::DoubleSlash {
                        before: source[..start - 1].to_owned(),
                    });
                }
                continue;
            }
            let segment = match (text.strip_prefix(':'), text.strip_prefix('*')) {
                (Some(name), _) if is_valid_name(name) => Segment::Param(name.to_owned()),
                (_, Some(name)) if is_valid_name(name) => Segment::CatchAll(name.to_owned()),
                (Some(_), _) | (_, Some(_)) => {
                    errors.push(PatternError::InvalidName {
                        segment: text.to_owned(),
                    });
                    continue;
                }
                (None, None) => match text.split_once('*') {
                    None => Segment::Literal(text.to_owned()),
                    Some((prefix, name)) => {
                        if index != last {
                            errors.push(PatternError::WildcardNotLast {
                                segment: text.to_owned(),
                            });
                            continue;
                        }
                        if !name.is_empty() && !is_valid_name(name) {
                            errors.push(PatternError::InvalidName {
                                segment: format!("*{name}"),
                            });
                            continue;
                        }
                        Segment::Wildcard {
                            prefix: prefix.to_owned(),
                            name: (!name.is_empty()).then(|| name.to_owned()),
                        }
                    }
                },
            };
            if let Segment::CatchAll(_) = segment
                && index != last
            {
                errors.push(PatternError::CatchAllNotLast {
                    segment: text.to_owned(),
                });
            }
            if let Some(name) = segment.name() {
                let taken = segments.iter().any(|s: &Segment| s.name() == Some(name));
                let reported = errors
                    .iter()
                    .any(|e| matches!(e, PatternError::DuplicateName { name: n } if n == name));
                if taken && !reported {
                    errors.push(PatternError::DuplicateName {
                        name: name.to_owned(),
                    });
                }
            }
            segments.push(segment);
        }
        let params = segments
            .iter()
            .filter(|s| matches!(s, Segment::Param(_)))
            .count();
        if params > MAX_PARAMS {
            errors.push(PatternError::TooManyParams { count: params });
        }
        if errors.is_empty() {
            Ok(Pattern { segments })
        } else {
            Err(errors)
        }
    }

    /// The segments, in order.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

impl Segment {
    /// The parameter's name, for `:name`, `*name` and a named wildcard.
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            Segment::Literal(_) | Segment::Wildcard { name: None, .. } => None,
            Segment::Param(name)
            | Segment::CatchAll(name)
            | Segment::Wildcard {
                name: Some(name), ..
            } => Some(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a pattern should parse to: its segments (rendered as below) and parameter names,
    /// or its error messages.
    enum Expected {
        Parses(&'static str, &'static [&'static str]),
        Fails(&'static [&'static str]),
    }
    use Expected::{Fails, Parses};

    const NAME_RULE: &str =
        "a name starts with a letter or '_' and has only letters, digits and '_'";

    fn cases() -> Vec<(&'static str, Expected)> {
        vec![
            // Valid patterns.
            ("chats", Parses("L(chats)", &[])),
            ("chats/lobby", Parses("L(chats) L(lobby)", &[])),
            ("chats/:id", Parses("L(chats) P(id)", &["id"])),
            (":id", Parses("P(id)", &["id"])),
            ("a/:x/b/:y", Parses("L(a) P(x) L(b) P(y)", &["x", "y"])),
            ("files/*path", Parses("L(files) C(path)", &["path"])),
            ("*all", Parses("C(all)", &["all"])),
            (
                "users/:id/*rest",
                Parses("L(users) P(id) C(rest)", &["id", "rest"]),
            ),
            ("room:lobby", Parses("L(room:lobby)", &[])),
            ("rooms:lobby", Parses("L(rooms:lobby)", &[])),
            ("room:*", Parses("W(room:,*)", &[])),
            ("challenges:*", Parses("W(challenges:,*)", &[])),
            ("room:*id", Parses("W(room:,id)", &["id"])),
            ("a/:x/room:*", Parses("L(a) P(x) W(room:,*)", &["x"])),
            ("c:d/b:*", Parses("L(c:d) W(b:,*)", &[])),
            ("x/:_", Parses("L(x) P(_)", &["_"])),
            ("x/:_a1/:B_2", Parses("L(x) P(_a1) P(B_2)", &["_a1", "B_2"])),
            ("{literal}", Parses("L({literal})", &[])),
            ("a}b{c/:id", Parses("L(a}b{c) P(id)", &["id"])),
            ("héllo/:id", Parses("L(héllo) P(id)", &["id"])),
            ("été/:id", Parses("L(été) P(id)", &["id"])),
            // Wildcards.
            (
                "room:*/x",
                Fails(&[
                    "wildcard `room:*` must be in the last segment of the pattern (like \"room:*\")",
                ]),
            ),
            (
                "a*b/c",
                Fails(&[
                    "wildcard `a*b` must be in the last segment of the pattern (like \"room:*\")",
                ]),
            ),
            (
                "room:*a-b",
                Fails(&[
                    "invalid catch-all name in segment `*a-b`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            (
                "room:**",
                Fails(&[
                    "invalid catch-all name in segment `**`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            (
                "a/:id/room:*id",
                Fails(&["duplicate parameter name `id`: each parameter needs its own name"]),
            ),
            // Empty pattern and empty segments.
            (
                "",
                Fails(&[
                    "empty channel pattern: write segments separated by '/', like \"chats/:id\"",
                ]),
            ),
            (
                "/chats",
                Fails(&[
                    "empty segment: the pattern starts with '/'; remove it, the leading '/' is implied",
                ]),
            ),
            (
                "chats/",
                Fails(&["empty segment: the pattern ends with '/'; remove the trailing '/'"]),
            ),
            (
                "chats//:id",
                Fails(&["empty segment after `chats/`: separate segments with a single '/'"]),
            ),
            (
                "a/b///c",
                Fails(&["empty segment after `a/b/`: separate segments with a single '/'"]),
            ),
            (
                "a//",
                Fails(&["empty segment after `a/`: separate segments with a single '/'"]),
            ),
            (
                "/",
                Fails(&[
                    "empty segment: the pattern starts with '/'; remove it, the leading '/' is implied",
                ]),
            ),
            (
                "/a/",
                Fails(&[
                    "empty segment: the pattern starts with '/'; remove it, the leading '/' is implied",
                    "empty segment: the pattern ends with '/'; remove the trailing '/'",
                ]),
            ),
            // Names.
            (
                ":",
                Fails(&["parameter segment `:` has no name: write `:name`"]),
            ),
            (
                "files/*",
                Fails(&["catch-all segment `*` has no name: write `*name`"]),
            ),
            (
                "a/:1x",
                Fails(&[
                    "invalid parameter name in segment `:1x`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            (
                "a/:a-b",
                Fails(&[
                    "invalid parameter name in segment `:a-b`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            (
                "a/*a.b",
                Fails(&[
                    "invalid catch-all name in segment `*a.b`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            (
                "a/::x",
                Fails(&[
                    "invalid parameter name in segment `::x`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            (
                "a/:é",
                Fails(&[
                    "invalid parameter name in segment `:é`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            (
                "a/:x y",
                Fails(&[
                    "invalid parameter name in segment `:x y`: a name starts with a letter or '_' and has only letters, digits and '_'",
                ]),
            ),
            // Duplicates, reported once per name.
            (
                "a/:id/b/:id",
                Fails(&["duplicate parameter name `id`: each parameter needs its own name"]),
            ),
            (
                "a/:id/:id/:id",
                Fails(&["duplicate parameter name `id`: each parameter needs its own name"]),
            ),
            (
                "a/:id/*id",
                Fails(&["duplicate parameter name `id`: each parameter needs its own name"]),
            ),
            // The router holds at most 25 parameters.
            (
                ":p0/:p1/:p2/:p3/:p4/:p5/:p6/:p7/:p8/:p9/:p10/:p11/:p12/:p13/:p14/:p15/:p16/:p17/:p18/:p19/:p20/:p21/:p22/:p23/:p24/:p25",
                Fails(&["26 parameters: a pattern may have at most 25 `:name` parameters"]),
            ),
            // Catch-all placement.
            (
                "files/*path/x",
                Fails(&["catch-all segment `*path` must be the last segment of the pattern"]),
            ),
            (
                "*a/*b",
                Fails(&["catch-all segment `*a` must be the last segment of the pattern"]),
            ),
            // Several problems at once, in pattern order.
            (
                "/:1//:a/:a/*r/",
                Fails(&[
                    "empty segment: the pattern starts with '/'; remove it, the leading '/' is implied",
                    "invalid parameter name in segment `:1`: a name starts with a letter or '_' and has only letters, digits and '_'",
                    "empty segment after `/:1/`: separate segments with a single '/'",
                    "duplicate parameter name `a`: each parameter needs its own name",
                    "catch-all segment `*r` must be the last segment of the pattern",
                    "empty segment: the pattern ends with '/'; remove the trailing '/'",
                ]),
            ),
        ]
    }

    /// The segments, one letter each: `L(text)`, `P(name)`, `C(name)`, `W(prefix,name)`.
    fn render(pattern: &Pattern) -> String {
        pattern
            .segments()
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => format!("L({text})"),
                Segment::Param(name) => format!("P({name})"),
                Segment::CatchAll(name) => format!("C({name})"),
                Segment::Wildcard { prefix, name } => {
                    format!("W({prefix},{})", name.as_deref().unwrap_or("*"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn params(pattern: &Pattern) -> Vec<&str> {
        pattern
            .segments()
            .iter()
            .filter_map(Segment::name)
            .collect()
    }

    #[test]
    fn table() {
        for (source, expected) in cases() {
            let parsed = Pattern::parse(source);
            match (expected, &parsed) {
                (Parses(segments, names), Ok(pattern)) => {
                    assert_eq!(render(pattern), segments, "segments of {source:?}");
                    assert_eq!(params(pattern), names, "params of {source:?}");
                }
                (Fails(messages), Err(errors)) => {
                    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    assert_eq!(got, messages, "errors of {source:?}");
                }
                (Parses(..), Err(errors)) => panic!("{source:?} should parse, got {errors:?}"),
                (Fails(..), Ok(pattern)) => panic!("{source:?} should fail, got {pattern:?}"),
            }
        }
    }

    #[test]
    fn name_messages_state_the_rule() {
        let errors = Pattern::parse(":1x").err().unwrap_or_default();
        assert!(errors.iter().all(|e| e.to_string().contains(NAME_RULE)));
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn segments_keep_the_written_text() {
        let pattern = Pattern::parse("room:lobby/:id/*rest").map_err(|e| format!("{e:?}"));
        assert_eq!(
            pattern.map(|p| p.segments().to_vec()),
            Ok(vec![
                Segment::Literal("room:lobby".into()),
                Segment::Param("id".into()),
                Segment::CatchAll("rest".into()),
            ])
        );
    }

    #[test]
    fn valid_names() {
        for name in ["a", "_", "_1", "Z9", "snake_case", "camelCase"] {
            assert!(is_valid_name(name), "{name}");
        }
        for name in ["", "1", "1a", "a-b", "a.b", "é", "a b", ":a"] {
            assert!(!is_valid_name(name), "{name}");
        }
    }
}
