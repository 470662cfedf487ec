//! Integers in request bodies as JSON Schema defines them: any number with a zero
//! fractional part (`50` and `50.0` alike), within the target type's range. serde alone
//! refuses `50.0` for an integer field, which rejects a request the document allows.

use serde::de::{Deserialize, Deserializer, Error};

/// For `#[serde(default, deserialize_with = "integer::optional")]` on `Option<T>` fields.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Option::<serde_json::Number>::deserialize(d)?
        .map(|n| from_number(&n))
        .transpose()
}

/// For `#[serde(deserialize_with = "integer::required")]`.
pub fn required<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    from_number(&serde_json::Number::deserialize(d)?)
}

fn from_number<E: Error, T: TryFrom<i64> + TryFrom<u64>>(n: &serde_json::Number) -> Result<T, E> {
    let out_of_range = || E::custom(format!("integer {n} out of range"));
    if let Some(u) = n.as_u64() {
        return T::try_from(u).map_err(|_| out_of_range());
    }
    if let Some(i) = n.as_i64() {
        return T::try_from(i).map_err(|_| out_of_range());
    }
    match n.as_f64() {
        // Integral and exactly representable: |x| < 2^63 keeps the cast exact.
        Some(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => {
            T::try_from(x as i64).map_err(|_| out_of_range())
        }
        _ => Err(E::custom(format!("expected an integer, got {n}"))),
    }
}

/// A whole body with every integral number (`2.0`) made an integer, for bodies read
/// into types whose integer fields cannot carry the attribute (shared with the CLI).
pub fn integral(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && (0.0..1.8e19).contains(&x) => Value::from(x as u64),
            Some(x) if x.fract() == 0.0 && (-9.2e18..0.0).contains(&x) => Value::from(x as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional")]
        k: Option<usize>,
        #[serde(deserialize_with = "super::required")]
        ts: i64,
    }

    fn parse(s: &str) -> Result<Body, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_are_integers_whatever_their_spelling() {
        let b = parse(r#"{"k": 74.0, "ts": -4192718.0}"#).unwrap();
        assert_eq!((b.k, b.ts), (Some(74), -4192718));
        let b = parse(r#"{"ts": 1e3}"#).unwrap();
        assert_eq!((b.k, b.ts), (None, 1000));
        assert_eq!(parse(r#"{"k": null, "ts": 0}"#).unwrap().k, None);
        assert!(
            parse(r#"{"k": 7.5, "ts": 0}"#)
                .unwrap_err()
                .contains("expected an integer")
        );
        assert!(
            parse(r#"{"k": -1, "ts": 0}"#)
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse(r#"{"ts": 1e30}"#).is_err());
        assert!(parse(r#"{"ts": "3"}"#).is_err());
    }

    #[test]
    fn integral_numbers_in_a_whole_body_become_integers() {
        let body = serde_json::json!({"a": 2.0, "b": [1e3, 2.5, -4.0], "c": {"d": 7}});
        assert_eq!(
            super::integral(body),
            serde_json::json!({"a": 2, "b": [1000, 2.5, -4], "c": {"d": 7}})
        );
    }
}
