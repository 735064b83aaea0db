//! `use dilly_pool::prelude::*;` is the one import pool code needs: this file has
//! no other, and calls every typed method of every local executor.

use std::iter::zip;

use dilly_pool::prelude::*;

#[dilly::func]
fn double(x: u64) -> u64 {
    x * 2
}

#[dilly::func]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

#[test]
fn process_pool_methods_through_the_prelude() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let f = dilly::func_of!(double);
    assert_eq!(pool.map(&f, [1, 2, 3]).unwrap(), [2, 4, 6]);
    let g = dilly::func_of!(add);
    assert_eq!(pool.starmap(&g, zip([1, 2], [10, 20])).unwrap(), [11, 22]);
    assert_eq!(pool.apply(&g, (3, 4)).unwrap(), 7);
    assert_eq!(pool.apply_async(&f, (5,)).unwrap().get().unwrap(), 10);
    assert_eq!(pool.map_async(&f, [4]).unwrap().get().unwrap(), [8]);
    assert_eq!(
        pool.starmap_async(&g, [(1, 1)]).unwrap().get().unwrap(),
        [2]
    );
    let ordered: Vec<u64> = pool.imap(&f, [1, 2]).unwrap().map(Result::unwrap).collect();
    assert_eq!(ordered, [2, 4]);
    let mut any_order: Vec<u64> = pool
        .imap_unordered(&f, [1, 2])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    any_order.sort();
    assert_eq!(any_order, [2, 4]);
    let starred: Vec<u64> = pool
        .istarmap(&g, [(2, 3)])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(starred, [5]);
}

#[test]
fn thread_pool_and_serial_methods_through_the_prelude() {
    let f = dilly::func_of!(double);
    let threads = ThreadPool::builder().workers(2).build().unwrap();
    assert_eq!(threads.map(&f, [1, 2, 3]).unwrap(), [2, 4, 6]);
    assert_eq!(Serial::new().map(&f, [7]).unwrap(), [14]);
}
