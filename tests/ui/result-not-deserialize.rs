// A registered function's result must decode on the caller's side, and its shape
// is traced from its `Deserialize`.

#[derive(serde::Serialize)]
struct Report {
    total: u64,
}

#[dilly::func]
fn summarize(x: u64) -> Report {
    Report { total: x }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Counter {
    n: u64,
}

#[dilly::methods]
impl Counter {
    fn report(&self) -> Report {
        Report { total: self.n }
    }
}

fn main() {
    let offset = 1u64;
    let _ = dilly::closure!([offset: u64] move |x: u64| Report { total: x + offset });
}
