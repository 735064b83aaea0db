// The capture that cannot travel is named, whichever place it has in the list.

struct Config {
    offset: u64,
}

fn main() {
    let step = 2u64;
    let config = Config { offset: 1 };
    let _ = dilly::closure!([step: u64, config: Config] move |x: u64| x * step + config.offset);
}
