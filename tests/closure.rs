//! `closure!`: captured variables travel as a generated serde struct.

use std::collections::HashMap;

use dilly::{Func, closure, func_of};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    scale: u64,
    tag: String,
}

fn resend<A: 'static, R: 'static>(f: &Func<A, R>) -> Func<A, R> {
    dilly::from_bytes(&dilly::to_bytes(f).unwrap()).unwrap()
}

#[test]
fn zero_captures() {
    let f = closure!(|x: u64, y: u64| x * y);
    assert_eq!(resend(&f).call((6, 7)), 42);
    assert!(f.state().is_empty());
}

#[test]
fn move_closure_with_copy_and_collection_captures() {
    let offset = 10u64;
    let names = vec!["alpha".to_string(), "beta".to_string(), "gamma".to_string()];
    let f =
        closure!([offset: u64, names: Vec<String>] move |x: u64| x + offset + names.len() as u64);
    let g = resend(&f);
    assert_eq!(g.call((29,)), 42);
    assert_eq!(g.call((0,)), 13, "state survives many calls");
}

#[test]
fn non_move_closure_clones_so_the_variables_stay_usable() {
    let words = vec!["a".to_string(), "bb".to_string()];
    let f = closure!([words: Vec<String>] |i: usize| words[i].clone());
    assert_eq!(resend(&f).call((1,)), "bb");
    assert_eq!(words.len(), 2);
}

#[test]
fn user_struct_hashmap_and_string_captures() {
    let config = Config {
        scale: 3,
        tag: "t".into(),
    };
    let table: HashMap<String, u64> = HashMap::from([("a".into(), 14)]);
    let suffix = String::from("!");
    let f = closure!([config: Config, table: HashMap<String, u64>, suffix: String]
    move |key: String| -> String {
        let n = table.get(&key).copied().unwrap_or(0) * config.scale;
        format!("{}{n}{}", config.tag, suffix)
    });
    assert_eq!(resend(&f).call(("a".into(),)), "t42!");
}

#[test]
fn captures_inside_macros_nested_closures_and_shorthand_fields() {
    let base = 40u64;
    let label = String::from("sum");
    let f = closure!([base: u64, label: String] move |xs: Vec<u64>| {
        let total: u64 = xs.iter().map(|x| x + base).sum();
        let config = Config { scale: total, tag: label.clone() };
        assert!(total >= base, "total {} below {}", total, base);
        format!("{}={}", config.tag, vec![config.scale][0])
    });
    assert_eq!(resend(&f).call((vec![1, 1],)), "sum=82");
}

#[test]
fn locals_shadow_nothing_and_parameters_may_be_patterns() {
    let k = 2u64;
    let f = closure!([k: u64] move |(a, b): (u64, u64)| {
        let doubled = a * k;
        doubled + b
    });
    assert_eq!(resend(&f).call(((20, 2),)), 42);
}

#[test]
fn a_closure_can_capture_another_function_value() {
    #[dilly::func]
    fn double(x: u64) -> u64 {
        x * 2
    }
    let inner = func_of!(double);
    let f = closure!([inner: Func<(u64,), u64>] move |x: u64| inner.call((x,)) + 1);
    assert_eq!(resend(&f).call((20,)), 41);
}

#[test]
fn readable_form_shows_the_captures() {
    let offset = 7u64;
    let f = closure!([offset: u64] move |x: u64| x + offset);
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["state"], serde_json::json!({"offset": 7}));
    // The same closure text stands in another function of this file, so each is
    // named by its function.
    assert!(
        json["fn"]
            .as_str()
            .unwrap()
            .starts_with("closure::readable_form_shows_the_captures::{closure#"),
        "{json}"
    );
    let g: Func<(u64,), u64> = serde_json::from_value(json).unwrap();
    assert_eq!(g.call((35,)), 42);
}

#[test]
fn identical_closures_share_one_registration() {
    let a = closure!(|x: u64| x + 1);
    let b = closure!(|x: u64| x + 1);
    let c = closure!(|x: u64| x + 2);
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    assert!(dilly::registry::duplicates().is_empty());
}

#[test]
fn captured_state_is_checked_on_receipt() {
    let offset = 7u64;
    let f = closure!([offset: u64] move |x: u64| x + offset);
    let mut bytes = dilly::to_bytes(&f).unwrap();
    // The state is the last field: a varint 7. Make it claim more bytes than exist.
    let n = bytes.len();
    bytes[n - 2] = 5;
    let err = dilly::from_bytes::<Func<(u64,), u64>>(&bytes).unwrap_err();
    assert!(err.is_bad_input(), "{err}");
}

mod settings {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub(crate) struct Settings {
        pub(crate) step: u64,
    }
}

#[test]
fn captures_named_like_a_module_or_of_a_local_type() {
    #[derive(Serialize, Deserialize)]
    struct Local {
        base: u64,
    }
    let settings = settings::Settings { step: 2 };
    let local = Local { base: 40 };
    let f = closure!([settings: settings::Settings, local: Local] move |x: u64| {
        local.base + settings.step * x
    });
    assert_eq!(resend(&f).call((1,)), 42);
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(
        json["state"],
        serde_json::json!({"settings": {"step": 2}, "local": {"base": 40}})
    );
}
