//! `roomcast config get KEY`: one value of a TOML file (roomcast.toml or the board file) as the
//! daemon's parser reads it, for the init scripts. Same TOML parser and the same syntax error
//! (key and line) as [`super::Config::parse`], so init and `check-config` cannot disagree.
//!
//! Output form: a string without its quotes (basic, literal, multi-line), an integer in
//! decimal, a float and a boolean in TOML's canonical form, a date-time as in TOML, an array
//! one element per line (each element in the same form).

use toml_edit::{Document, Item, Key, Value};

use super::check::ConfigError;

/// What [`get`] found at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The value, as lines to print (one for a scalar, one per element for an array).
    Value(Vec<String>),
    /// The key (or its section) is not in the file.
    NotSet,
    /// The key names a table, not a value.
    Table,
}

/// Parses `src` as TOML; a syntax error is one [`ConfigError`] with key `toml` and its line
/// (what `check-config` prints).
pub fn parse_document(src: &str) -> Result<Document<&str>, ConfigError> {
    Document::parse(src).map_err(|e| super::text::syntax_error(src, e.message().trim(), e.span().map(|s| s.start)))
}

/// Looks up `key` (`section.key`, any TOML dotted key) in `src`. `Err` is a TOML syntax error
/// of the file (or a `key` that is not a TOML key, reported with line 0).
pub fn get(src: &str, key: &str) -> Result<Lookup, ConfigError> {
    let parts = Key::parse(key).map_err(|e| ConfigError {
        key: key.to_string(),
        line: 0,
        message: format!("not a TOML key: {}", e.message().trim()),
    })?;
    let doc = parse_document(src)?;
    let mut item: &Item = doc.as_item();
    for part in &parts {
        match item.get(part.get()) {
            Some(next) => item = next,
            None => return Ok(Lookup::NotSet),
        }
    }
    Ok(match item {
        Item::None => Lookup::NotSet,
        Item::Table(_) | Item::ArrayOfTables(_) | Item::Value(Value::InlineTable(_)) => Lookup::Table,
        Item::Value(Value::Array(a)) => Lookup::Value(a.iter().map(scalar).collect()),
        Item::Value(v) => Lookup::Value(vec![scalar(v)]),
    })
}

/// One value in the output form of the module doc.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.value().clone(),
        Value::Integer(i) => i.value().to_string(),
        Value::Float(f) => float(*f.value()),
        Value::Boolean(b) => b.value().to_string(),
        Value::Datetime(d) => d.value().to_string(),
        // Nested arrays and inline tables: their TOML text, without comments and spacing.
        Value::Array(_) | Value::InlineTable(_) => v.clone().decorated("", "").to_string(),
    }
}

/// A float in TOML's canonical form: always with a fraction or exponent, `inf`, `-inf`, `nan`.
fn float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f:?}") // Debug keeps ".0" and uses exponents for huge and tiny values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(src: &str, key: &str) -> Vec<String> {
        match get(src, key) {
            Ok(Lookup::Value(v)) => v,
            other => panic!("{key} in {src:?}: {other:?}"),
        }
    }

    #[test]
    fn single_quoted_strings_are_read_without_quotes() {
        let src = "[network]\nmode = 'static'\nhostname = 'blue'\naddress = \"10.0.2.15/24\" # a comment\n";
        assert_eq!(val(src, "network.mode"), ["static"]);
        assert_eq!(val(src, "network.hostname"), ["blue"]);
        assert_eq!(val(src, "network.address"), ["10.0.2.15/24"]);
    }

    #[test]
    fn multi_line_arrays_give_one_element_per_line() {
        let src = "[network]\nntp = [\n  \"a\", # first\n  'b',\n]\ndns = []\n";
        assert_eq!(val(src, "network.ntp"), ["a", "b"]);
        assert!(val(src, "network.dns").is_empty());
    }

    #[test]
    fn multi_line_strings_and_escapes() {
        let src = "[room]\nname = \"\"\"\nBlue\\troom\"\"\"\nnote = '''\nraw \\n'''\n";
        assert_eq!(val(src, "room.name"), ["Blue\troom"]);
        assert_eq!(val(src, "room.note"), ["raw \\n"]);
    }

    #[test]
    fn numbers_and_booleans_in_canonical_form() {
        let src = "[devices]\ni2c_address = 0x3D\nbig = 1_000\nf = 2.0\ng = 1e300\nn = -inf\nok = true\n";
        assert_eq!(val(src, "devices.i2c_address"), ["61"]);
        assert_eq!(val(src, "devices.big"), ["1000"]);
        assert_eq!(val(src, "devices.f"), ["2.0"]);
        assert_eq!(val(src, "devices.g"), ["1e300"]);
        assert_eq!(val(src, "devices.n"), ["-inf"]);
        assert_eq!(val(src, "devices.ok"), ["true"]);
    }

    #[test]
    fn dotted_keys_and_inline_tables_are_found() {
        let src = "network.mode = \"static\"\n[a]\nb = { c = 'x' }\n";
        assert_eq!(val(src, "network.mode"), ["static"]);
        assert_eq!(val(src, "a.b.c"), ["x"]);
        assert_eq!(get(src, "a.b"), Ok(Lookup::Table));
        assert_eq!(get(src, "a"), Ok(Lookup::Table));
    }

    #[test]
    fn missing_section_or_key_is_not_set() {
        let src = "[network]\nmode = \"dhcp\"\n";
        assert_eq!(get(src, "network.address"), Ok(Lookup::NotSet));
        assert_eq!(get(src, "devices.watchdog"), Ok(Lookup::NotSet));
        assert_eq!(get(src, "network.mode.x"), Ok(Lookup::NotSet));
    }

    #[test]
    fn syntax_errors_match_the_config_checker() {
        let src = "[network]\nmode = \"static\"\nhostname = blue\n";
        let err = get(src, "network.mode").unwrap_err();
        let checker = super::super::Config::parse(src, &Default::default()).unwrap_err();
        assert_eq!(vec![err.clone()], checker);
        assert_eq!((err.key.as_str(), err.line), ("toml", 3));
    }

    #[test]
    fn a_bad_key_argument_is_an_error_not_a_panic() {
        assert!(get("", "a..b").is_err());
        assert!(get("", "").is_err());
    }
}
