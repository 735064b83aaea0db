//! Type-erased user values: `Box<dyn Object>` and task objects.

use std::any::Any;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, Header};
use crate::entry::{Entry, Kind, Object, Ops, Task};
use crate::error::{Error, Result};
use crate::func::{Bytes, Func, de_error};
use crate::registry;

impl dyn Object {
    /// The registered name of the value's type, e.g. `my_app::Point`.
    pub fn type_name(&self) -> &'static str {
        self.__dilly_entry().name()
    }

    /// True if the value is a `T`.
    pub fn is<T: Object>(&self) -> bool {
        (self as &dyn Any).is::<T>()
    }

    /// The value as a `T`, if it is one.
    pub fn downcast_ref<T: Object>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }

    /// The value as a mutable `T`, if it is one.
    pub fn downcast_mut<T: Object>(&mut self) -> Option<&mut T> {
        (self as &mut dyn Any).downcast_mut()
    }

    /// The boxed value as a `Box<T>`, or the box back when it is not a `T`.
    pub fn downcast<T: Object>(self: Box<Self>) -> Result<Box<T>, Box<dyn Object>> {
        if self.is::<T>() {
            let any: Box<dyn Any> = self;
            match any.downcast::<T>() {
                Ok(value) => Ok(value),
                Err(_) => unreachable!("`is` and `downcast` disagree"),
            }
        } else {
            Err(self)
        }
    }
}

impl fmt::Debug for dyn Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Object({})", self.type_name())
    }
}

impl Serialize for dyn Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = self.__dilly_entry();
        let value: &dyn erased_serde::Serialize = self;
        if serializer.is_human_readable() {
            let mut s = serializer.serialize_struct("Object", 2)?;
            s.serialize_field("type", entry.name())?;
            s.serialize_field("value", value)?;
            s.end()
        } else {
            if entry.shapes().state().needs_self_description()
                && let Some(message) = codec::needs_self_description_here()
            {
                return Err(serde::ser::Error::custom(message));
            }
            let mut t = serializer.serialize_tuple(2)?;
            t.serialize_element(&Bytes(&codec::object_header(entry.id(), entry.shape())))?;
            t.serialize_element(value)?;
            t.end()
        }
    }
}

impl<'de> Deserialize<'de> for Box<dyn Object> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_struct("Object", &["type", "value"], ObjectVisitor)
        } else {
            deserializer.deserialize_tuple(2, ObjectVisitor)
        }
    }
}

struct ObjectVisitor;

fn type_entry(entry: &'static Entry) -> Result<&'static Entry> {
    match entry.ops() {
        Ops::Object { .. } => Ok(entry),
        Ops::Func { .. } => Err(entry.wrong_kind(Kind::Type.describe())),
    }
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Box<dyn Object>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dilly object: (type id, value)")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let header: Header = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &"2 fields"))?;
        if header.len == codec::V1_OBJECT_HEADER_LEN {
            return Err(de_error(Error::OlderFormat {
                found: 1,
                supported: codec::VERSION,
            }));
        }
        if header.len != codec::OBJECT_HEADER_LEN {
            return Err(de::Error::invalid_length(
                header.len,
                &"a 16-byte type ID and shape hash",
            ));
        }
        let (id, shape) = header.object();
        let entry = registry::lookup(id)
            .and_then(type_entry)
            .and_then(|entry| entry.check_shape(shape).map(|()| entry))
            .map_err(de_error)?;
        seq.next_element_seed(ObjectSeed(entry))?
            .ok_or_else(|| de::Error::invalid_length(1, &"2 fields"))
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut entry = None;
        let mut value = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => {
                    let name: String = map.next_value()?;
                    entry = Some(
                        registry::lookup_name(&name)
                            .and_then(type_entry)
                            .map_err(de_error)?,
                    );
                }
                "value" => {
                    let Some(entry) = entry else {
                        return Err(de::Error::custom(
                            "dilly: the `type` field must come before `value`",
                        ));
                    };
                    value = Some(map.next_value_seed(ObjectSeed(entry))?);
                }
                other => return Err(de::Error::unknown_field(other, &["type", "value"])),
            }
        }
        value.ok_or_else(|| de::Error::missing_field("value"))
    }
}

struct ObjectSeed(&'static Entry);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Box<dyn Object>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let Ops::Object { deserialize } = self.0.ops() else {
            return Err(de_error(self.0.wrong_kind("type")));
        };
        let mut erased = <dyn erased_serde::Deserializer>::erase(deserializer);
        deserialize(&mut erased).map_err(de::Error::custom)
    }
}

impl<A: 'static, R: 'static> Func<A, R> {
    /// The sendable function value of a task object.
    ///
    /// # Panics
    ///
    /// If the task's `Serialize` impl fails.
    pub fn from_task<T>(task: T) -> Func<A, R>
    where
        T: Task<Args = A, Output = R> + crate::private::RegisteredTask + Serialize,
        T: serde::de::DeserializeOwned,
        A: serde::de::DeserializeOwned,
        R: Serialize + serde::de::DeserializeOwned,
    {
        crate::private::shared_value(T::__dilly_task_entry(), task, |t: &T, args: A| t.call(args))
    }
}
