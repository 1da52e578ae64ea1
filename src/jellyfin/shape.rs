//! Which parts of a JSON answer a DTO reads, found from the DTO's own `Deserialize` (its
//! derived field names, after `rename`), so that the list can never drift from the DTOs: a
//! probe deserializer hands the DTO one of each field and records what each asked for.
//! [`super::skim`] keeps those parts of an answer and skips the rest.

use std::any::TypeId;
use std::sync::Mutex;

use serde::de::value::{Error, StrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// What a DTO reads of a JSON value.
#[derive(Debug, PartialEq)]
pub enum Shape {
    /// The whole value (a string, number, map or free JSON): handed to serde as it is.
    Whole,
    /// An object of which only these keys are read (serde ignores every other key).
    Object(Vec<(&'static str, Shape)>),
    /// An array whose every element is read as this.
    Array(Box<Shape>),
}

/// Deeper than any DTO: a recursive type would otherwise probe forever.
const MAX_DEPTH: usize = 16;

/// The shape `T` reads, or [`Shape::Whole`] when the probe cannot tell (an enum, a flattened
/// struct, a type that needs a particular value): then nothing is skipped.
pub fn of<T: DeserializeOwned>() -> Shape {
    let mut shape = Shape::Whole;
    match T::deserialize(Probe {
        out: &mut shape,
        depth: 0,
    }) {
        Ok(_) => shape,
        Err(_) => Shape::Whole,
    }
}

/// [`of`], probed once per type for the life of the process (a handful of DTOs).
pub fn cached<T: DeserializeOwned + 'static>() -> &'static Shape {
    static SHAPES: Mutex<Vec<(TypeId, &'static Shape)>> = Mutex::new(Vec::new());
    let id = TypeId::of::<T>();
    let mut shapes = SHAPES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, shape)) = shapes.iter().find(|(t, _)| *t == id) {
        return shape;
    }
    let shape: &'static Shape = Box::leak(Box::new(of::<T>()));
    shapes.push((id, shape));
    shape
}

struct Probe<'a> {
    out: &'a mut Shape,
    depth: usize,
}

impl Probe<'_> {
    fn deeper(&self) -> Result<usize, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("too deep"));
        }
        Ok(self.depth + 1)
    }
}

/// Leaves: the value is read whole; the visitor gets a neutral value of its own type.
macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            *self.out = Shape::Whole;
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Error;

    leaf! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char(' '),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
        deserialize_unit => visit_unit(),
        deserialize_identifier => visit_str(""),
        deserialize_ignored_any => visit_unit(),
        deserialize_any => visit_unit(),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let depth = self.deeper()?;
        let mut element = Shape::Whole;
        let value = visitor.visit_seq(OneElement {
            out: Some(&mut element),
            depth,
        })?;
        *self.out = Shape::Array(Box::new(element));
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A map reads every key: whole.
        *self.out = Shape::Whole;
        visitor.visit_map(de::value::MapDeserializer::new(std::iter::empty::<(
            &str,
            &str,
        )>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let depth = self.deeper()?;
        let mut shapes = Vec::with_capacity(fields.len());
        let value = visitor.visit_map(EveryField {
            names: fields,
            shapes: &mut shapes,
            depth,
        })?;
        *self.out = Shape::Object(shapes);
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom("tuples are not probed"))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom("tuples are not probed"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom("enums are not probed"))
    }
}

/// A struct's fields, each once, each value probed.
struct EveryField<'a> {
    names: &'static [&'static str],
    shapes: &'a mut Vec<(&'static str, Shape)>,
    depth: usize,
}

impl<'de> de::MapAccess<'de> for EveryField<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.names.get(self.shapes.len()) else {
            return Ok(None);
        };
        let key: StrDeserializer<Error> = name.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let name = self
            .names
            .get(self.shapes.len())
            .ok_or_else(|| de::Error::custom("value without key"))?;
        let mut shape = Shape::Whole;
        let value = seed.deserialize(Probe {
            out: &mut shape,
            depth: self.depth,
        })?;
        self.shapes.push((name, shape));
        Ok(value)
    }
}

/// An array of one element, probed.
struct OneElement<'a> {
    out: Option<&'a mut Shape>,
    depth: usize,
}

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        match self.out.take() {
            Some(out) => seed
                .deserialize(Probe {
                    out,
                    depth: self.depth,
                })
                .map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jellyfin::dto::{PlayState, Session, User};

    #[test]
    fn the_fields_a_dto_reads_by_their_json_names() {
        assert_eq!(
            of::<PlayState>(),
            Shape::Object(vec![
                ("IsPaused", Shape::Whole),
                ("PlayMethod", Shape::Whole),
                ("PositionTicks", Shape::Whole),
            ])
        );
        let Shape::Array(session) = of::<Vec<Session>>() else {
            panic!("an array");
        };
        let Shape::Object(fields) = *session else {
            panic!("an object");
        };
        let names: Vec<_> = fields.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "Id",
                "UserId",
                "UserName",
                "Client",
                "RemoteEndPoint",
                "NowPlayingItem",
                "PlayState",
                "TranscodingInfo"
            ]
        );
        // `rename = "Type"` and nested arrays of objects.
        let Some((_, Shape::Object(item))) = fields.iter().find(|f| f.0 == "NowPlayingItem") else {
            panic!("NowPlayingItem is an object");
        };
        assert!(item.iter().any(|f| f.0 == "Type"));
        assert!(matches!(
            item.iter().find(|f| f.0 == "MediaStreams"),
            Some((_, Shape::Array(s))) if matches!(**s, Shape::Object(_))
        ));
        assert!(matches!(of::<Vec<User>>(), Shape::Array(_)));
    }

    #[test]
    fn what_cannot_be_probed_is_read_whole() {
        assert_eq!(of::<serde_json::Value>(), Shape::Whole);
        assert_eq!(
            of::<std::collections::BTreeMap<String, String>>(),
            Shape::Whole
        );
        assert_eq!(of::<(u32, u32)>(), Shape::Whole);
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Deep {
            next: Option<Box<Deep>>,
        }
        assert_eq!(of::<Deep>(), Shape::Whole);
    }
}
