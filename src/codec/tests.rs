use super::*;
use crate::symbol::{Fingerprint, SymbolId};

#[test]
fn round_trips_a_value() {
    let bytes = to_bytes(&("hi".to_string(), 7u64)).unwrap();
    assert_eq!(bytes[0], VERSION);
    let back: (String, u64) = from_bytes(&bytes).unwrap();
    assert_eq!(back, ("hi".to_string(), 7));
}

#[test]
fn an_error_stashed_before_a_decode_began_is_not_its_error() {
    // Left by a decoder that recovered (an untagged enum trying another
    // variant), or by a decode that failed without taking it.
    stash_error(Error::NotPortable);
    let err = decode::<u32>(&[], "value").unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    // One stashed during the decode is.
    #[derive(Debug)]
    struct Refuses;
    impl<'de> serde::Deserialize<'de> for Refuses {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
            stash_error(Error::NotPortable);
            Err(serde::de::Error::custom("refused"))
        }
    }
    let err = decode::<Refuses>(&[0], "value").unwrap_err();
    assert!(matches!(err, Error::NotPortable), "{err:?}");
}

#[test]
fn empty_input_is_truncated() {
    assert!(matches!(
        from_bytes::<u8>(&[]),
        Err(Error::Truncated { needed: 1, .. })
    ));
}

#[test]
fn an_older_version_is_named_as_such() {
    let err = from_bytes::<u8>(&[1, 1]).unwrap_err();
    assert_eq!(
        err,
        Error::OlderFormat {
            found: 1,
            supported: VERSION
        }
    );
    assert!(err.to_string().contains("made by an older dilly"), "{err}");
}

#[test]
fn unknown_version_is_refused() {
    assert_eq!(
        from_bytes::<u8>(&[9, 1]),
        Err(Error::UnsupportedVersion {
            found: 9,
            supported: VERSION
        })
    );
}

#[test]
fn trailing_bytes_are_malformed() {
    assert!(matches!(
        from_bytes::<u8>(&[VERSION, 1, 2]),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn cut_string_is_truncated() {
    let mut bytes = to_bytes(&"hello".to_string()).unwrap();
    bytes.truncate(4);
    assert!(matches!(
        from_bytes::<String>(&bytes),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let bytes = to_bytes(&vec![0u8; 100]).unwrap();
    assert!(matches!(
        from_bytes_with_limits::<Vec<u8>>(&bytes, Limits::max_len(50)),
        Err(Error::TooLarge { limit: 50, .. })
    ));
}

#[test]
fn frame_round_trips_and_borrows() {
    let frame = CallFrame {
        id: SymbolId::of("a::b"),
        fingerprint: Fingerprint::of("fn()"),
        shape: Fingerprint::of("shape"),
        state: &[1, 2],
        args: &[3],
    };
    let bytes = frame.encode().unwrap();
    assert_eq!(bytes.len(), 1 + 8 + 8 + 8 + 4 + 2 + 4 + 1);
    assert_eq!(CallFrame::decode(&bytes, Limits::DEFAULT).unwrap(), frame);
}

#[test]
fn frame_length_over_limit_is_refused_without_reading() {
    let mut bytes = vec![VERSION];
    bytes.extend_from_slice(&[0; 24]);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = CallFrame::decode(&bytes, Limits::DEFAULT).unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { what, .. } if what == "state"),
        "{err}"
    );
}

#[test]
fn every_truncation_of_a_frame_is_an_error() {
    let frame = CallFrame {
        id: SymbolId::of("a::b"),
        fingerprint: Fingerprint::of("fn()"),
        shape: Fingerprint::of("shape"),
        state: &[1, 2, 3],
        args: &[4, 5],
    };
    let bytes = frame.encode().unwrap();
    for cut in 0..bytes.len() {
        assert!(CallFrame::decode(&bytes[..cut], Limits::DEFAULT).is_err());
    }
}
