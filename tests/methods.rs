//! `#[dilly::methods]` and `bind!`: bound methods carry their receiver's state.

use dilly::{Func, bind, func_of};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    count: u64,
    history: Vec<u64>,
}

#[dilly::methods]
impl Counter {
    fn peek(&self) -> u64 {
        self.count
    }

    fn add(&mut self, n: u64) -> u64 {
        self.count += n;
        self.history.push(n);
        self.count
    }

    fn finish(self, extra: u64) -> Vec<u64> {
        let mut h = self.history;
        h.push(extra);
        h
    }

    fn zero() -> Self {
        Counter {
            count: 0,
            history: Vec::new(),
        }
    }

    fn clone_self(&self) -> Self {
        self.clone()
    }

    #[dilly(skip)]
    fn not_registered(&self) -> &[u64] {
        &self.history
    }

    #[dilly(name = "methods::Counter::renamed")]
    fn with_custom_name(&self, x: u64) -> u64 {
        self.count + x
    }
}

/// A newtype over a generic type: registered for its concrete instance.
#[derive(Serialize, Deserialize)]
struct Wrapper<T>(T);

#[dilly::methods]
impl Wrapper<u64> {
    fn get(&self) -> u64 {
        self.0
    }
}

fn counter() -> Counter {
    Counter {
        count: 5,
        history: vec![5],
    }
}

fn resend<A: 'static, R: 'static>(f: &Func<A, R>) -> Func<A, R> {
    dilly::from_bytes(&dilly::to_bytes(f).unwrap()).unwrap()
}

#[test]
fn shared_receiver() {
    let c = counter();
    let f = resend(&bind!(c.peek));
    assert_eq!(f.call(()), 5);
    assert_eq!(f.name(), "methods::Counter::peek");
}

#[test]
fn mutable_receiver_mutates_a_fresh_copy_per_call() {
    let c = counter();
    let f = resend(&bind!(c.add));
    assert_eq!(f.call((1,)), 6);
    assert_eq!(f.call((1,)), 6);
    assert_eq!(c, counter(), "the original is untouched");
}

#[test]
fn consuming_receiver() {
    let c = counter();
    let f = resend(&bind!(c.finish));
    assert_eq!(f.call((9,)), vec![5, 9]);
    assert_eq!(f.call((8,)), vec![5, 8]);
}

#[test]
fn associated_functions_and_self_in_signatures() {
    let zero = resend(&func_of!(Counter::zero));
    assert_eq!(zero.call(()).count, 0);
    let c = counter();
    let cloned = resend(&bind!(c.clone_self));
    assert_eq!(cloned.call(()), counter());
    assert_eq!(
        cloned.entry().signature(),
        "fn(&Counter) -> Counter",
        "`Self` is written as the type"
    );
    assert_eq!(c.not_registered(), &[5]);
}

#[test]
fn custom_method_name() {
    let c = counter();
    let f = resend(&bind!(c.with_custom_name));
    assert_eq!(f.name(), "methods::Counter::renamed");
    assert_eq!(f.call((37,)), 42);
}

#[test]
fn concrete_instance_of_a_generic_type() {
    let w = Wrapper(42u64);
    let f = resend(&bind!(w.get));
    assert_eq!(f.name(), "methods::Wrapper<u64>::get");
    assert_eq!(f.call(()), 42);
}

#[test]
fn bind_works_on_field_and_reference_receivers() {
    struct Holder {
        inner: Counter,
    }
    let h = Holder { inner: counter() };
    let by_field = bind!(h.inner.peek);
    let r = &h.inner;
    let by_ref = bind!(r.peek);
    assert_eq!(by_field.call(()), by_ref.call(()));
}

#[test]
fn readable_form_shows_the_receiver() {
    let c = counter();
    let json = serde_json::to_value(bind!(c.peek)).unwrap();
    assert_eq!(json["fn"], "methods::Counter::peek");
    assert_eq!(
        json["state"],
        serde_json::json!({"count": 5, "history": [5]})
    );
    let f: Func<(), u64> = serde_json::from_value(json).unwrap();
    assert_eq!(f.call(()), 5);
}
