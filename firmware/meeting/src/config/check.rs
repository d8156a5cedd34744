//! The line-aware reader behind [`super::Config::parse`]: it walks the parsed TOML document
//! (toml_edit keeps every item's byte span), reads each known key with its type and range,
//! and collects every problem as a [`ConfigError`] naming the key and its line, so
//! `roomcast check-config` can print them all at once.

use std::fmt;
use std::ops::Range;

use toml_edit::{Item, Table, Value};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, as `section.key` (or `section` for a whole section; empty for the whole file).
    pub key: String,
    /// 1-based line in the file (0 when the file itself is the problem).
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line != 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The closest of `known` to a mistyped `word` (case, a swapped or missing letter, a prefix),
/// for "did you mean"; `None` when nothing is close or two are equally close.
pub fn did_you_mean<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let word = word.to_lowercase();
    let mut close: Vec<(usize, &'k str)> = known
        .iter()
        .map(|k| {
            let d = strsim::damerau_levenshtein(&word, k);
            let prefix = word.len() >= 3 && (k.starts_with(word.as_str()) || word.starts_with(k));
            (if prefix { d.min(1) } else { d }, *k)
        })
        .filter(|&(d, k)| d <= (k.len().max(word.len()) / 3).max(1))
        .collect();
    close.sort_by_key(|&(d, _)| d);
    match close.as_slice() {
        [(d, k), rest @ ..] if rest.first().map_or(true, |(d2, _)| d2 > d) => Some(k),
        _ => None,
    }
}

/// 1-based line of a byte offset.
pub fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes().iter().take(offset).filter(|&&b| b == b'\n').count() + 1
}

/// Collects errors while reading a document.
pub struct Reader<'a> {
    src: &'a str,
    /// Problems found so far.
    pub errors: Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    /// A reader over `src`.
    pub fn new(src: &'a str) -> Self {
        Self { src, errors: Vec::new() }
    }

    fn line(&self, span: Option<Range<usize>>) -> usize {
        span.map(|s| line_of(self.src, s.start)).unwrap_or(0)
    }

    /// Records a problem at `span`.
    pub fn error(&mut self, key: impl Into<String>, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(ConfigError { key: key.into(), line, message: message.into() });
    }

    /// Opens section `name` of `root` (missing = empty).
    pub fn section<'t>(&mut self, root: &'t Table, name: &'static str) -> Section<'t> {
        let (table, span) = match root.get(name) {
            None => (None, None),
            Some(Item::Table(t)) => (Some(t), t.span().or_else(|| root.key(name).and_then(|k| k.span()))),
            Some(other) => {
                self.error(name, other.span(), format!("must be a table: write it as [{name}]"));
                (None, None)
            }
        };
        Section { name, table, span, used: Vec::new() }
    }
}

/// One `[section]` being read.
pub struct Section<'t> {
    name: &'static str,
    table: Option<&'t Table>,
    span: Option<Range<usize>>,
    used: Vec<&'static str>,
}

impl<'t> Section<'t> {
    /// Span of `key` (or of the section header when the key is absent).
    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let t = self.table?;
        t.key(key).and_then(|k| k.span()).or_else(|| t.get(key).and_then(|i| i.span())).or_else(|| self.span.clone())
    }

    /// Whether `key` is in the section (of any type).
    pub fn has(&self, key: &str) -> bool {
        self.table.is_some_and(|t| t.contains_key(key))
    }

    /// Whether the section is present in the file.
    pub fn present(&self) -> bool {
        self.table.is_some()
    }

    fn full(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    fn get(&mut self, key: &'static str) -> Option<(&'t Value, Option<Range<usize>>)> {
        if !self.used.contains(&key) {
            self.used.push(key);
        }
        let table = self.table?;
        let item = table.get(key)?;
        let span = item.span().or_else(|| table.key(key).and_then(|k| k.span()));
        match item {
            Item::Value(v) => Some((v, span)),
            _ => None,
        }
    }

    fn wrong_type(&self, r: &mut Reader<'_>, key: &'static str, want: &str, v: &Value, span: Option<Range<usize>>) {
        let fix = match (want, v.as_str()) {
            ("an integer", Some(s)) if s.trim().parse::<i64>().is_ok() => {
                format!("write it without quotes, {key} = {s}")
            }
            ("an integer", _) => "write a whole number, without quotes".to_string(),
            ("true or false", _) => format!("write {key} = true or {key} = false, without quotes"),
            ("a string", _) => format!("put it in quotes, {key} = \"{}\"", v.to_string().trim()),
            _ => String::new(),
        };
        let found = match v.as_str() {
            Some(s) => format!("{s:?}"),
            None => v.type_name().to_string(),
        };
        let fix = if fix.is_empty() { fix } else { format!(": {fix}") };
        r.error(self.full(key), span, format!("expected {want}, found {found}{fix}"));
    }

    /// A required string.
    pub fn req_str(&mut self, r: &mut Reader<'_>, key: &'static str, hint: &str) -> String {
        match self.opt_str(r, key) {
            Some(s) => s,
            None => {
                if !self.table.is_some_and(|t| t.contains_key(key)) {
                    let span = self.span.clone();
                    let msg = if self.table.is_some() {
                        format!("missing, add it under [{}]: {key} = ... ({hint})", self.name)
                    } else {
                        format!("no [{}] section: add one, with {key} = ... ({hint})", self.name)
                    };
                    r.error(self.full(key), span, msg);
                }
                String::new()
            }
        }
    }

    /// An optional string.
    pub fn opt_str(&mut self, r: &mut Reader<'_>, key: &'static str) -> Option<String> {
        let (v, span) = self.get(key)?;
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(r, key, "a string", v, span);
                None
            }
        }
    }

    /// An optional string whose value is secret: a value of the wrong type is not echoed back.
    pub fn secret_str(&mut self, r: &mut Reader<'_>, key: &'static str) -> Option<String> {
        let (v, span) = self.get(key)?;
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                let msg = format!("expected a string, found {}: put it in quotes", v.type_name());
                r.error(self.full(key), span, msg);
                None
            }
        }
    }

    /// A string with a default.
    pub fn str_or(&mut self, r: &mut Reader<'_>, key: &'static str, default: &str) -> String {
        self.opt_str(r, key).unwrap_or_else(|| default.to_string())
    }

    /// A string that must be one of `choices`.
    pub fn choice(&mut self, r: &mut Reader<'_>, key: &'static str, choices: &[&str], default: &str) -> String {
        let span = self.get(key).and_then(|(_, s)| s);
        let s = self.str_or(r, key, default);
        if choices.contains(&s.as_str()) {
            s
        } else {
            r.error(self.full(key), span, format!("{s:?} is not one of {}", choices.join(", ")));
            default.to_string()
        }
    }

    /// Checks a string value with `check`, which returns an explanation when it is wrong.
    pub fn checked_str(
        &mut self,
        r: &mut Reader<'_>,
        key: &'static str,
        value: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) {
        let is_str = self.table.and_then(|t| t.get(key)).is_some_and(|i| i.as_str().is_some());
        if !is_str {
            return; // missing or of the wrong type: already reported
        }
        if let Err(msg) = check(value) {
            let span = self.get(key).and_then(|(_, s)| s);
            r.error(self.full(key), span, msg);
        }
    }

    /// An optional integer within `range`.
    pub fn opt_int(
        &mut self,
        r: &mut Reader<'_>,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let (v, span) = self.get(key)?;
        match v.as_integer() {
            Some(i) if range.contains(&i) => Some(i),
            Some(i) => {
                r.error(self.full(key), span, format!("{i} is out of range ({}..={})", range.start(), range.end()));
                None
            }
            None => {
                self.wrong_type(r, key, "an integer", v, span);
                None
            }
        }
    }

    /// An integer with a default.
    pub fn int_or(
        &mut self,
        r: &mut Reader<'_>,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        self.opt_int(r, key, range).unwrap_or(default)
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, r: &mut Reader<'_>, key: &'static str) -> Option<bool> {
        let (v, span) = self.get(key)?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong_type(r, key, "true or false", v, span);
                None
            }
        }
    }

    /// A boolean with a default.
    pub fn bool_or(&mut self, r: &mut Reader<'_>, key: &'static str, default: bool) -> bool {
        self.opt_bool(r, key).unwrap_or(default)
    }

    /// A list of strings (missing = empty).
    pub fn str_list(&mut self, r: &mut Reader<'_>, key: &'static str) -> Vec<String> {
        let Some((v, span)) = self.get(key) else { return Vec::new() };
        let Some(arr) = v.as_array() else {
            self.wrong_type(r, key, "a list of strings", v, span);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in arr.iter() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => r.error(
                    self.full(key),
                    item.span().or(span.clone()),
                    format!("expected a string, found {}", item.type_name()),
                ),
            }
        }
        out
    }

    /// Reports keys that no reader asked for.
    pub fn finish(self, r: &mut Reader<'_>) {
        let Some(t) = self.table else { return };
        for (k, item) in t.iter() {
            if !self.used.contains(&k) {
                let span = t.key(k).and_then(|key| key.span()).or_else(|| item.span());
                let known = self.used.join(", ");
                let message = match did_you_mean(k, &self.used) {
                    Some(m) => format!("unknown setting: did you mean {m}? (known here: {known})"),
                    None => format!("unknown setting (known here: {known})"),
                };
                r.error(format!("{}.{k}", self.name), span, message);
            }
        }
    }
}
