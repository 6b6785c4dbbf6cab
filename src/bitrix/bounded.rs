//! JSON read within a budget. A portal answer of 4 MB can hold half a million values, and a
//! `serde_json::Value` costs some 80 bytes each (more with their maps): read whole, one answer
//! would take ten times its size in memory. No tool passes on more than a few thousand items, and
//! `bitrix24_call` passes on at most 100 KiB of JSON, so the envelope's `result` keeps at most
//! [`RESULT_VALUES`] values, skips the rest unread into memory (still checked to be JSON), and
//! says that it did. The other top-level fields (`time`, `total`, `next`, `error`, …) share a
//! small budget of their own, so a flood in `result` never costs the paging fields.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The most values kept of a `result`: more than any 100 KiB of JSON can hold (each value takes
/// at least two bytes, its comma included), so every result `bitrix24_call` could pass on is
/// kept whole.
pub const RESULT_VALUES: usize = 64 * 1024;

/// The most values kept of all the other top-level fields together.
const SIDE_VALUES: usize = 4096;

/// A body read within the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub value: Value,
    /// Whether values of `result` were left out.
    pub cut: bool,
}

/// Reads a complete body: an object's `result` within [`RESULT_VALUES`], everything else within
/// a small budget. Invalid JSON (anywhere, skipped parts included) is an error.
pub fn parse(body: &[u8]) -> serde_json::Result<Parsed> {
    let result = Budget::new(RESULT_VALUES);
    let side = Budget::new(SIDE_VALUES);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let value = if object {
        (&mut reader).deserialize_map(Top {
            result: &result,
            side: &side,
        })?
    } else {
        Node(&side).deserialize(&mut reader)?
    };
    reader.end()?;
    Ok(Parsed {
        value,
        cut: result.cut.get(),
    })
}

/// Values still to be kept, and whether any were left out.
struct Budget {
    left: Cell<usize>,
    cut: Cell<bool>,
}

impl Budget {
    fn new(values: usize) -> Self {
        Self {
            left: Cell::new(values),
            cut: Cell::new(false),
        }
    }

    /// Counts one more value kept, or says there is no room for it.
    fn spend(&self) -> bool {
        match self.left.get() {
            0 => {
                self.cut.set(true);
                false
            }
            left => {
                self.left.set(left - 1);
                true
            }
        }
    }
}

/// The top-level object: `result` on its own budget, the rest on the side budget.
struct Top<'b> {
    result: &'b Budget,
    side: &'b Budget,
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "result" {
                let value = map.next_value_seed(Node(self.result))?;
                object.insert(key, value);
            } else if self.side.spend() {
                let value = map.next_value_seed(Node(self.side))?;
                object.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(object))
    }
}

/// Any value, its arrays and objects kept while the budget lasts.
struct Node<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity (serde_json refuses an overflowing literal).
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            if self.0.left.get() > 0 {
                match seq.next_element_seed(Node(self.0))? {
                    Some(item) => {
                        self.0.spend();
                        items.push(item);
                    }
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_some() {
                self.0.cut.set(true);
            } else {
                break;
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        loop {
            if self.0.left.get() > 0 {
                let Some(key) = map.next_key::<String>()? else {
                    break;
                };
                let value = map.next_value_seed(Node(self.0))?;
                self.0.spend();
                object.insert(key, value);
            } else if map.next_key::<IgnoredAny>()?.is_some() {
                map.next_value::<IgnoredAny>()?;
                self.0.cut.set(true);
            } else {
                break;
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whole(body: &str) -> Value {
        let parsed = parse(body.as_bytes()).unwrap();
        assert!(!parsed.cut, "{body}");
        parsed.value
    }

    #[test]
    fn within_the_budget_it_reads_what_serde_json_reads() {
        for body in [
            r#"{"result":[99,"1269",-5,1.5,2e300,true,null,{"a":{"b":[]}}],"total":3,"next":2}"#,
            r#"{"result":{"z":1,"a":2,"z":3},"time":{"operating":0.5}}"#,
            r#"{"error":"ACCESS_ERROR","error_description":"Ünïcode \u001b"}"#,
            r#"  [1,2,3] "#,
            r#""text""#,
            "18446744073709551615",
        ] {
            let expected: Value = serde_json::from_str(body).unwrap();
            assert_eq!(whole(body), expected, "{body}");
        }
    }

    #[test]
    fn invalid_json_is_an_error_even_in_the_skipped_part() {
        let ids: Vec<String> = (0..RESULT_VALUES + 10).map(|i| i.to_string()).collect();
        for body in [
            format!(r#"{{"result":[{}, x]}}"#, ids.join(",")),
            format!(r#"{{"result":[{}]}} trailing"#, ids.join(",")),
            r#"{"result":[1,2"#.to_owned(),
            r#"{"result":[1e400]}"#.to_owned(),
            String::new(),
        ] {
            assert!(parse(body.as_bytes()).is_err(), "{:.80}", body);
        }
    }

    #[test]
    fn a_huge_result_keeps_the_budget_and_says_it_was_cut() {
        let ids: Vec<String> = (1_000_000..1_500_000).map(|i: u32| i.to_string()).collect();
        let body = format!(
            r#"{{"result":[{}],"total":500000,"next":50,"time":{{"operating":1}}}}"#,
            ids.join(",")
        );
        assert!(body.len() > 3_900_000);
        let parsed = parse(body.as_bytes()).unwrap();
        assert!(parsed.cut);
        let kept = parsed.value["result"].as_array().unwrap();
        assert_eq!(kept.len(), RESULT_VALUES);
        assert_eq!(kept[0], json!(1_000_000));
        assert_eq!(parsed.value["total"], json!(500000));
        assert_eq!(parsed.value["next"], json!(50));
        assert_eq!(parsed.value["time"]["operating"], json!(1));
    }

    #[test]
    fn nested_floods_and_side_fields_are_bounded_too() {
        let objects = format!(
            r#"{{"result":{{"list":[{}]}},"junk":[{}],"next":7}}"#,
            vec![r#"{"id":1,"name":"x"}"#; 40_000].join(","),
            vec!["0"; 10_000].join(","),
        );
        let parsed = parse(objects.as_bytes()).unwrap();
        assert!(parsed.cut);
        let list = parsed.value["result"]["list"].as_array().unwrap();
        // Each kept object costs itself and its two fields.
        assert!(list.len() <= RESULT_VALUES / 3 + 1, "{}", list.len());
        assert!(parsed.value["junk"].as_array().unwrap().len() < SIDE_VALUES);
        // The side budget ran out before `next`: a hostile body loses its own paging.
        assert_eq!(parsed.value.get("next"), None);
    }
}
