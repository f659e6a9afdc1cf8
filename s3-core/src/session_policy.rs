//! [`SessionPolicy`]: the IAM policy document an STS caller passes to narrow its session.
//!
//! `AssumeRoleWithWebIdentity` takes an optional `Policy`: an IAM policy document that can
//! only take away from what the role allows. A request of such a session must be allowed by
//! the gateway's policy engine **and** by this policy; the policy is parsed once, when the
//! session's credentials are issued or resolved, into a small statement model evaluated per
//! resource without allocating per statement.
//!
//! The subset evaluated is what S3 session policies use, and anything outside it is refused
//! at parse time with a message naming the problem rather than ignored (an ignored `Deny` or
//! condition would widen the session):
//!
//! - `Version` (`2012-10-17` or `2008-10-17`, optional), `Id`, `Statement` (one object or an
//!   array);
//! - per statement: `Sid`, `Effect` (`Allow` | `Deny`), `Action` or `NotAction`, `Resource`
//!   or `NotResource`, `Condition`. `Principal`/`NotPrincipal` are refused: a session policy
//!   has none;
//! - actions match case-insensitively, resources case-sensitively, both with IAM's `*` (any
//!   run of characters, `/` included) and `?` (one character);
//! - conditions: `StringEquals`, `StringNotEquals`, `StringLike`, `StringNotLike` and their
//!   `...IfExists` forms, on `s3:prefix` and `s3:delimiter` (the `prefix` and `delimiter`
//!   query parameters of an object listing; absent for every other request). Policy
//!   variables (`${aws:username}`) are refused.
//!
//! Evaluation is IAM's: a matching `Deny` wins, otherwise some `Allow` must match, otherwise
//! the request is denied.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use crate::request::{Resource, ResourceAccess, S3Request};

/// Why a session policy document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionPolicyError {
    /// Not a policy document this gateway evaluates; the message names the problem and the
    /// statement (`Statement[1]: ...`).
    #[error("{0}")]
    Malformed(String),
    /// Longer than [`SessionPolicy::MAX_PACKED_LEN`] once whitespace outside strings is
    /// removed; the value is the percentage of the allowed size used, rounded up (so a
    /// refused policy never reports 100%).
    #[error("the packed policy uses {0}% of the allowed size")]
    TooLarge(usize),
}

/// A parsed session policy. A request of a session that has one must be allowed by the
/// policy engine **and** by this policy.
///
/// ```
/// use s3_core::SessionPolicy;
///
/// let policy = SessionPolicy::parse(
///     r#"{"Version": "2012-10-17", "Statement": [{
///         "Effect": "Allow", "Action": "s3:GetObject",
///         "Resource": "arn:aws:s3:::data/home/alice/*"}]}"#,
/// )?;
/// # let _ = policy;
/// # Ok::<(), s3_core::SessionPolicyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    source: String,
    statements: Vec<Statement>,
}

impl fmt::Debug for SessionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionPolicy").field(&self.source).finish()
    }
}

/// The service resource (`ListAllMyBuckets`, whose [`Resource::arn`] is `*`) has no ARN of
/// its own: only a resource pattern of exactly `*` or this one names it. Any other pattern,
/// wildcards included (`arn:aws:s3:::?`, `arn:aws:s3:::*?`), names buckets or objects and
/// does not match it.
const SERVICE_ARN: &str = "arn:aws:s3:::*";

impl SessionPolicy {
    /// The most characters a packed (minified) session policy may have, as in AWS STS.
    pub const MAX_PACKED_LEN: usize = 2048;

    /// The most bytes a document may have before packing: whitespace is free under
    /// [`SessionPolicy::MAX_PACKED_LEN`], but not without bound.
    pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;

    /// Parses a policy document.
    ///
    /// Refuses with [`SessionPolicyError::TooLarge`] a document over
    /// [`SessionPolicy::MAX_PACKED_LEN`] packed characters, and with
    /// [`SessionPolicyError::Malformed`] anything else this gateway would not evaluate
    /// exactly: invalid JSON (nesting deeper than 128 levels included), duplicate fields,
    /// unknown fields, `Principal`, unknown condition operators or keys, policy variables.
    pub fn parse(document: &str) -> Result<Self, SessionPolicyError> {
        if document.len() > Self::MAX_DOCUMENT_LEN {
            return Err(malformed(format!(
                "the policy document is longer than {} bytes",
                Self::MAX_DOCUMENT_LEN
            )));
        }
        let packed = packed_len(document);
        if packed > Self::MAX_PACKED_LEN {
            return Err(SessionPolicyError::TooLarge(
                (packed * 100).div_ceil(Self::MAX_PACKED_LEN),
            ));
        }
        let json: Json = serde_json::from_str(document).map_err(|e| {
            malformed(if e.classify() == serde_json::error::Category::Data {
                e.to_string()
            } else {
                format!("not JSON: {e}")
            })
        })?;
        Ok(Self {
            source: document.to_owned(),
            statements: parse_document(json)?,
        })
    }

    /// The document as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the policy allows `access`, one resource of `request`: its `iam_action` on
    /// [`Resource::arn`].
    ///
    /// [`Resource::ObjectsInBody`] (`DeleteObjects`) is never allowed here: its keys are only
    /// known once the body is read, and each must be decided with
    /// [`SessionPolicy::allows_arn`] (`s3:DeleteObject` or `s3:DeleteObjectVersion` on
    /// `arn:aws:s3:::bucket/key`).
    pub fn allows(&self, access: &ResourceAccess, request: &S3Request) -> bool {
        match &access.resource {
            Resource::ObjectsInBody { .. } => false,
            resource => self.allows_arn(access.iam_action, &resource.arn(), request),
        }
    }

    /// Whether the policy allows `iam_action` (`s3:GetObject`...) on the resource `arn`
    /// (`arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket`, or `*` for the service) for
    /// `request`, which supplies the condition keys. For resources that are not a
    /// [`ResourceAccess`] of the request, such as each key of a `DeleteObjects` body.
    pub fn allows_arn(&self, iam_action: &str, arn: &str, request: &S3Request) -> bool {
        let target = if arn == "*" {
            Target::Service
        } else {
            Target::Arn(arn)
        };
        let context = ConditionContext::of(request);
        let mut allowed = false;
        for statement in &self.statements {
            if allowed && statement.effect == Effect::Allow {
                continue;
            }
            if statement.applies(iam_action, target, &context) {
                match statement.effect {
                    Effect::Deny => return false,
                    Effect::Allow => allowed = true,
                }
            }
        }
        allowed
    }
}

fn malformed(message: impl Into<String>) -> SessionPolicyError {
    SessionPolicyError::Malformed(message.into())
}

/// The characters of `document` without the JSON whitespace outside strings: the size AWS
/// limits. Counts any text, JSON or not.
fn packed_len(document: &str) -> usize {
    let (mut count, mut in_string, mut escaped) = (0, false, false);
    for c in document.chars() {
        if in_string {
            count += 1;
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            count += 1;
            in_string = c == '"';
        }
    }
    count
}

// ---------------------------------------------------------------------------------------------
// The statement model and its evaluation
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: patterns, and whether the statement
/// applies to what they match (`false`) or to everything else (`true`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patterns {
    negated: bool,
    /// Action patterns are stored lower-case and matched case-insensitively.
    patterns: Vec<Pattern>,
}

impl Patterns {
    fn applies(&self, text: &str, fold_case: bool) -> bool {
        let matched = self.patterns.iter().any(|p| p.matches(text, fold_case));
        matched != self.negated
    }

    /// Resource patterns on a [`Target`]: the service resource is named by `*` and
    /// [`SERVICE_ARN`] only.
    fn applies_to(&self, target: Target<'_>) -> bool {
        match target {
            Target::Arn(arn) => self.applies(arn, false),
            Target::Service => {
                let matched = self
                    .patterns
                    .iter()
                    .any(|p| *p.text == *"*" || *p.text == *SERVICE_ARN);
                matched != self.negated
            }
        }
    }
}

/// What a resource pattern is matched against.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// The service resource (`ListAllMyBuckets`).
    Service,
    /// A bucket's or an object's ARN.
    Arn(&'a str),
}

/// A wildcard pattern, with the automaton of a case-sensitive pattern that has both `?` and
/// `*` (see [`Nfa`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: Box<str>,
    nfa: Option<Nfa>,
}

impl Pattern {
    /// A pattern matched by [`wildcard_match`] (folding case) or, case-sensitive with `?`
    /// and `*`, by its automaton: backtracking would cost up to |pattern| steps per
    /// character of the text, the automaton one pass over its words.
    fn new(text: String, fold_case: bool) -> Self {
        let automaton = !fold_case && text.contains('?') && text.contains('*');
        Self {
            nfa: automaton.then(|| Nfa::new(&text)).flatten(),
            text: text.into_boxed_str(),
        }
    }

    /// A `StringEquals` value: compared, never matched.
    fn literal(text: String) -> Self {
        Self {
            text: text.into_boxed_str(),
            nfa: None,
        }
    }

    fn matches(&self, text: &str, fold_case: bool) -> bool {
        match &self.nfa {
            Some(nfa) => ends_match(&self.text, text) && nfa.matches(text),
            None => wildcard_match(&self.text, text, fold_case),
        }
    }
}

/// Whether the part of a case-sensitive `pattern` before its first `*` matches the start
/// of `text` and the part after its last `*` the end, `?` being any one character: a
/// necessary condition for a match, checked in O(|pattern|) before the automaton's pass over
/// the whole text. (A pattern without `*` is these two parts at once.)
fn ends_match(pattern: &str, text: &str) -> bool {
    let (Some((head, _)), Some((_, tail))) = (pattern.split_once('*'), pattern.rsplit_once('*'))
    else {
        return wildcard_match(pattern, text, false);
    };
    let same = |p: char, t: char| p == '?' || p == t;
    let mut forward = text.chars();
    let head_ok = head
        .chars()
        .all(|p| forward.next().is_some_and(|t| same(p, t)));
    let mut backward = text.chars().rev();
    head_ok
        && tail
            .chars()
            .rev()
            .all(|p| backward.next().is_some_and(|t| same(p, t)))
}

/// The most 64-bit words of automaton states: a pattern has at most
/// [`SessionPolicy::MAX_PACKED_LEN`] characters, so at most 2,049 states.
const NFA_WORDS: usize = SessionPolicy::MAX_PACKED_LEN / 64 + 1;

/// A wildcard pattern as a bit-parallel automaton: state `i` means "the first `i`
/// non-`*` characters of the pattern matched", a `*` is a self-loop on the state it follows.
/// Each character of the text costs one pass over (states / 64) words, so a match is
/// O(|text| × |pattern| / 64) whatever the pattern, where backtracking is O(|text| ×
/// |pattern|) for patterns written to defeat it. Matching does not allocate: the state sets
/// are arrays of [`NFA_WORDS`] words on the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Nfa {
    /// Index of the accepting state (the number of non-`*` pattern characters).
    accept: usize,
    /// States with a `*` self-loop.
    star: Box<[u64]>,
    /// States entered on any character (`?`).
    any: Box<[u64]>,
    /// For each ASCII character, the index in `literal` of its states plus one (0: none).
    ascii: [u8; 128],
    /// States entered on each literal character, sorted by character.
    literal: Vec<(char, Box<[u64]>)>,
}

impl Nfa {
    /// `None` for a pattern of more states than [`NFA_WORDS`] hold (not one a policy within
    /// [`SessionPolicy::MAX_PACKED_LEN`] can have) or of more than 255 distinct ASCII
    /// characters (none): it is matched by backtracking.
    fn new(pattern: &str) -> Option<Self> {
        let accept = pattern.chars().filter(|&c| c != '*').count();
        let words = accept / 64 + 1;
        if words > NFA_WORDS {
            return None;
        }
        let empty = || vec![0_u64; words].into_boxed_slice();
        let set = |bits: &mut [u64], state: usize| bits[state / 64] |= 1 << (state % 64);
        let (mut star, mut any) = (empty(), empty());
        let mut literal: Vec<(char, Box<[u64]>)> = Vec::new();
        let mut state = 0;
        for c in pattern.chars() {
            match c {
                '*' => set(&mut star, state),
                '?' => {
                    state += 1;
                    set(&mut any, state);
                }
                c => {
                    state += 1;
                    let index = match literal.binary_search_by_key(&c, |(k, _)| *k) {
                        Ok(index) => index,
                        Err(index) => {
                            literal.insert(index, (c, empty()));
                            index
                        }
                    };
                    set(&mut literal[index].1, state);
                }
            }
        }
        let mut ascii = [0_u8; 128];
        for (index, (c, _)) in literal.iter().enumerate() {
            if let Some(slot) = ascii.get_mut(*c as usize) {
                *slot = u8::try_from(index + 1).ok()?;
            }
        }
        Some(Self {
            accept,
            star,
            any,
            ascii,
            literal,
        })
    }

    /// The states entered on `c`'s literal transitions, if `c` is in the pattern.
    fn literal(&self, c: char) -> Option<&[u64]> {
        match self.ascii.get(c as usize) {
            Some(0) => None,
            Some(&index) => Some(&self.literal[usize::from(index) - 1].1),
            None => self
                .literal
                .binary_search_by_key(&c, |(k, _)| *k)
                .ok()
                .map(|index| &*self.literal[index].1),
        }
    }

    fn matches(&self, text: &str) -> bool {
        let words = self.star.len();
        if words == 1 {
            // Up to 63 pattern characters (nearly every pattern): one word, in registers.
            let (any, star) = (self.any[0], self.star[0]);
            let mut states = 1_u64;
            for c in text.chars() {
                let entered = any | self.literal(c).map_or(0, |bits| bits[0]);
                states = ((states << 1) & entered) | (states & star);
                if states == 0 {
                    return false;
                }
            }
            return states >> self.accept & 1 == 1;
        }
        // Updated in place: each word's new value needs only its old value and the carry
        // out of the word before it.
        let mut states = [0_u64; NFA_WORDS];
        states[0] = 1;
        for c in text.chars() {
            let literal = self.literal(c);
            let (mut carry, mut live) = (0, 0);
            for (w, word) in states.iter_mut().enumerate().take(words) {
                let current = *word;
                let entered = self.any[w] | literal.map_or(0, |bits| bits[w]);
                *word = (((current << 1) | carry) & entered) | (current & self.star[w]);
                carry = current >> 63;
                live |= *word;
            }
            if live == 0 {
                return false;
            }
        }
        states[self.accept / 64] >> (self.accept % 64) & 1 == 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    actions: Patterns,
    resources: Patterns,
    /// All must hold.
    conditions: Vec<Condition>,
}

impl Statement {
    fn applies(
        &self,
        iam_action: &str,
        target: Target<'_>,
        context: &ConditionContext<'_>,
    ) -> bool {
        self.actions.applies(iam_action, true)
            && self.resources.applies_to(target)
            && self.conditions.iter().all(|c| c.holds(context))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConditionKey {
    Prefix,
    Delimiter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringTest {
    Equals,
    Like,
}

/// One operator on one key: `"StringLike": {"s3:prefix": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    test: StringTest,
    /// `StringNot...`: holds when no value matches.
    negated: bool,
    /// `...IfExists`: holds when the key is absent.
    if_exists: bool,
    key: ConditionKey,
    /// Any may match.
    values: Vec<Pattern>,
}

impl Condition {
    /// As IAM: an absent key fails a positive operator and satisfies a negated one (and
    /// every `...IfExists` one).
    fn holds(&self, context: &ConditionContext<'_>) -> bool {
        let value = match self.key {
            ConditionKey::Prefix => context.prefix,
            ConditionKey::Delimiter => context.delimiter,
        };
        let Some(value) = value else {
            return self.negated || self.if_exists;
        };
        let matched = self.values.iter().any(|v| match self.test {
            StringTest::Equals => *v.text == *value,
            StringTest::Like => v.matches(value, false),
        });
        matched != self.negated
    }
}

/// The condition keys of a request.
struct ConditionContext<'a> {
    prefix: Option<&'a str>,
    delimiter: Option<&'a str>,
}

impl<'a> ConditionContext<'a> {
    /// `s3:prefix` and `s3:delimiter` exist only for object listings: a `?prefix=` added to
    /// any other request must not satisfy a condition written for listings.
    fn of(request: &'a S3Request) -> Self {
        if request.operation.is_object_listing() {
            Self {
                prefix: request.query.get("prefix"),
                delimiter: request.query.get("delimiter"),
            }
        } else {
            Self {
                prefix: None,
                delimiter: None,
            }
        }
    }
}

/// IAM wildcard matching: `*` is any run of characters (`/` included, possibly none), `?`
/// exactly one character; everything else is literal. With `fold_case`, `pattern` must be
/// lower-case and ASCII letters of `text` match either case.
///
/// Case-sensitive patterns without `?` (nearly every resource and `StringLike` pattern) take
/// a linear-time path; the rest backtrack, which is O(|pattern| × |text|) at worst: actions
/// (short), and case-sensitive patterns with `?` but no `*` (which fail at the first
/// mismatch) or too many states for the automaton.
fn wildcard_match(pattern: &str, text: &str, fold_case: bool) -> bool {
    if !fold_case && !pattern.contains('?') {
        return star_match(pattern, text);
    }
    backtracking_match(pattern.as_bytes(), text.as_bytes(), fold_case)
}

/// A `*`-only pattern in linear time: what precedes the first `*` is a prefix of `text`,
/// what follows the last one a suffix, and the parts between are found in order, each at its
/// leftmost occurrence (which leaves the most text to the parts after it, so it never misses
/// a match), with `str::find` (Two-Way, linear).
fn star_match(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
    if first.len() + last.len() > text.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut region = &text[first.len()..text.len() - last.len()];
    for part in middle.split('*').filter(|part| !part.is_empty()) {
        match region.find(part) {
            Some(at) => region = &region[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Greedy matching with backtracking to the last `*`. Advances over `text` one UTF-8
/// character at a time, so `?` is one character, not one byte.
fn backtracking_match(pattern: &[u8], text: &[u8], fold_case: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern index after it, the text index it has
    // absorbed up to.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if let Some(&c) = pattern.get(p) {
            if c == b'*' {
                p += 1;
                resume = Some((p, t));
                continue;
            }
            if c == b'?' {
                p += 1;
                t += utf8_len(text[t]);
                continue;
            }
            let b = if fold_case {
                text[t].to_ascii_lowercase()
            } else {
                text[t]
            };
            if c == b {
                p += 1;
                t += 1;
                continue;
            }
        }
        let Some((after_star, absorbed)) = resume else {
            return false;
        };
        let absorbed = absorbed + utf8_len(text[absorbed]);
        resume = Some((after_star, absorbed));
        p = after_star;
        t = absorbed;
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 character starting with `first`.
fn utf8_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A JSON value that keeps object fields in order and refuses duplicate field names (which
/// `serde_json::Value` would resolve silently, last one wins).
#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Number,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Number => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;

        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
                Ok(Json::Bool)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Json, E> {
                Ok(Json::Number)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Json, E> {
                Ok(Json::Number)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
                Ok(Json::Number)
            }

            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_owned()))
            }

            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut fields: Vec<(String, Json)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if fields.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!("duplicate field \"{name}\"")));
                    }
                    let value = map.next_value()?;
                    fields.push((name, value));
                }
                Ok(Json::Object(fields))
            }
        }

        deserializer.deserialize_any(JsonVisitor)
    }
}

const SUPPORTED_OPERATORS: &str = "StringEquals, StringNotEquals, StringLike, StringNotLike \
    and their IfExists forms";

fn parse_document(json: Json) -> Result<Vec<Statement>, SessionPolicyError> {
    let Json::Object(fields) = json else {
        return Err(malformed(format!(
            "the policy document must be a JSON object, not {}",
            json.kind()
        )));
    };
    let mut statement = None;
    for (name, value) in fields {
        match name.as_str() {
            "Version" => match value {
                Json::String(v) if v == "2012-10-17" || v == "2008-10-17" => {}
                Json::String(v) => {
                    return Err(malformed(format!(
                        "unsupported Version \"{v}\"; expected \"2012-10-17\" or \"2008-10-17\""
                    )));
                }
                other => {
                    return Err(malformed(format!(
                        "Version must be a string, not {}",
                        other.kind()
                    )));
                }
            },
            "Id" => {
                if !matches!(value, Json::String(_)) {
                    return Err(malformed(format!(
                        "Id must be a string, not {}",
                        value.kind()
                    )));
                }
            }
            "Statement" => statement = Some(value),
            other => {
                return Err(malformed(format!(
                    "unknown field \"{other}\" in the policy document; expected Version, Id or \
                     Statement"
                )));
            }
        }
    }
    let statements = match statement {
        None => return Err(malformed("the policy document has no Statement")),
        Some(Json::Array(items)) if items.is_empty() => {
            return Err(malformed("Statement is an empty array"));
        }
        Some(Json::Array(items)) => items,
        Some(object @ Json::Object(_)) => vec![object],
        Some(other) => {
            return Err(malformed(format!(
                "Statement must be an object or an array of objects, not {}",
                other.kind()
            )));
        }
    };
    let mut sids: Vec<String> = Vec::new();
    statements
        .into_iter()
        .enumerate()
        .map(|(index, json)| {
            parse_statement(json, &mut sids)
                .map_err(|message| malformed(format!("Statement[{index}]: {message}")))
        })
        .collect()
}

/// One statement; the error is the message without the statement's position.
fn parse_statement(json: Json, sids: &mut Vec<String>) -> Result<Statement, String> {
    let Json::Object(fields) = json else {
        return Err(format!(
            "a statement must be an object, not {}",
            json.kind()
        ));
    };
    let mut effect = None;
    let mut actions = None;
    let mut resources = None;
    let mut conditions = Vec::new();
    for (name, value) in fields {
        match name.as_str() {
            "Sid" => {
                let Json::String(sid) = value else {
                    return Err(format!("Sid must be a string, not {}", value.kind()));
                };
                if sids.contains(&sid) {
                    return Err(format!("duplicate Sid \"{sid}\""));
                }
                sids.push(sid);
            }
            "Effect" => {
                effect = Some(match value {
                    Json::String(v) if v == "Allow" => Effect::Allow,
                    Json::String(v) if v == "Deny" => Effect::Deny,
                    Json::String(v) => {
                        return Err(format!("Effect must be \"Allow\" or \"Deny\", not \"{v}\""));
                    }
                    other => {
                        return Err(format!("Effect must be a string, not {}", other.kind()));
                    }
                });
            }
            "Action" | "NotAction" => {
                if actions.is_some() {
                    return Err("has both Action and NotAction".to_owned());
                }
                let patterns = strings(&name, value)?
                    .into_iter()
                    .map(|p| check_action(&p).map(|()| Pattern::new(p.to_ascii_lowercase(), true)))
                    .collect::<Result<_, _>>()?;
                actions = Some(Patterns {
                    negated: name == "NotAction",
                    patterns,
                });
            }
            "Resource" | "NotResource" => {
                if resources.is_some() {
                    return Err("has both Resource and NotResource".to_owned());
                }
                let patterns = strings(&name, value)?
                    .into_iter()
                    .map(|p| check_resource(&name, &p).map(|()| Pattern::new(p, false)))
                    .collect::<Result<_, _>>()?;
                resources = Some(Patterns {
                    negated: name == "NotResource",
                    patterns,
                });
            }
            "Condition" => conditions = parse_conditions(value)?,
            "Principal" | "NotPrincipal" => {
                return Err(format!(
                    "a session policy cannot have {name}: it applies to the session's own \
                     principal"
                ));
            }
            other => {
                return Err(format!(
                    "unknown field \"{other}\"; expected Sid, Effect, Action, NotAction, \
                     Resource, NotResource or Condition"
                ));
            }
        }
    }
    Ok(Statement {
        effect: effect.ok_or("missing Effect")?,
        actions: actions.ok_or("missing Action or NotAction")?,
        resources: resources.ok_or("missing Resource or NotResource")?,
        conditions,
    })
}

/// A string or a non-empty array of strings.
fn strings(what: &str, value: Json) -> Result<Vec<String>, String> {
    let not_strings =
        |found: &str| format!("{what} must be a string or an array of strings, not {found}");
    match value {
        Json::String(s) => Ok(vec![s]),
        Json::Array(items) if items.is_empty() => Err(format!("{what} is an empty array")),
        Json::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Json::String(s) => Ok(s),
                other => Err(not_strings(&format!("an array holding {}", other.kind()))),
            })
            .collect(),
        other => Err(not_strings(other.kind())),
    }
}

/// `*` or `service:action`, each side non-empty, letters, digits, `-`, `_` and wildcards.
fn check_action(action: &str) -> Result<(), String> {
    let valid_part = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*' | b'?'))
    };
    let valid = action == "*"
        || action
            .split_once(':')
            .is_some_and(|(service, name)| valid_part(service) && valid_part(name));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Action \"{action}\" is not \"*\" or \"service:action\" (such as \"s3:GetObject\")"
        ))
    }
}

/// `*` or an ARN (`arn:partition:service:region:account:resource`), without policy
/// variables.
fn check_resource(what: &str, resource: &str) -> Result<(), String> {
    if resource.contains("${") {
        return Err(format!(
            "{what} \"{resource}\": policy variables (${{...}}) are not supported"
        ));
    }
    if resource == "*" || (resource.starts_with("arn:") && resource.split(':').count() >= 6) {
        Ok(())
    } else {
        Err(format!(
            "{what} \"{resource}\" is not \"*\" or an ARN (such as \"arn:aws:s3:::bucket/key\")"
        ))
    }
}

/// `{"Operator": {"key": value-or-values, ...}, ...}`: every operator and key must hold.
fn parse_conditions(value: Json) -> Result<Vec<Condition>, String> {
    let Json::Object(operators) = value else {
        return Err(format!("Condition must be an object, not {}", value.kind()));
    };
    let mut conditions = Vec::new();
    for (operator, keys) in operators {
        let base = operator.strip_suffix("IfExists").unwrap_or(&operator);
        let (test, negated) = match base {
            "StringEquals" => (StringTest::Equals, false),
            "StringNotEquals" => (StringTest::Equals, true),
            "StringLike" => (StringTest::Like, false),
            "StringNotLike" => (StringTest::Like, true),
            _ => {
                return Err(format!(
                    "unsupported condition operator \"{operator}\"; supported: \
                     {SUPPORTED_OPERATORS}"
                ));
            }
        };
        let if_exists = base.len() != operator.len();
        let Json::Object(keys) = keys else {
            return Err(format!(
                "{operator} must be an object of condition keys, not {}",
                keys.kind()
            ));
        };
        if keys.is_empty() {
            return Err(format!("{operator} has no condition key"));
        }
        for (key_name, values) in keys {
            // Condition key names are case-insensitive in IAM.
            let key = if key_name.eq_ignore_ascii_case("s3:prefix") {
                ConditionKey::Prefix
            } else if key_name.eq_ignore_ascii_case("s3:delimiter") {
                ConditionKey::Delimiter
            } else {
                return Err(format!(
                    "unsupported condition key \"{key_name}\" in {operator}; supported: \
                     s3:prefix, s3:delimiter"
                ));
            };
            let values = strings(&format!("{operator} {key_name}"), values)?;
            if let Some(v) = values.iter().find(|v| v.contains("${")) {
                return Err(format!(
                    "{operator} {key_name} \"{v}\": policy variables (${{...}}) are not supported"
                ));
            }
            conditions.push(Condition {
                test,
                negated,
                if_exists,
                key,
                values: values
                    .into_iter()
                    .map(|v| match test {
                        StringTest::Equals => Pattern::literal(v),
                        StringTest::Like => Pattern::new(v, false),
                    })
                    .collect(),
            });
        }
    }
    Ok(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        for (p, t, expected) in [
            ("*", "", true),
            ("**", "", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("a*a", "a", false),
            ("ab*ba", "aba", false),
            ("a?c", "abc", true),
            ("a?c", "aéc", true),
            ("a?c", "ac", false),
            ("abc", "abcd", false),
            ("é*", "éé", true),
            ("*?", "é", true),
            ("", "a", false),
            ("", "", true),
        ] {
            assert_eq!(wildcard_match(p, t, false), expected, "{p} {t}");
            assert_eq!(
                backtracking_match(p.as_bytes(), t.as_bytes(), false),
                expected,
                "{p} {t}"
            );
        }
        // Across a word boundary of the automaton.
        let long = format!("{}*{}?", "?".repeat(70), "a".repeat(70));
        let nfa = Nfa::new(&long).unwrap();
        assert!(nfa.matches(&format!("{}xé{}é", "b".repeat(70), "a".repeat(70))));
        assert!(nfa.matches(&format!("{}{}b", "b".repeat(70), "a".repeat(70))));
        assert!(!nfa.matches(&format!("{}{}b", "b".repeat(69), "a".repeat(70))));
        assert!(!nfa.matches(&format!("{}{}", "b".repeat(70), "a".repeat(70))));
        assert!(Pattern::new(long, false).nfa.is_some());
        assert!(
            Pattern::new("arn:aws:s3:::b/*/??".to_owned(), false)
                .nfa
                .is_some()
        );
        assert!(
            Pattern::new("arn:aws:s3:::b/??".to_owned(), false)
                .nfa
                .is_none()
        );
        assert!(Pattern::new("s3:get*?".to_owned(), true).nfa.is_none());
        // Ends checked first, then the automaton.
        let p = Pattern::new("a?*x?z".to_owned(), false);
        assert!(p.matches("abxyz", false));
        assert!(p.matches("abéxéz", false));
        assert!(!p.matches("abxy", false));
        assert!(!p.matches("axyz", false));
        assert!(!p.matches("b?xyz", false));
        assert!(wildcard_match("s3:get*", "s3:GetObject", true));
        assert!(!wildcard_match("s3:get*", "s3:GetObject", false));
    }

    proptest::proptest! {
        /// The automaton agrees with backtracking.
        #[test]
        fn nfa_agrees_with_backtracking(
            pattern in "[ab?*é]{0,12}",
            text in "[abé]{0,16}",
        ) {
            proptest::prop_assert_eq!(
                Nfa::new(&pattern).unwrap().matches(&text),
                backtracking_match(pattern.as_bytes(), text.as_bytes(), false)
            );
            proptest::prop_assert_eq!(
                Pattern::new(pattern.clone(), false).matches(&text, false),
                backtracking_match(pattern.as_bytes(), text.as_bytes(), false)
            );
        }

        /// Across word boundaries too: 130 states.
        #[test]
        fn a_long_nfa_agrees_with_backtracking(
            head in "[ab?]{60,70}",
            tail in "[ab?*]{55,65}",
            text in "[ab]{100,160}",
        ) {
            let pattern = format!("{head}*{tail}");
            proptest::prop_assert_eq!(
                Nfa::new(&pattern).unwrap().matches(&text),
                backtracking_match(pattern.as_bytes(), text.as_bytes(), false)
            );
        }

        /// The linear path agrees with backtracking on every `*`-only pattern.
        #[test]
        fn star_match_agrees_with_backtracking(
            pattern in "[ab*/]{0,12}",
            text in "[ab/]{0,16}",
        ) {
            proptest::prop_assert_eq!(
                star_match(&pattern, &text),
                backtracking_match(pattern.as_bytes(), text.as_bytes(), false)
            );
        }
    }

    #[test]
    fn packing_counts_strings_whole() {
        assert_eq!(packed_len(" { \"a b\" : \"c\\\" d\" } "), 15);
        assert_eq!(packed_len("\n\t\r "), 0);
    }
}
