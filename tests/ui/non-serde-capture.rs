struct Config {
    offset: u64,
}

fn main() {
    let config = Config { offset: 1 };
    let _ = dilly::closure!([config: Config] move |x: u64| x + config.offset);
}
