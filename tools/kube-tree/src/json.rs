//! JSON output: a small builder for the tools' records, written out by serde_json.

/// A JSON value built by hand.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }
    pub fn opt_str(s: Option<impl Into<String>>) -> Json {
        s.map(|s| Json::Str(s.into())).unwrap_or(Json::Null)
    }
    pub fn strs<S: Into<String>>(v: impl IntoIterator<Item = S>) -> Json {
        Json::Arr(v.into_iter().map(|s| Json::Str(s.into())).collect())
    }

    /// Compact JSON text (serde_json writes it: escaping, numbers), keys in insertion order.
    pub fn render(&self) -> String {
        serde_json::to_string(&self.value()).expect("a JSON value always serializes")
    }

    fn value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            // Counts and sizes stay integers (`3`, not `3.0`).
            Json::Num(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::from(*n as i64),
            Json::Num(n) => serde_json::Number::from_f64(*n).map(Value::Number).unwrap_or(Value::Null),
            Json::Str(s) => Value::String(s.clone()),
            Json::Arr(items) => Value::Array(items.iter().map(Json::value).collect()),
            Json::Obj(pairs) => Value::Object(pairs.iter().map(|(k, v)| (k.clone(), v.value())).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_values_with_escapes() {
        let j = Json::obj([
            ("a", Json::str("x\"y\\z\n\u{1}")),
            ("b", Json::Arr(vec![Json::Num(1.5), Json::Bool(false), Json::Null])),
            ("c", Json::obj::<&str>([])),
        ]);
        assert_eq!(j.render(), r#"{"a":"x\"y\\z\n\u0001","b":[1.5,false,null],"c":{}}"#);
        assert_eq!(Json::Num(3.0).render(), "3");
    }
}
