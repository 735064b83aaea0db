//! The two batches a [`Job`](super::Job) moves: encoded argument tuples going in
//! ([`Items`]) and outcomes coming out ([`Outcomes`]). Each keeps its byte strings
//! back to back in one buffer, so a chunk of thousands of tiny tasks costs a few
//! allocations, not one per task.

use std::fmt;

use crate::error::TaskError;

/// Encoded argument tuples of consecutive tasks, back to back in one buffer.
///
/// ```
/// use dilly_pool::backend::Items;
///
/// let mut items = Items::new();
/// items.push(b"one");
/// items.push(b"two");
/// let rest = items.split_off(1);
/// assert_eq!(items.iter().collect::<Vec<_>>(), [b"one"]);
/// assert_eq!(rest.get(0), Some(&b"two"[..]));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Items {
    bytes: Vec<u8>,
    /// Where each item ends in `bytes`.
    ends: Vec<usize>,
}

impl Items {
    /// No items.
    pub fn new() -> Items {
        Items::default()
    }

    /// No items, with room for `items` items of `bytes` bytes in total.
    pub fn with_capacity(items: usize, bytes: usize) -> Items {
        Items {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(items),
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all items together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Item `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        Some(&self.bytes[self.start(i)..end])
    }

    /// The items in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| &self.bytes[self.start(i)..self.ends[i]])
    }

    /// Adds an item.
    pub fn push(&mut self, item: &[u8]) {
        self.bytes.extend_from_slice(item);
        self.ends.push(self.bytes.len());
    }

    /// Adds the item that `write` appends to the buffer; adds nothing (and leaves
    /// the buffer as it was) if `write` fails.
    pub fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => {
                self.ends.push(self.bytes.len());
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    /// Splits off the items from `at` on (all of them if `at` is 0; none if `at`
    /// is past the end).
    pub fn split_off(&mut self, at: usize) -> Items {
        if at >= self.len() {
            return Items::new();
        }
        let offset = self.start(at);
        let ends = self.ends.split_off(at);
        let bytes = self.bytes.split_off(offset);
        Items {
            bytes,
            ends: ends.into_iter().map(|e| e - offset).collect(),
        }
    }

    /// Moves `other`'s items to the end of these.
    pub fn append(&mut self, other: Items) {
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|e| e + offset));
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for Items {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Items {
        let mut items = Items::new();
        for item in iter {
            items.push(item.as_ref());
        }
        items
    }
}

impl fmt::Debug for Items {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Items")
            .field("len", &self.len())
            .field("bytes", &self.byte_len())
            .finish()
    }
}

/// Outcomes of tasks: each a task's index in its job and its encoded result, or
/// the error that took its place. Results are kept back to back in one buffer.
///
/// ```
/// use dilly_pool::TaskError;
/// use dilly_pool::backend::Outcomes;
///
/// let mut outcomes = Outcomes::new();
/// outcomes.push_ok(7, b"result");
/// outcomes.push_err(8, TaskError::Terminated);
/// let seen: Vec<_> = outcomes.iter().map(|(i, r)| (i, r.is_ok())).collect();
/// assert_eq!(seen, [(7, true), (8, false)]);
/// ```
#[derive(Clone, Default)]
pub struct Outcomes {
    bytes: Vec<u8>,
    /// Each task's index and where its outcome is. Small and without drop glue:
    /// the failures, rare and large, are kept apart.
    list: Vec<(u64, Place)>,
    failures: Vec<TaskError>,
}

/// Where an outcome is.
#[derive(Clone, Copy)]
enum Place {
    /// A result: these bytes of the buffer.
    Result { start: usize, end: usize },
    /// A failure: this one of the failures.
    Failure(usize),
}

impl Outcomes {
    /// No outcomes.
    pub fn new() -> Outcomes {
        Outcomes::default()
    }

    /// Number of outcomes.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no outcomes.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds task `index`'s encoded result.
    pub fn push_ok(&mut self, index: u64, result: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(result);
        let end = self.bytes.len();
        self.list.push((index, Place::Result { start, end }));
    }

    /// Adds task `index`'s result, which `read` appends to the buffer; adds nothing
    /// (and leaves the buffer as it was) if `read` fails.
    pub fn push_ok_with<E>(
        &mut self,
        index: u64,
        read: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match read(&mut self.bytes) {
            Ok(()) => {
                let end = self.bytes.len();
                self.list.push((index, Place::Result { start, end }));
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    /// Adds task `index`'s failure.
    pub fn push_err(&mut self, index: u64, error: TaskError) {
        self.list.push((index, Place::Failure(self.failures.len())));
        self.failures.push(error);
    }

    /// Fails tasks `first`, `first + 1`, …, `first + len - 1` with one `error`
    /// (a chunk that will not run: its worker could not start, its pool was
    /// terminated, a backend gave up on it). The error is kept once.
    ///
    /// ```
    /// use dilly_pool::TaskError;
    /// use dilly_pool::backend::Outcomes;
    ///
    /// let mut outcomes = Outcomes::new();
    /// outcomes.push_err_range(10, 3, TaskError::Terminated);
    /// let failed: Vec<_> = outcomes.iter().map(|(i, r)| (i, r.is_err())).collect();
    /// assert_eq!(failed, [(10, true), (11, true), (12, true)]);
    /// ```
    pub fn push_err_range(&mut self, first: u64, len: usize, error: TaskError) {
        if len == 0 {
            return;
        }
        let place = Place::Failure(self.failures.len());
        self.failures.push(error);
        self.list
            .extend((first..first + len as u64).map(|index| (index, place)));
    }

    /// Adds task `index`'s outcome.
    pub fn push(&mut self, index: u64, outcome: Result<impl AsRef<[u8]>, TaskError>) {
        match outcome {
            Ok(result) => self.push_ok(index, result.as_ref()),
            Err(error) => self.push_err(index, error),
        }
    }

    /// Moves `other`'s outcomes to the end of these.
    pub fn append(&mut self, other: Outcomes) {
        let offset = self.bytes.len();
        let failed = self.failures.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.failures.extend(other.failures);
        self.list.extend(other.list.into_iter().map(|(i, place)| {
            let place = match place {
                Place::Result { start, end } => Place::Result {
                    start: start + offset,
                    end: end + offset,
                },
                Place::Failure(n) => Place::Failure(n + failed),
            };
            (i, place)
        }));
    }

    /// The outcomes in the order they were added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u64, Result<&[u8], &TaskError>)> + '_ {
        self.list.iter().map(|&(index, place)| {
            let outcome = match place {
                Place::Result { start, end } => Ok(&self.bytes[start..end]),
                Place::Failure(n) => Err(&self.failures[n]),
            };
            (index, outcome)
        })
    }
}

impl fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(i, r)| (i, r.map(<[u8]>::len))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(items: &Items) -> Vec<Vec<u8>> {
        items.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn items_split_and_append_keep_every_item_whole() {
        let mut items: Items = [&b"a"[..], b"", b"bcd", b"ef"].into_iter().collect();
        assert_eq!(items.len(), 4);
        assert_eq!(items.byte_len(), 6);
        let rest = items.split_off(2);
        assert_eq!(collect(&items), [b"a".to_vec(), vec![]]);
        assert_eq!(collect(&rest), [b"bcd".to_vec(), b"ef".to_vec()]);
        assert_eq!(rest.get(1), Some(&b"ef"[..]));
        assert_eq!(rest.get(2), None);
        items.append(rest);
        assert_eq!(
            collect(&items),
            [b"a".to_vec(), vec![], b"bcd".to_vec(), b"ef".to_vec()]
        );
        let all = items.split_off(0);
        assert!(items.is_empty());
        assert_eq!(items.byte_len(), 0);
        assert_eq!(all.len(), 4);
        let mut all = all;
        assert!(all.split_off(9).is_empty());
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn a_failed_push_leaves_no_trace() {
        let mut items = Items::new();
        items.push(b"ok");
        let failed: Result<(), ()> = items.push_with(|buf| {
            buf.extend_from_slice(b"partial");
            Err(())
        });
        assert!(failed.is_err());
        items
            .push_with(|buf| {
                buf.push(9);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(collect(&items), [b"ok".to_vec(), vec![9]]);

        let mut outcomes = Outcomes::new();
        let failed: Result<(), ()> = outcomes.push_ok_with(0, |buf| {
            buf.push(1);
            Err(())
        });
        assert!(failed.is_err());
        outcomes.push_ok(1, b"x");
        assert_eq!(
            outcomes.iter().next().map(|(i, r)| (i, r.ok())),
            Some((1, Some(&b"x"[..])))
        );
    }

    #[test]
    fn outcomes_append_rebases_results() {
        let mut a = Outcomes::new();
        a.push_ok(0, b"zero");
        let mut b = Outcomes::new();
        b.push_err(1, TaskError::Terminated);
        b.push_ok(2, b"two");
        a.append(b);
        let seen: Vec<(u64, Option<Vec<u8>>)> = a
            .iter()
            .map(|(i, r)| (i, r.ok().map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            seen,
            [
                (0, Some(b"zero".to_vec())),
                (1, None),
                (2, Some(b"two".to_vec()))
            ]
        );
        assert_eq!(a.len(), 3);
    }
}
