//! `#[derive(Dilly)]`: values of registered types travel as `Box<dyn Object>`.

use dilly::{Func, Object, Task};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, dilly::Dilly)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, dilly::Dilly)]
#[dilly(name = "derive::Renamed")]
enum Event {
    Click { at: (i32, i32) },
    Key(char),
    Quit,
}

#[derive(Serialize, Deserialize, dilly::Dilly)]
#[dilly(task)]
struct Power {
    exponent: u32,
}

impl Task for Power {
    type Args = (u64,);
    type Output = u64;
    fn call(&self, (base,): (u64,)) -> u64 {
        base.pow(self.exponent)
    }
}

#[test]
fn heterogeneous_values_round_trip_in_bincode_and_json() {
    let values: Vec<Box<dyn Object>> = vec![
        Box::new(Point { x: 1, y: 2 }),
        Box::new(Event::Click { at: (3, 4) }),
        Box::new(Event::Key('k')),
        Box::new(Event::Quit),
    ];
    let bytes = dilly::to_bytes(&values).unwrap();
    let back: Vec<Box<dyn Object>> = dilly::from_bytes(&bytes).unwrap();
    assert_eq!(back[0].downcast_ref::<Point>(), Some(&Point { x: 1, y: 2 }));
    assert_eq!(
        back[1].downcast_ref::<Event>(),
        Some(&Event::Click { at: (3, 4) })
    );
    assert_eq!(back[2].downcast_ref::<Event>(), Some(&Event::Key('k')));
    assert_eq!(back[3].type_name(), "derive::Renamed");

    let json = serde_json::to_string(&values).unwrap();
    assert!(
        json.starts_with(r#"[{"type":"derive::Point","value":{"x":1,"y":2}}"#),
        "{json}"
    );
    let back: Vec<Box<dyn Object>> = serde_json::from_str(&json).unwrap();
    assert!(back[3].is::<Event>());
}

#[test]
fn downcast_hands_back_the_box_on_the_wrong_type() {
    let value: Box<dyn Object> = Box::new(Point { x: 0, y: 0 });
    let value = value.downcast::<Event>().unwrap_err();
    let point = value.downcast::<Point>().unwrap();
    assert_eq!(*point, Point { x: 0, y: 0 });
}

#[test]
fn unknown_type_is_a_typed_error() {
    let json = r#"{"type":"derive::Missing","value":{}}"#;
    let err = serde_json::from_str::<Box<dyn Object>>(json).unwrap_err();
    assert!(err.to_string().contains("`derive::Missing`"), "{err}");

    let mut bytes = dilly::to_bytes(&(Box::new(Point { x: 0, y: 0 }) as Box<dyn Object>)).unwrap();
    bytes[2] ^= 0xff; // corrupt the type ID (after the version and its length byte)
    let err = dilly::from_bytes::<Box<dyn Object>>(&bytes).unwrap_err();
    assert!(matches!(err, dilly::Error::UnknownSymbol { .. }), "{err}");
}

#[test]
fn task_objects_are_function_values() {
    let f = Func::from_task(Power { exponent: 2 });
    assert_eq!(f.name(), "derive::Power::call");
    let g: Func<(u64,), u64> = dilly::from_bytes(&dilly::to_bytes(&f).unwrap()).unwrap();
    assert_eq!(g.call((7,)), 49);
    // The same value is also an object.
    let object: Box<dyn Object> = Box::new(Power { exponent: 3 });
    assert_eq!(object.type_name(), "derive::Power");
}
