//! JSON Schema compatibility, after Confluent's documented rules.
//! Long because: the rules are written down here, next to the one recursive walk that
//! applies them; splitting the walk by keyword would scatter a single comparison.
//!
//! The question is always the same: does every document the *writer* schema accepts also pass the *reader* schema?
//! (BACKWARD asks it with writer = old, reader = new; FORWARD with them swapped.) A change that
//! relaxes the reader is compatible, one that tightens it is not. Each finding is reported as
//! `{errorType:'RULE', description:'... at #/json/path ...'}` with Confluent's rule name.
//!
//! Rules (writer → reader):
//! - Content model of an object: *open* when `additionalProperties` is absent, `true` or `{}`;
//!   *closed* when `false`; *partially open* when it is a schema.
//!   - Property added to a closed model: compatible (`OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL`).
//!   - Property added to an open model: incompatible (`PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`):
//!     old data may carry that name with any value. Compatible only when its schema is `{}`/`true`.
//!   - Property added to a partially open model: compatible when the new property's schema
//!     accepts what the old `additionalProperties` schema did (`PROPERTY_ADDED_IS_COVERED_...`).
//!   - Property removed from an open reader model: compatible (`PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL`).
//!   - Property removed from a closed reader model: incompatible (`PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL`),
//!     unless its old schema was `false`.
//!   - `additionalProperties` made stricter (open → closed or → a schema, schema narrowed):
//!     incompatible (`ADDITIONAL_PROPERTIES_REMOVED` / `_NARROWED`); made looser: compatible.
//! - `required`: a name newly required is incompatible (`REQUIRED_ATTRIBUTE_ADDED`) unless the
//!   reader gives the property a `default` (`REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED`); a name no
//!   longer required is compatible.
//! - `type`: every writer type must be a reader type (`TYPE_EXTENDED` is fine,
//!   `TYPE_NARROWED`/`TYPE_CHANGED` are not); `integer` → `number` is widening. A reader that
//!   adds a `type` to an untyped writer narrows it.
//! - `enum`/`const`: reader values must include every writer value (`ENUM_ARRAY_EXTENDED` fine,
//!   `ENUM_ARRAY_NARROWED` not); an enum added to a writer without one narrows it.
//! - Bounds: `maxLength`, `maximum`, `exclusiveMaximum`, `maxItems`, `maxProperties` may rise or
//!   go, not fall or appear; `minLength`, `minimum`, `exclusiveMinimum`, `minItems`,
//!   `minProperties` may fall or go, not rise or appear (`*_ADDED`, `*_DECREASED`/`*_INCREASED`).
//!   `pattern` may go, not appear or change; `multipleOf` may go or become a divisor of the old
//!   one; `uniqueItems: true` may go, not appear.
//! - Arrays: `items` (one schema) compared recursively; tuple `items`/`prefixItems` compared
//!   position by position, and a change of tuple length is reported (`ITEMS_CHANGED`).
//! - `oneOf`/`anyOf` (sum types): every writer branch must be accepted by some reader branch
//!   (`SUM_TYPE_EXTENDED` fine, `SUM_TYPE_NARROWED` not). `allOf` is merged into one schema
//!   (properties and required united) before comparing. `not` must stay the same.
//! - `$ref` to the same document (`#/definitions/...`, `#/$defs/...`) is followed; recursive
//!   references are assumed compatible on re-entry. Other `$ref`s must stay the same text.
//! - `title`, `description`, `default`, `$id`, `$comment`, `format`, `examples` never matter.
//!
//! Not compared (a change there passes): `patternProperties`, `dependencies`/`dependentRequired`/
//! `dependentSchemas`, `propertyNames`, `contains`, `if`/`then`/`else`, `unevaluated*`.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

/// Messages for each way a document valid under `writer` may fail `reader`.
pub fn can_read(writer: &str, reader: &str) -> Vec<String> {
    let (w, r): (Value, Value) = match (serde_json::from_str(writer), serde_json::from_str(reader))
    {
        (Ok(w), Ok(r)) => (w, r),
        (Err(e), _) | (_, Err(e)) => {
            return vec![format!("{{errorType:'INVALID_SCHEMA', description:'{e}'}}")]
        }
    };
    let mut c = Checker {
        writer_root: &w,
        reader_root: &r,
        seen: HashSet::new(),
        out: Vec::new(),
        depth: 0,
    };
    c.cmp(&w, &r, "#");
    c.out
}

/// Beyond this nesting the comparison gives up and reports it, rather than recurse forever.
const MAX_DEPTH: usize = 64;

struct Checker<'a> {
    writer_root: &'a Value,
    reader_root: &'a Value,
    /// (writer, reader) pairs being compared, by address: a `$ref` cycle stops here.
    seen: HashSet<(usize, usize)>,
    out: Vec<String>,
    depth: usize,
}

fn report(out: &mut Vec<String>, rule: &str, path: &str, what: String) {
    out.push(format!(
        "{{errorType:'{rule}', description:'{what} at {path}'}}"
    ));
}

/// A schema that accepts every document.
fn accepts_all(s: &Value) -> bool {
    match s {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| {
            matches!(
                k.as_str(),
                "title" | "description" | "default" | "$id" | "$comment" | "examples" | "$schema"
            )
        }),
        _ => false,
    }
}

fn num(m: &Map<String, Value>, key: &str) -> Option<f64> {
    m.get(key).and_then(Value::as_f64)
}

/// Shallow merge of `allOf` branches into their parent: properties and required united,
/// other keywords first come first kept.
fn merge_all_of(m: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = m.clone();
    let Some(Value::Array(branches)) = merged.remove("allOf") else {
        return merged;
    };
    for b in branches {
        let Value::Object(b) = b else { continue };
        for (k, v) in b {
            match (k.as_str(), merged.get_mut(&k), v) {
                ("properties", Some(Value::Object(have)), Value::Object(more)) => {
                    for (pk, pv) in more {
                        have.entry(pk).or_insert(pv);
                    }
                }
                ("required", Some(Value::Array(have)), Value::Array(more)) => {
                    for r in more {
                        if !have.contains(&r) {
                            have.push(r);
                        }
                    }
                }
                (_, Some(_), _) => {}
                (_, None, v) => {
                    merged.insert(k, v);
                }
            }
        }
    }
    merged
}

/// The branches of `oneOf`/`anyOf`, each with the parent's other keywords merged in.
fn sum_branches(m: &Map<String, Value>) -> Option<Vec<Value>> {
    let key = ["oneOf", "anyOf"]
        .into_iter()
        .find(|k| m.contains_key(*k))?;
    let Some(Value::Array(branches)) = m.get(key) else {
        return None;
    };
    let mut rest = m.clone();
    rest.remove("oneOf");
    rest.remove("anyOf");
    Some(
        branches
            .iter()
            .map(|b| match b {
                Value::Object(b) => {
                    let mut merged = b.clone();
                    for (k, v) in &rest {
                        merged.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    Value::Object(merge_all_of(&merged))
                }
                other => other.clone(),
            })
            .collect(),
    )
}

/// The set of JSON types a schema admits; None = any. Derived from `enum`/`const` when no
/// `type` is given.
fn types(m: &Map<String, Value>) -> Option<BTreeSet<String>> {
    match m.get("type") {
        Some(Value::String(t)) => return Some([t.clone()].into()),
        Some(Value::Array(ts)) => {
            return Some(
                ts.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
            )
        }
        _ => {}
    }
    let values = enum_values(m)?;
    Some(values.iter().map(json_type).map(str::to_string).collect())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn enum_values(m: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(Value::Array(vs)) = m.get("enum") {
        return Some(vs.clone());
    }
    m.get("const").map(|c| vec![c.clone()])
}

fn admits(types: &Option<BTreeSet<String>>, t: &str) -> bool {
    match types {
        None => true,
        Some(ts) => ts.contains(t) || (t == "integer" && ts.contains("number")),
    }
}

/// The content model of an object: None = open, Some(schema) otherwise (false = closed).
fn additional(m: &Map<String, Value>) -> Option<&Value> {
    m.get("additionalProperties").filter(|ap| !accepts_all(ap))
}

impl<'a> Checker<'a> {
    /// Follows a same-document `$ref`; other references stay as they are.
    fn resolve<'v>(s: &'v Value, root: &'v Value) -> &'v Value {
        let mut s = s;
        for _ in 0..MAX_DEPTH {
            let Some(Value::String(r)) = s.get("$ref") else {
                return s;
            };
            let Some(pointer) = r.strip_prefix('#') else {
                return s;
            };
            match root.pointer(pointer) {
                Some(target) => s = target,
                None => return s,
            }
        }
        s
    }

    /// Whether `reader` accepts everything `writer` does, without reporting.
    fn accepts(&mut self, writer: &Value, reader: &Value, path: &str) -> bool {
        let saved = std::mem::take(&mut self.out);
        self.cmp(writer, reader, path);
        let ok = self.out.is_empty();
        self.out = saved;
        ok
    }

    fn cmp(&mut self, writer: &Value, reader: &Value, path: &str) {
        if self.depth >= MAX_DEPTH {
            report(
                &mut self.out,
                "SCHEMA_TOO_DEEP",
                path,
                "nesting too deep to compare".into(),
            );
            return;
        }
        // Branches built by merging live only for this call; resolve within both roots.
        let (w, r) = (
            Self::resolve(writer, self.writer_root),
            Self::resolve(reader, self.reader_root),
        );
        let key = (w as *const Value as usize, r as *const Value as usize);
        if !self.seen.insert(key) {
            return;
        }
        self.depth += 1;
        self.cmp_resolved(w, r, path);
        self.depth -= 1;
        self.seen.remove(&key);
    }

    fn cmp_resolved(&mut self, w: &Value, r: &Value, path: &str) {
        if w == &Value::Bool(false) || accepts_all(r) {
            return;
        }
        let (Value::Object(wm), Value::Object(rm)) = (w, r) else {
            // Only `true` (or a non-schema) is left on the writer side, or `false` on the reader's.
            report(
                &mut self.out,
                "SCHEMA_NARROWED",
                path,
                "the reader schema accepts fewer documents".into(),
            );
            return;
        };
        if let (Some(Value::String(a)), Some(Value::String(b))) = (wm.get("$ref"), rm.get("$ref")) {
            if a == b {
                return;
            }
        }
        if rm.contains_key("$ref") || wm.contains_key("$ref") {
            report(
                &mut self.out,
                "REF_CHANGED",
                path,
                "a reference outside the document changed".into(),
            );
            return;
        }
        let (wm, rm) = (merge_all_of(wm), merge_all_of(rm));
        match (sum_branches(&wm), sum_branches(&rm)) {
            (None, None) => self.cmp_plain(&wm, &rm, path),
            (Some(ws), rs) => {
                let rs = rs.unwrap_or_else(|| vec![Value::Object(rm.clone())]);
                for (i, wb) in ws.iter().enumerate() {
                    let sub = format!("{path}/oneOf/{i}");
                    if !rs.iter().any(|rb| self.accepts(wb, rb, &sub)) {
                        let what = format!("writer branch {i} is accepted by no reader branch");
                        report(&mut self.out, "SUM_TYPE_NARROWED", &sub, what);
                    }
                }
            }
            (None, Some(rs)) => {
                let wv = Value::Object(wm);
                if !rs.iter().any(|rb| self.accepts(&wv, rb, path)) {
                    let what = "the writer schema is accepted by no reader branch".into();
                    report(&mut self.out, "SUM_TYPE_NARROWED", path, what);
                }
            }
        }
    }

    fn cmp_plain(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, path: &str) {
        let (wt, rt) = (types(w), types(r));
        match &wt {
            None if rt.is_some() => {
                let what = format!("type restricted to {:?}", rt.as_ref().unwrap());
                report(&mut self.out, "TYPE_NARROWED", path, what);
            }
            Some(ws) => {
                let lost: Vec<&String> = ws.iter().filter(|t| !admits(&rt, t)).collect();
                if !lost.is_empty() {
                    let rule = if lost.len() == ws.len() {
                        "TYPE_CHANGED"
                    } else {
                        "TYPE_NARROWED"
                    };
                    report(
                        &mut self.out,
                        rule,
                        path,
                        format!("type {lost:?} no longer accepted"),
                    );
                }
            }
            None => {}
        }
        if w.get("not") != r.get("not") {
            report(
                &mut self.out,
                "NOT_TYPE_CHANGED",
                path,
                "`not` changed".into(),
            );
        }
        match (enum_values(w), enum_values(r)) {
            (Some(wv), Some(rv)) => {
                let lost: Vec<&Value> = wv.iter().filter(|v| !rv.contains(v)).collect();
                if !lost.is_empty() {
                    let what = format!(
                        "enum values {} removed",
                        Value::from(lost.into_iter().cloned().collect::<Vec<_>>())
                    );
                    report(&mut self.out, "ENUM_ARRAY_NARROWED", path, what);
                }
            }
            (None, Some(_)) => report(
                &mut self.out,
                "ENUM_ARRAY_NARROWED",
                path,
                "enum added".into(),
            ),
            _ => {}
        }
        // Keywords of a kind only matter when the writer can produce that kind.
        if admits(&wt, "string") {
            self.upper(w, r, "maxLength", "MAX_LENGTH", path);
            self.lower(w, r, "minLength", "MIN_LENGTH", path);
            match (w.get("pattern"), r.get("pattern")) {
                (_, None) => {}
                (None, Some(_)) => {
                    report(&mut self.out, "PATTERN_ADDED", path, "pattern added".into())
                }
                (Some(a), Some(b)) if a != b => report(
                    &mut self.out,
                    "PATTERN_CHANGED",
                    path,
                    "pattern changed".into(),
                ),
                _ => {}
            }
        }
        if admits(&wt, "number") || admits(&wt, "integer") {
            self.upper(w, r, "maximum", "MAXIMUM", path);
            self.upper(w, r, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM", path);
            self.lower(w, r, "minimum", "MINIMUM", path);
            self.lower(w, r, "exclusiveMinimum", "EXCLUSIVE_MINIMUM", path);
            match (num(w, "multipleOf"), num(r, "multipleOf")) {
                (_, None) => {}
                (None, Some(_)) => report(
                    &mut self.out,
                    "MULTIPLE_OF_ADDED",
                    path,
                    "multipleOf added".into(),
                ),
                (Some(a), Some(b)) => {
                    let q = a / b;
                    if (q - q.round()).abs() > 1e-9 {
                        report(
                            &mut self.out,
                            "MULTIPLE_OF_CHANGED",
                            path,
                            format!("multipleOf {a} → {b} is not a divisor"),
                        );
                    }
                }
            }
        }
        if admits(&wt, "object") {
            self.cmp_object(w, r, path);
        }
        if admits(&wt, "array") {
            self.cmp_array(w, r, path);
        }
    }

    /// An upper bound may rise or go, not fall or appear.
    fn upper(
        &mut self,
        w: &Map<String, Value>,
        r: &Map<String, Value>,
        key: &str,
        rule: &str,
        path: &str,
    ) {
        match (num(w, key), num(r, key)) {
            (_, None) => {}
            (None, Some(b)) => report(
                &mut self.out,
                &format!("{rule}_ADDED"),
                path,
                format!("{key} {b} added"),
            ),
            (Some(a), Some(b)) if b < a => report(
                &mut self.out,
                &format!("{rule}_DECREASED"),
                path,
                format!("{key} lowered from {a} to {b}"),
            ),
            _ => {}
        }
    }

    /// A lower bound may fall or go, not rise or appear.
    fn lower(
        &mut self,
        w: &Map<String, Value>,
        r: &Map<String, Value>,
        key: &str,
        rule: &str,
        path: &str,
    ) {
        match (num(w, key), num(r, key)) {
            (_, None) => {}
            // A count bound of 0 restricts nothing.
            (None, Some(b))
                if b > 0.0 || !matches!(key, "minLength" | "minItems" | "minProperties") =>
            {
                report(
                    &mut self.out,
                    &format!("{rule}_ADDED"),
                    path,
                    format!("{key} {b} added"),
                )
            }
            (Some(a), Some(b)) if b > a => report(
                &mut self.out,
                &format!("{rule}_INCREASED"),
                path,
                format!("{key} raised from {a} to {b}"),
            ),
            _ => {}
        }
    }

    fn cmp_object(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, path: &str) {
        let empty = Map::new();
        let wp = w
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let rp = r
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let (w_ap, r_ap) = (additional(w), additional(r));
        for (name, rs) in rp {
            let sub = format!("{path}/properties/{name}");
            match (wp.get(name), w_ap) {
                (Some(ws), _) => self.cmp(ws, rs, &sub),
                (None, None) => {
                    if !accepts_all(rs) {
                        let what = format!("property '{name}' added to an open content model");
                        report(
                            &mut self.out,
                            "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                            &sub,
                            what,
                        );
                    }
                }
                (None, Some(Value::Bool(false))) => {}
                (None, Some(ap)) => {
                    if !self.accepts(ap, rs, &sub) {
                        let what = format!(
                            "property '{name}' added, not covered by the old additionalProperties"
                        );
                        report(
                            &mut self.out,
                            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            &sub,
                            what,
                        );
                    }
                }
            }
        }
        for (name, ws) in wp.iter().filter(|(n, _)| !rp.contains_key(*n)) {
            let sub = format!("{path}/properties/{name}");
            let (rule, what) = match r_ap {
                None => continue,
                Some(Value::Bool(false)) if ws == &Value::Bool(false) => continue,
                Some(Value::Bool(false)) => (
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    format!("property '{name}' removed from a closed content model"),
                ),
                Some(ap) if self.accepts(ws, ap, &sub) => continue,
                Some(_) => (
                    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    format!(
                        "property '{name}' removed, not covered by the new additionalProperties"
                    ),
                ),
            };
            report(&mut self.out, rule, &sub, what);
        }
        let sub = format!("{path}/additionalProperties");
        match (w_ap, r_ap) {
            (_, None) | (Some(Value::Bool(false)), _) => {}
            (None, Some(_)) => report(
                &mut self.out,
                "ADDITIONAL_PROPERTIES_REMOVED",
                &sub,
                "the content model was closed".into(),
            ),
            (Some(a), Some(b)) => {
                if !self.accepts(a, b, &sub) {
                    report(
                        &mut self.out,
                        "ADDITIONAL_PROPERTIES_NARROWED",
                        &sub,
                        "additionalProperties narrowed".into(),
                    );
                }
            }
        }
        let required = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let w_req = required(w);
        for name in required(r).into_iter().filter(|n| !w_req.contains(n)) {
            let has_default = rp.get(&name).is_some_and(|p| p.get("default").is_some());
            if !has_default {
                let what = format!("property '{name}' is now required and has no default");
                report(
                    &mut self.out,
                    "REQUIRED_ATTRIBUTE_ADDED",
                    &format!("{path}/required"),
                    what,
                );
            }
        }
        self.upper(w, r, "maxProperties", "MAX_PROPERTIES", path);
        self.lower(w, r, "minProperties", "MIN_PROPERTIES", path);
    }

    fn cmp_array(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, path: &str) {
        let tuple = |m: &Map<String, Value>| -> Option<Vec<Value>> {
            m.get("prefixItems")
                .or_else(|| m.get("items").filter(|i| i.is_array()))
                .and_then(Value::as_array)
                .cloned()
        };
        match (tuple(w), tuple(r)) {
            (None, None) => {
                if let Some(ri) = r.get("items") {
                    let wi = w.get("items").cloned().unwrap_or(Value::Bool(true));
                    self.cmp(&wi, ri, &format!("{path}/items"));
                }
            }
            (Some(wt), Some(rt)) => {
                for (i, (a, b)) in wt.iter().zip(rt.iter()).enumerate() {
                    self.cmp(a, b, &format!("{path}/items/{i}"));
                }
                if wt.len() != rt.len() {
                    let what = format!("tuple length changed from {} to {}", wt.len(), rt.len());
                    report(&mut self.out, "ITEMS_CHANGED", path, what);
                }
            }
            _ => report(
                &mut self.out,
                "ITEMS_CHANGED",
                path,
                "items changed between a list and a tuple".into(),
            ),
        }
        self.upper(w, r, "maxItems", "MAX_ITEMS", path);
        self.lower(w, r, "minItems", "MIN_ITEMS", path);
        let unique = |m: &Map<String, Value>| m.get("uniqueItems") == Some(&Value::Bool(true));
        if unique(r) && !unique(w) {
            report(
                &mut self.out,
                "UNIQUE_ITEMS_ADDED",
                path,
                "uniqueItems added".into(),
            );
        }
    }
}
